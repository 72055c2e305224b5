"""``robustlab vision train-gan`` and ``robustlab vision sample``: the conditional DCGAN on the patches of
``prepare-mias`` (or any NPZ with the same keys), and synthetic patches drawn from its model file.

Registered in the ``vision`` group by :mod:`robustlab.vision.cli`. Errors follow the contract of
:mod:`robustlab.common.cli`; nothing heavy is imported at module level.
"""

from __future__ import annotations

from pathlib import Path

import click

from robustlab.common.cli import Device, FiniteFloat, OutputDir, check_run_folder

__all__ = ["sample", "train_gan"]

_SEED_MAX = 2**32 - 1
_PATCH_KEYS = ("x", "y", "classes")
"""The NPZ fields train-gan reads (prepare-mias also writes mask, patient, image_id...)."""


def read_patches(path: Path):
    """``(x, y, classes)`` of a patches NPZ: uint8 square patches ``(N, S, S)``, int64 labels ``(N,)`` indexing the
    class names ``classes``.

    Raises:
        DataError: the file is not an NPZ, lacks a key, or a key's array has the wrong type, shape or values; the
            message names the file and the key.
    """
    import numpy as np

    from robustlab.common.errors import DataError
    from robustlab.common.io import read_npz

    data = read_npz(path, required=_PATCH_KEYS, what="patches file")
    x, y, classes = data["x"], data["y"], data["classes"]
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1] != x.shape[2] or len(x) == 0:
        raise DataError(f"patches file {path}: key 'x' must hold uint8 square patches (N, S, S) with N >= 1, got "
                        f"{x.dtype} {x.shape}")
    if x.shape[1] not in (16, 32, 64, 128, 256):
        raise DataError(f"patches file {path}: key 'x' holds {x.shape[1]}x{x.shape[2]} patches; the DCGAN needs a "
                        "power-of-two side from 16 to 256 (prepare-mias --size)")
    if classes.ndim != 1 or classes.dtype.kind not in "US" or len(classes) == 0:
        raise DataError(f"patches file {path}: key 'classes' must hold the class names (a 1-D string array), got "
                        f"{classes.dtype} {classes.shape}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"patches file {path}: key 'y' must hold {len(x)} integer labels (one per patch), got "
                        f"{y.dtype} {y.shape}")
    bad = (y < 0) | (y >= len(classes))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"patches file {path}: key 'y' has label {int(y[i])} at patch {i}; 'classes' has "
                        f"{len(classes)} names (labels 0 to {len(classes) - 1})")
    return x, y.astype(np.int64), [str(c) for c in classes]


def _patients(path: Path, n: int, *, required: bool):
    """The 'patient' key of a patches NPZ (one string per patch), which --holdout needs; None when absent and not
    required."""
    import numpy as np

    from robustlab.common.errors import DataError
    from robustlab.common.io import read_npz

    data = read_npz(path, required=("patient",) if required else (), what="patches file")
    if "patient" not in data:
        return None
    patients = data["patient"]
    if patients.shape != (n,) or patients.dtype.kind not in "US":
        raise DataError(f"patches file {path}: key 'patient' must hold {n} patient names (one per patch), got "
                        f"{patients.dtype} {patients.shape}; or pass --holdout 0")
    return np.asarray(patients).astype(str)


@click.command("train-gan", short_help="Train the conditional DCGAN on a patches NPZ (resumable; sample grids).")
@click.option("--patches", "patches_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="NPZ of prepare-mias: x uint8 (N, S, S) patches, y labels, classes names.")
@click.option("--out", type=OutputDir(), required=True,
              help="Folder for generator.pt, samples/epoch_NNN.png, the checkpoints, run.json and metrics.jsonl.")
@click.option("--epochs", type=click.IntRange(min=1), default=50, show_default=True, help="Epochs (the last kept).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Real patches per step.")
@click.option("--width", type=click.IntRange(min=1), default=32, show_default=True,
              help="Network width: channels at half the patch side (DCGAN: 64).")
@click.option("--latent-dim", type=click.IntRange(min=1), default=100, show_default=True, help="Size of the noise z.")
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=2e-4, show_default=True,
              help="The generator's Adam learning rate (betas 0.0, 0.9, as the spectrally normalized GAN).")
