"""Train the conditional DCGAN on image patches, draw synthetic patches, and write sample grids.

Pixels follow the convention the classifier shares: uint8 grey levels 0..255 ``(N, S, S)``. The networks see
``x / 127.5 - 1`` in ``[-1, 1]`` (the generator's Tanh range), and generated images go back as
``round((t + 1) * 127.5)``.

- :func:`train_gan`: the core engine's ``fit`` with the core :class:`~robustlab.common.regimes.gan.GAN` regime
  (``conditional=True``), checkpointed and resumable in ``out_dir``, a sample grid ``out_dir/samples/epoch_NNN.png``
  written every ``grid_every`` epochs from fixed noise (the same latent points at every epoch).
- :func:`generate`: uint8 patches for given classes, seeded.
- :func:`write_grid`: an atomic PNG of image tiles, optionally captioned.

Import cost: NumPy; torch and Pillow inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import nn

    from robustlab.common.engine import FitResult
    from robustlab.common.regimes.gan import GAN

__all__ = ["generate", "to_pixels", "to_unit_range", "train_gan", "write_grid"]

GRID_PER_CLASS = 8
"""Samples per class in the training grids (one row per class)."""


def to_unit_range(x: np.ndarray):
    """uint8 images ``(N, S, S)`` as a float32 tensor ``(N, 1, S, S)`` in ``[-1, 1]``."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / 127.5 - 1.0)[:, None]


