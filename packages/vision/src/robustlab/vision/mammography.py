"""Patch classification with and without augmentation: train, score, attack and explain a patch classifier.

The pieces of the GAN-augmentation study (``robustlab vision train`` and the recipe ``gopal_gan_augmentation``)
that do not depend on mini-MIAS: any :class:`~robustlab.vision.data.patches.PatchSet`-like arrays of uint8
patches, labels and (optionally) lesion masks.

- :func:`train_patch_classifier`: a :class:`~robustlab.vision.models.patch_cnn.PatchCNN` trained by the core
  engine (``erm``) on real patches, optionally with :class:`~robustlab.vision.augmentation.ClassicAugment` drawn
  afresh every epoch and/or synthetic patches appended, for a fixed number of optimizer steps (so that a gain
  from more samples is not a gain from more steps).
- :func:`evaluate_patch_classifier`: AUROC and balanced accuracy on clean patches, balanced accuracy under
  Gaussian noise and under PGD (the core's attack), and where the classifier looks: Grad-CAM and Smooth
  Grad-CAM++ maps (the core's attribution) scored against the lesion masks by per-patch AUROC
  (:func:`robustlab.common.metrics.localization_auroc`), the ground-truth score of the genomics package applied
  to images.
- :func:`gan_quality`: Fréchet distance, precision/recall in the feature space of a classifier trained on real
  patches, and the nearest-neighbour copy check, without Inception weights.

Pixels: uint8 patches become floats ``x / 255`` in ``[0, 1]`` (:func:`to_unit`); noise and attacks act on that
scale and are clamped to it.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError, DataError

__all__ = ["to_unit", "synthetic_counts", "train_patch_classifier", "evaluate_patch_classifier", "embed",
           "gan_quality"]


def to_unit(x: Any) -> Tensor:
    """uint8 patches ``(N, S, S)`` or ``(N, 1, S, S)`` as float32 ``(N, 1, S, S)`` in ``[0, 1]``."""
    a = np.asarray(x)
    if a.dtype != np.uint8:
        raise DataError(f"patches must be uint8 pixels (0..255), got dtype {a.dtype}")
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[1] != 1:
        raise DataError(f"patches must have shape (N, S, S) or (N, 1, S, S), got {a.shape}")
    return torch.from_numpy(a.astype(np.float32) / 255.0)


def synthetic_counts(y: Any, ratio: float, num_classes: int) -> np.ndarray:
    """How many synthetic patches of each class ``ratio`` synthetic-to-real asks for: the real class shares kept.

    Examples::

        >>> synthetic_counts([0, 0, 0, 1], 1.0, 2).tolist()
        [3, 1]
        >>> synthetic_counts([0, 1, 1, 1], 0.5, 2).tolist()  # half of 1 rounds up
        [1, 2]
    """
    if not (ratio >= 0 and math.isfinite(ratio)):
        raise ConfigError(f"the synthetic-to-real ratio must be a finite number >= 0, got {ratio!r}")
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=num_classes)
    return np.floor(counts * ratio + 0.5).astype(np.int64)


def train_patch_classifier(
    x: Any,
    y: Any,
    *,
    num_classes: int = 2,
    augment=None,
    synthetic: tuple[Any, Any] | None = None,
    steps: int = 400,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    width: int = 16,
    dropout: float = 0.3,
    seed: int = 0,
    device: str = "cpu",
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
) -> nn.Module:
    """Train a :class:`~robustlab.vision.models.patch_cnn.PatchCNN` on real (and synthetic) patches.

    Args:
        x, y: real uint8 patches ``(N, S, S)`` and their classes.
        num_classes: classes of the task.
        augment: a :class:`~robustlab.vision.augmentation.ClassicAugment` applied to every training sample at
            every access (real and synthetic alike), or None.
        synthetic: ``(x_syn, y_syn)`` uint8 patches appended to the training set (e.g. a GAN's samples).
        steps: optimizer steps; the epochs are ``ceil(steps / batches per epoch)``, so every condition of a
            comparison trains about as long whatever its number of samples.
        batch_size, lr, weight_decay: Adam's batch, learning rate and L2 weight decay.
        width, dropout: the network's (see ``PatchCNN``).
        seed: seeds the initialization, the shuffling and the augmentation draws.
        device, out_dir, resume, progress: see :func:`robustlab.common.training.train` (``out_dir`` makes the
            run checkpointed and resumable).

    Returns:
        The trained network (the last epoch's weights; there is no validation set to choose an epoch with).
    """
    from robustlab.common.data import ArrayDataset
    from robustlab.common.training import TrainConfig, train
    from robustlab.vision.augmentation import AugmentedDataset
    from robustlab.vision.models.patch_cnn import PatchCNN

    xs, ys = to_unit(x), torch.as_tensor(np.asarray(y, dtype=np.int64))
    if len(xs) != len(ys):
        raise DataError(f"{len(xs)} patches but {len(ys)} labels")
    if len(xs) == 0:
        raise DataError("no training patches")
    if synthetic is not None:
        sx, sy = to_unit(synthetic[0]), torch.as_tensor(np.asarray(synthetic[1], dtype=np.int64))
        if sx.shape[1:] != xs.shape[1:] or len(sx) != len(sy):
            raise DataError(f"synthetic patches of shape {tuple(sx.shape)} with {len(sy)} labels do not match the "
                            f"real patches of shape {tuple(xs.shape)}")
        xs, ys = torch.cat([xs, sx]), torch.cat([ys, sy])
    if int(ys.max()) >= num_classes or int(ys.min()) < 0:
        raise DataError(f"labels must be classes 0..{num_classes - 1}, got {int(ys.min())}..{int(ys.max())}")
    if xs.shape[-1] % 8:
        raise ConfigError(f"patch side must be divisible by 8 for PatchCNN, got {xs.shape[-1]}")
    data: Any = ArrayDataset(xs, ys)
    if augment is not None:
        data = AugmentedDataset(data, augment)
    per_epoch = math.ceil(len(xs) / batch_size)
    epochs = max(1, math.ceil(steps / per_epoch))
    torch.manual_seed(seed)
    model = PatchCNN(1, num_classes, width=width, dropout=dropout)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, device=device)
    result = train(model, "erm", data, config=config, seed=seed, out_dir=out_dir, resume=resume, progress=progress)
    return result.eval_model if getattr(result, "eval_model", None) is not None else model


@torch.no_grad()
def embed(model: nn.Module, x: Any, *, batch_size: int = 256) -> np.ndarray:
    """The classifier's embedding (``model.embed``) of uint8 patches, ``(N, D)`` float64, in eval mode."""
    from robustlab.common.modes import model_mode

    xs = to_unit(x)
    device = next(model.parameters()).device
    with model_mode(model, "eval"):
        parts = [model.embed(chunk.to(device)).double().cpu() for chunk in xs.split(batch_size)]
    return torch.cat(parts).numpy()


def evaluate_patch_classifier(
    model: nn.Module,
    x: Any,
    y: Any,
    *,
    masks: Any = None,
    noise_std: float = 0.05,
    pgd_eps: float = 2 / 255,
    pgd_steps: int = 10,
    cam_samples: int = 8,
    cam_std: float = 0.1,
    seed: int = 0,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Score a patch classifier: accuracy, robustness and where it looks.

    Args:
        model: a classifier with a ``features`` block (the Grad-CAM layer), e.g. ``PatchCNN``.
        x, y: uint8 test patches and their classes; class 1 is the positive class of the AUROC.
        masks: bool lesion masks ``(N, S, S)``; the localization scores use the patches whose mask marks some
            but not all pixels (the lesion patches), with the map of their own class.
        noise_std: standard deviation of the Gaussian noise (pixels in ``[0, 1]``), seeded with ``seed``.
        pgd_eps, pgd_steps: L-inf PGD radius (in ``[0, 1]`` pixel units) and steps (random start, bounds
            ``[0, 1]``).
        cam_samples, cam_std: Smooth Grad-CAM++'s noisy copies and their noise.
        seed: seeds the noise, the PGD start and Smooth Grad-CAM++'s copies.

    Returns:
        Floats ``auroc``, ``balanced_accuracy``, ``noise_balanced_accuracy``, ``pgd_balanced_accuracy``,
        ``gradcam_auroc`` and ``sgcampp_auroc`` (means over the lesion patches; NaN without masks; a map that is
        zero everywhere after Grad-CAM's ReLU, no positive evidence, ties every pixel and scores 0.5), and per-patch
        lists ``correct`` (0/1 on clean patches), ``score`` (probability of class 1), ``gradcam_items`` and
        ``sgcampp_items`` (per lesion patch, in test order).
    """
    from robustlab.common.attacks import PGD
    from robustlab.common.attribution import GradCAM, SmoothGradCAMPlusPlus
    from robustlab.common.metrics import auroc, balanced_accuracy
    from robustlab.common.metrics.localization import localization_auroc
    from robustlab.common.training import predict_proba

    xs = to_unit(x)
    ys = torch.as_tensor(np.asarray(y, dtype=np.int64))
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)

    def predict(batch: Tensor) -> np.ndarray:
        return predict_proba(model, batch, batch_size=batch_size)

    clean, noisy, adv = [], [], []
    torch.manual_seed(seed)
    attack = PGD(model, eps=pgd_eps, steps=pgd_steps, bounds=(0.0, 1.0))
    for xb, yb in zip(xs.split(batch_size), ys.split(batch_size)):
        clean.append(predict(xb))
        noisy.append(predict((xb + noise_std * torch.randn(xb.shape, generator=g)).clamp(0.0, 1.0)))
        adv.append(predict(attack(xb.to(device), yb.to(device)).detach().cpu()))
    p, pn, pa = np.concatenate(clean), np.concatenate(noisy), np.concatenate(adv)
    yn = ys.numpy()
    both = len(np.unique(yn)) > 1
    out: dict[str, Any] = {
        "auroc": float(auroc(yn, p[:, 1])) if both and p.shape[1] == 2 else float(auroc(yn, p)) if both else math.nan,
        "balanced_accuracy": float(balanced_accuracy(yn, p.argmax(1))),
        "noise_balanced_accuracy": float(balanced_accuracy(yn, pn.argmax(1))),
        "pgd_balanced_accuracy": float(balanced_accuracy(yn, pa.argmax(1))),
        "correct": (p.argmax(1) == yn).astype(int).tolist(),
        "score": [round(float(v), 6) for v in p[:, -1]],
    }
    out["gradcam_auroc"] = out["sgcampp_auroc"] = math.nan
    out["gradcam_items"] = out["sgcampp_items"] = []
    if masks is not None:
        m = np.asarray(masks, dtype=bool)
        if m.shape != tuple(xs.shape[:1]) + tuple(xs.shape[2:]):
            raise DataError(f"masks of shape {m.shape} do not match the patches {tuple(xs.shape)}")
        share = m.reshape(len(m), -1).mean(1)
        lesion = np.flatnonzero((share > 0) & (share < 1))
        if len(lesion):
            layer = getattr(model, "features", None)
            cams = {"gradcam": GradCAM(model, layer=layer),
                    "sgcampp": SmoothGradCAMPlusPlus(model, layer=layer, n_samples=cam_samples, std=cam_std,
                                                     generator=torch.Generator().manual_seed(seed))}
            for name, method in cams.items():
                scores = []
                for chunk in np.array_split(lesion, max(1, math.ceil(len(lesion) / batch_size))):
                    idx = torch.as_tensor(chunk)
                    maps = method(xs[idx].to(device), ys[idx].to(device)).detach().cpu()
                    scores.append(np.asarray(localization_auroc(maps[:, 0].numpy(), m[chunk]), dtype=np.float64))
                items = np.concatenate(scores)
                out[f"{name}_items"] = [None if not np.isfinite(v) else round(float(v), 6) for v in items]
                out[f"{name}_auroc"] = float(np.nanmean(items)) if np.isfinite(items).any() else math.nan
    return out


def gan_quality(model: nn.Module, real_train: Any, real_test: Any, fake: Any, *, k: int = 3) -> dict[str, float]:
    """How close a GAN's patches are to the real ones, in the feature space of ``model`` (a classifier trained on
    real patches only) and in pixels.

    Returns:
        ``fd`` (Fréchet distance of the fakes' features to the real training patches'), ``fd_real`` (of the real
        test patches' to the real training patches': the value a perfect generator would reach up to sampling),
        ``precision`` and ``recall`` (Kynkäänniemi et al. 2019, ``k`` nearest neighbours, fakes against the real
        training patches), ``copy_share`` (share of fakes closer in pixels to a training patch than the 1st
        percentile of the real test patches' nearest-training distances) and ``nn_ratio`` (median nearest-training
        distance of the fakes over that of the real test patches: near 0 means copies). A Fréchet distance is NaN
        when the covariances are too ill-conditioned for a real matrix square root.
    """
    from robustlab.common.metrics.generative import (
        frechet_distance,
        nearest_neighbour_check,
        precision_recall,
    )

    f_train, f_test, f_fake = embed(model, real_train), embed(model, real_test), embed(model, fake)
    pr = precision_recall(f_train, f_fake, k=k)
    flat = [np.asarray(a, dtype=np.float64).reshape(len(a), -1) / 255.0 for a in (fake, real_train, real_test)]
    nn_check = nearest_neighbour_check(*flat)

    def fd(a: np.ndarray, b: np.ndarray) -> float:
        try:
            return float(frechet_distance(a, b))
        except ValueError:  # covariances too ill-conditioned for a real square root: no distance, not a crash
            return math.nan

    return {"fd": fd(f_train, f_fake), "fd_real": fd(f_train, f_test),
            "precision": float(pr["precision"]), "recall": float(pr["recall"]),
            "copy_share": float(nn_check["copy_share"]), "nn_ratio": float(nn_check["median_ratio"])}