@click.option("--d-lr", type=FiniteFloat(min=0, min_open=True), default=2e-4, show_default=True,
              help="The discriminator's Adam learning rate.")
@click.option("--grid-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Write a sample grid every this many epochs (and after the last).")
@click.option("--holdout", type=FiniteFloat(0, 1, max_open=True), default=0.25, show_default=True,
              help="Share of the patients left out of the GAN's training, the split of `vision train` with the same "
                   "--holdout and --seed (so its held-out patients stay unseen); 0 trains on every patient.")
@click.option("--seed", type=click.IntRange(0, _SEED_MAX), default=0, show_default=True,
              help="Seed of the initialization, shuffling, noise and the grids' fixed noise.")
@click.option("--device", type=Device(), default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--resume", is_flag=True, help="Continue the run in --out with the same options (more --epochs allowed).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress.")
def train_gan(patches_path: Path, out: Path, epochs: int, batch_size: int, width: int, latent_dim: int, lr: float,
              d_lr: float, grid_every: int, holdout: float, seed: int, device: str, resume: bool,
              progress: bool) -> None:
    """Train a class-conditional DCGAN (spectral-norm projection discriminator) on the patches of --patches whose
    patients are not held out (--holdout, --seed: the split of `vision train`; it records them) and
    write --out/generator.pt, a model file `vision sample` reads, and a grid of 8 samples per class (one row each)
    to --out/samples/epoch_NNN.png every --grid-every epochs, from the same noise at every epoch.

    A killed run continues with the same command plus --resume (also to add epochs to a finished run).
    """
    import time

    import numpy as np

    from robustlab.common.modelfile import save_model
    from robustlab.vision.gan import train_gan as fit_gan

    x, y, classes = read_patches(patches_path)
    patients = _patients(patches_path, len(x), required=holdout > 0)
    keep = np.arange(len(x))
    if holdout > 0:
        from robustlab.vision.data.patches import holdout_split

        keep, _ = holdout_split(patients, y, holdout, seed=seed)
        x, y = x[keep], y[keep]
    options = {"patches": str(patches_path), "n_patches": int(len(x)), "patch_size": int(x.shape[1]),
               "classes": classes, "epochs": epochs, "batch_size": batch_size, "width": width,
               "latent_dim": latent_dim, "lr": lr, "d_lr": d_lr, "grid_every": grid_every, "holdout": holdout, "seed": seed}
    resuming = check_run_folder(out, "vision train-gan", options, resume=resume)
    counts = ", ".join(f"{c} {int((y == k).sum())}" for k, c in enumerate(classes))
    click.echo(f"{len(x)} patches of {x.shape[1]}x{x.shape[2]} ({counts}); {epochs} epochs, batch {batch_size}, "
               f"width {width}" + (" (resuming)" if resuming else ""), err=True)
    t0 = time.perf_counter()
    generator, _, result = fit_gan(x, y, num_classes=len(classes), epochs=epochs, batch_size=batch_size,
                                   latent_dim=latent_dim, width=width, lr=lr, d_lr=d_lr, seed=seed, out_dir=out,
                                   resume=resuming, progress=progress, grid_every=grid_every, classes=classes,
                                   device=device)
    last = {k: round(float(v), 5) for k, v in result.last.items()}
    preprocessing = {"kind": "gan", "classes": classes, "image_size": int(x.shape[1]), "latent_dim": latent_dim,
                     "pixels": "uint8 0..255; the generator's output t in [-1, 1] maps to round((t + 1) * 127.5)"}
    save_model(generator.cpu(), out / "generator.pt", preprocessing=preprocessing,
               metadata={"command": "vision train-gan", **options, "epochs_run": len(result.history), "last": last,
                         "train_patients": None if patients is None else sorted(set(patients[keep].tolist()))})
    grids = sorted((out / "samples").glob("epoch_*.png"))
    click.echo(f"{len(result.history)} epochs in {time.perf_counter() - t0:.1f} s; last epoch: D(real) "
               f"{last.get('train_d_real', float('nan')):.3f}, D(fake) {last.get('train_d_fake', float('nan')):.3f}, "
               f"G loss {last.get('train_g_loss', float('nan')):.3f} -> {out / 'generator.pt'}"
               + (f", {grids[-1]}" if grids else ""))


@click.command("sample", short_help="Draw synthetic patches from a train-gan model file: PNGs and a grid.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="generator.pt written by train-gan.")
@click.option("--n", "n", type=click.IntRange(min=1), default=16, show_default=True,
              help="Patches per class (with --class all, that many of each class).")
@click.option("--class", "class_name", default="all", show_default=True,
              help="A class name of the model (e.g. abnormal), or all.")
@click.option("--seed", type=click.IntRange(0, _SEED_MAX), default=0, show_default=True, help="Seed of the noise.")
@click.option("--device", type=Device(), default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--out", type=OutputDir(), required=True,
              help="Folder for sample_NNNN_<class>.png (one per patch) and grid.png.")
def sample(model_path: Path, n: int, class_name: str, seed: int, device: str, out: Path) -> None:
    """Draw --n synthetic patches per class (or of --class) from the generator of --model, and write each as
    --out/sample_NNNN_<class>.png (uint8 grey levels, the patches' size) and all of them as --out/grid.png (one row
    of up to 8 per class, captioned). The same --seed gives the same patches, class by class: --class NAME draws
    the patches of that class that --class all draws."""
    from PIL import Image

    from robustlab.common.engine import resolve_device
    from robustlab.common.errors import ConfigError, DataError
    from robustlab.common.io import atomic_write
    from robustlab.common.modelfile import load_model
    from robustlab.vision.gan import generate, write_grid

    loaded = load_model(model_path, map_location=resolve_device(device))
    pre = loaded.preprocessing
    classes = pre.get("classes")
    if pre.get("kind") != "gan" or not isinstance(classes, list) or not classes:
        raise DataError(f"--model {model_path} is not a train-gan generator (its preprocessing says kind "
                        f"{pre.get('kind')!r}); give the generator.pt that train-gan wrote")
    if class_name == "all":
        wanted = list(range(len(classes)))
    elif class_name in classes:
        wanted = [classes.index(class_name)]
    else:
        raise ConfigError(f"--class {class_name!r} is not a class of --model {model_path}: expected one of "
                          f"{', '.join(classes)} or all")
    import numpy as np

    # each class its own noise stream, from (seed, class): --class abnormal draws the abnormal patches of --class all
    per_class = [generate(loaded.model, {k: n}, seed=int(np.random.SeedSequence([seed, k]).generate_state(1)[0]),
                          latent_dim=pre.get("latent_dim")) for k in wanted]
    images, labels = np.concatenate(per_class), np.repeat(wanted, n)
    for i, (image, label) in enumerate(zip(images, labels)):
        name = _file_safe(classes[int(label)])
        atomic_write(out / f"sample_{i:04d}_{name}.png", lambda f, a=image: Image.fromarray(a).save(f, format="PNG"))
    per_row = min(n, 8)
    shown = [i for k in wanted for i in range(wanted.index(k) * n, wanted.index(k) * n + per_row)]
    write_grid(images[shown], out / "grid.png", nrow=per_row, labels=[classes[int(labels[i])] for i in shown])
    click.echo(f"{len(images)} patches ({', '.join(f'{classes[k]} {n}' for k in wanted)}) of "
               f"{images.shape[1]}x{images.shape[2]} -> {out}/sample_*.png, {out / 'grid.png'}")


def _file_safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "class"