def to_pixels(t) -> np.ndarray:
    """Generator output ``(N, C, S, S)`` in ``[-1, 1]`` as uint8 images ``(N, S, S)`` (``(N, S, S, C)`` for
    ``C > 1``)."""
    import torch

    a = ((t.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    return a[:, 0] if a.shape[1] == 1 else np.moveaxis(a, 1, -1)


def _check_patches(x: Any, y: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    from robustlab.common.errors import ConfigError, DataError

    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ConfigError(f"train_gan: num_classes must be an int >= 1, got {num_classes!r}")
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1] != x.shape[2]:
        raise DataError(f"train_gan: x must be uint8 square patches (N, S, S), got {x.dtype} {x.shape}")
    if x.shape[1] not in (16, 32, 64, 128, 256):
        raise DataError(f"train_gan: the patch side must be a power of two from 16 to 256 (the DCGAN's sizes), got "
                        f"{x.shape[1]}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"train_gan: y must be integer labels (N,) with N = {len(x)}, got {y.dtype} {y.shape}")
    if len(x) == 0:
        raise DataError("train_gan: no patches")
    if y.min() < 0 or y.max() >= num_classes:
        bad = int(y[(y < 0) | (y >= num_classes)][0])
        raise DataError(f"train_gan: label {bad} outside 0..{num_classes - 1} (num_classes {num_classes})")
    missing = np.flatnonzero(np.bincount(y, minlength=num_classes) == 0)
    if len(missing):
        raise DataError(f"train_gan: no patch of class {', '.join(map(str, missing))}; a conditional GAN learns "
                        "each class from its patches")
    return x, y.astype(np.int64)


def train_gan(x: Any, y: Any, *, num_classes: int, epochs: int, batch_size: int = 64, latent_dim: int = 100,
              width: int = 32, lr: float = 2e-4, d_lr: float = 2e-4, betas: tuple[float, float] = (0.0, 0.9),
              seed: int = 0, out_dir: str | Path | None = None,
              resume: bool = False, progress: bool = False, grid_every: int = 1,
              classes: Sequence[str] | None = None, device: str = "cpu") -> tuple[nn.Module, GAN, FitResult]:
    """Train a conditional DCGAN on uint8 patches with the core engine and the core GAN regime.

    :class:`~robustlab.vision.models.DCGANGenerator` and :class:`~robustlab.vision.models.DCGANDiscriminator`
    (spectral norm on every discriminator layer: the stated stabilizer; no label smoothing), Adam with the
    spectrally normalized GAN's settings (Miyato et al. 2018: learning rate 2e-4 for both networks, betas
    (0.0, 0.9)), one discriminator step per generator step, shuffled batches of ``batch_size`` (the last,
    incomplete batch dropped when there is more than one). Seeded: the same arguments give the same networks
    (bit-identical on the CPU, also across a resume).

    Why not DCGAN's Adam betas (0.5, 0.999): on 640 mini-MIAS patches at 32 px (20 epochs of batch 32) they
    collapsed every class to nearly one image (standard deviation across samples about 3 grey levels per pixel,
    real patches 45), also with the two time-scale rule (1e-4 / 4e-4), two discriminator steps, no spectral norm,
    no batch norm in the generator or differentiable augmentation; betas (0.0, 0.9) gave 28-34 grey levels.

    Args:
        x: uint8 patches ``(N, S, S)``, S a power of two from 16 to 256.
        y: class indices ``(N,)`` in ``0..num_classes-1``; every class needs patches.
        num_classes: the number of classes.
        epochs: total epochs (a resumed run counts those done).
        batch_size: real patches per step.
        latent_dim: the size of the noise ``z``.
        width: the networks' width (channels at half the patch side; DCGAN: 64).
        lr: the generator's learning rate.
        d_lr: the discriminator's learning rate.
        betas: Adam's betas for both networks.
        seed: seeds the initialization, the shuffling, the training noise and the grids' fixed noise.
        out_dir: where ``last.pt``, ``metrics.jsonl`` and ``samples/epoch_NNN.png`` go; None keeps everything in
            memory (no grids).
        resume: continue the run in ``out_dir`` (see :func:`robustlab.common.engine.fit`).
        progress: the engine's progress bar / lines.
        grid_every: write a grid (8 samples per class, one row each) every this many epochs and after the last.
        classes: class names for the grids' captions; default the class indices.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``...

    Returns:
        ``(generator, regime, result)``: the generator (eval mode, on ``device``), the fitted
        :class:`~robustlab.common.regimes.gan.GAN` (its ``discriminator``) and the engine's ``FitResult``.

    Raises:
        DataError: patches or labels of the wrong type or shape, a label out of range, a class without patches.
        ConfigError: a bad option (through the models and the engine).
    """
    import torch
    from torch.utils.data import DataLoader

    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.errors import ConfigError
    from robustlab.common.regimes.gan import GAN
    from robustlab.vision.models.dcgan import DCGANDiscriminator, DCGANGenerator

    x, y = _check_patches(x, y, num_classes)
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("grid_every", grid_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"train_gan: {name} must be an int >= 1, got {value!r}")
    if classes is not None and len(classes) != num_classes:
        raise ConfigError(f"train_gan: {len(classes)} class names for {num_classes} classes")
    names = [str(c) for c in classes] if classes is not None else [str(k) for k in range(num_classes)]
    size = x.shape[1]
    torch.manual_seed(seed)
    generator = DCGANGenerator(latent_dim=latent_dim, num_classes=num_classes, image_size=size, width=width)
    discriminator = DCGANDiscriminator(num_classes=num_classes, image_size=size, width=width)
    grid_labels = np.repeat(np.arange(num_classes), GRID_PER_CLASS)
    on_samples = None
    if out_dir is not None:
        samples_dir = Path(out_dir) / "samples"

        def on_samples(samples, labels, epoch: int) -> None:
            write_grid(to_pixels(samples), samples_dir / f"epoch_{epoch:03d}.png", nrow=GRID_PER_CLASS,
                       labels=[names[int(k)] for k in labels])

    regime = GAN(discriminator, latent_dim=latent_dim, conditional=True, lr=lr, d_lr=d_lr, betas=betas,
                 d_betas=betas, seed=seed,
                 on_samples=on_samples, sample_every=int(grid_every), sample_labels=grid_labels)
    data = ArrayDataset(to_unit_range(x), torch.from_numpy(y))
    loader = DataLoader(data, batch_size=int(batch_size), shuffle=True, drop_last=len(x) > batch_size)
    result = fit(generator, regime, loader, epochs=int(epochs), out_dir=out_dir, resume=resume, progress=progress,
                 device=device)
    return generator.eval(), regime, result


def generate(generator: nn.Module, n_per_class: Mapping[int, int] | Any, *, seed: int = 0,
             latent_dim: int | None = None, batch_size: int = 256, return_labels: bool = False):
    """Synthetic uint8 patches from a conditional generator, seeded.

    Args:
        generator: ``G(z, y)`` with outputs in ``[-1, 1]`` (a :class:`~robustlab.vision.models.DCGANGenerator`).
        n_per_class: ``{class: count}`` (the patches come class by class, in the mapping's order), or an array of
            labels, one patch each.
        seed: seeds the noise (a private generator: the global random stream is untouched).
        latent_dim: the size of ``z``; default ``generator.latent_dim``.
        batch_size: patches per forward pass (memory); the result does not depend on it.
        return_labels: also return the labels ``(N,)``.

    Returns:
        uint8 ``(N, S, S)`` (or ``(N, S, S, C)`` for colour), and the labels when ``return_labels``. The generator
        runs in eval mode (batch norm with its running statistics) and keeps its mode.

    Raises:
        ConfigError: negative counts, labels outside the generator's classes, no latent size known.
    """
    import torch

    from robustlab.common.engine import model_device
    from robustlab.common.errors import ConfigError
    from robustlab.common.modes import model_mode

    if isinstance(n_per_class, Mapping):
        if any(int(n) < 0 for n in n_per_class.values()):
            raise ConfigError(f"generate: counts must be >= 0, got {dict(n_per_class)}")
        labels = np.repeat(np.asarray(list(n_per_class), np.int64), [int(n) for n in n_per_class.values()])
    else:
        labels = np.asarray(n_per_class).reshape(-1)
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ConfigError(f"generate: labels must be class indices, got {labels.dtype}")
        labels = labels.astype(np.int64)
    k = getattr(generator, "num_classes", None)
    if labels.size and (labels.min() < 0 or (k is not None and labels.max() >= k)):
        raise ConfigError(f"generate: labels must be in 0..{'K-1' if k is None else k - 1}, got "
                          f"{int(labels.min())}..{int(labels.max())}")
    latent_dim = latent_dim if latent_dim is not None else getattr(generator, "latent_dim", None)
    if latent_dim is None:
        raise ConfigError("generate: pass latent_dim (the generator has no latent_dim attribute)")
    device = model_device(generator)
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(len(labels), latent_dim, generator=rng)  # drawn at once: independent of batch_size
    parts = []
    with torch.no_grad(), model_mode(generator, "eval"):
        for start in range(0, len(labels), batch_size):
            yb = torch.from_numpy(labels[start:start + batch_size]).to(device)
            parts.append(to_pixels(generator(z[start:start + batch_size].to(device), yb)))
    if parts:
        images = np.concatenate(parts)
    else:
        side = getattr(generator, "image_size", 0)
        images = np.zeros((0, side, side), np.uint8)
    return (images, labels) if return_labels else images


def write_grid(images: Any, path: str | Path, *, nrow: int = 8, labels: Sequence[Any] | None = None,
               padding: int = 2) -> Path:
    """Write uint8 images as one PNG grid, atomically.

    Args:
        images: uint8 ``(N, S, S)`` grey levels (or ``(N, S, S, 3)`` colour).
        path: the PNG file (its folder is created).
        nrow: tiles per row.
        labels: one caption per image (a class name), drawn in the tile's top-left corner; None: no captions.
        padding: black pixels between tiles.

    Returns:
        ``path``.

    Raises:
        ConfigError: not uint8 images of that shape, no image, or a label count that differs from the images'.
    """
    from PIL import Image, ImageDraw

    from robustlab.common.errors import ConfigError
    from robustlab.common.io import atomic_write

    a = np.asarray(images)
    if a.dtype != np.uint8 or not (a.ndim == 3 or (a.ndim == 4 and a.shape[-1] == 3)) or len(a) == 0:
        raise ConfigError(f"write_grid: expected uint8 images (N, H, W) or (N, H, W, 3), N >= 1, got {a.dtype} "
                          f"{a.shape}")
    if labels is not None and len(labels) != len(a):
        raise ConfigError(f"write_grid: {len(labels)} labels for {len(a)} images")
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1 or padding < 0:
        raise ConfigError(f"write_grid: nrow must be an int >= 1 and padding >= 0, got {nrow!r}, {padding!r}")
    n, h, w = a.shape[:3]
    cols, rows = min(nrow, n), -(-n // nrow)
    shape = (rows * (h + padding) + padding, cols * (w + padding) + padding) + a.shape[3:]
    canvas = np.zeros(shape, np.uint8)
    for i, tile in enumerate(a):
        r, c = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        canvas[top:top + h, left:left + w] = tile
    image = Image.fromarray(canvas)
    if labels is not None:
        image = image.convert("RGB")
        draw = ImageDraw.Draw(image)
        for i, label in enumerate(labels):
            r, c = divmod(i, nrow)
            xy = (padding + c * (w + padding) + 1, padding + r * (h + padding))
            draw.text(xy, str(label), fill=(255, 215, 0), stroke_width=1, stroke_fill=(0, 0, 0))
    return atomic_write(path, lambda f: image.save(f, format="PNG"))
