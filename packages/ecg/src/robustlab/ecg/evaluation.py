"""Evaluation as the ECG literature reports it: AAMI EC57 per-class figures, confusion matrices, multi-label F1 and
AUROC, and accuracy under PGD (mV) and under realistic noise at stated SNRs.

The AAMI figures (sensitivity Se, positive predictivity +P, F1 of N, S, V, F; macro-F1 over those four) come from
:func:`robustlab.common.metrics.per_class_report`; the inter-patient protocol (train on DS1, test on DS2) is the
default everywhere. The classical inter-patient reference is :data:`DE_CHAZAL_2004`.

matplotlib is imported inside the plotting function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["BEAT_CLASSES", "DE_CHAZAL_2004", "aami_report", "balanced_subset", "multilabel_report", "plot_confusion",
           "predict_proba", "robustness"]

BEAT_CLASSES = ("N", "S", "V", "F")
"""The AAMI classes the inter-patient benchmark scores (Q, unclassifiable beats, is left out as usual)."""

DE_CHAZAL_2004 = {"S": {"sensitivity": 0.759, "positive_predictivity": 0.385},
                  "V": {"sensitivity": 0.777, "positive_predictivity": 0.819}}
"""de Chazal, O'Dwyer & Reilly (2004), IEEE TBME 51(7):1196-1206, linear discriminants on RR and morphology
features, DS1 -> DS2 (Table VI, gross statistics). F1 follows from Se and +P."""


def _f1(se: float, pp: float) -> float:
    return 2 * se * pp / (se + pp) if se + pp > 0 else float("nan")


for _c in DE_CHAZAL_2004.values():
    _c["f1"] = _f1(_c["sensitivity"], _c["positive_predictivity"])


def aami_report(y_true: Any, y_pred: Any, classes: Sequence[str] = BEAT_CLASSES) -> dict[str, Any]:
    """AAMI EC57 figures of beat predictions.

    Args:
        y_true, y_pred: class indices into ``classes``.
        classes: the class names.

    Returns:
        ``{"per_class": {name: {"sensitivity", "positive_predictivity", "f1", "support"}}, "macro_f1",
        "accuracy", "confusion": K x K list (rows true, columns predicted), "classes"}``; a ratio with a zero
        denominator is NaN (a class never predicted has no +P); macro-F1 is the mean over the classes whose F1 is
        defined.
    """
    from robustlab.common.metrics import confusion_matrix, per_class_report

    k = len(classes)
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    rep = per_class_report(y_true, y_pred, num_classes=k)
    per_class = {c: {"sensitivity": float(rep["sensitivity"][i]), "positive_predictivity":
                     float(rep["positive_predictivity"][i]), "f1": float(rep["f1"][i]),
                     "support": int(rep["support"][i])} for i, c in enumerate(classes)}
    f1 = rep["f1"][~np.isnan(rep["f1"])]
    return {"classes": list(classes), "per_class": per_class,
            "macro_f1": float(f1.mean()) if f1.size else float("nan"),
            "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
            "confusion": confusion_matrix(y_true, y_pred, num_classes=k).tolist()}


def flat_metrics(report: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"macro_f1", "accuracy", "<c>_se", "<c>_pp", "<c>_f1"}`` of an :func:`aami_report` (NaN kept)."""
    out = {f"{prefix}macro_f1": report["macro_f1"], f"{prefix}accuracy": report["accuracy"]}
    for c, m in report["per_class"].items():
        out[f"{prefix}{c}_se"] = m["sensitivity"]
        out[f"{prefix}{c}_pp"] = m["positive_predictivity"]
        out[f"{prefix}{c}_f1"] = m["f1"]
    return out


def multilabel_report(y: Any, scores: Any, names: Sequence[str], *, threshold: float = 0.5) -> dict[str, Any]:
    """Per-label F1 (probabilities ``>= threshold``) and AUROC, and their macro averages over the labels where
    they are defined (a label without positives in ``y`` has no AUROC and no sensitivity)."""
    from robustlab.common.metrics import auroc

    y, s = np.asarray(y, np.float64), np.asarray(scores, np.float64)
    pred = s >= threshold
    per: dict[str, dict[str, float]] = {}
    for j, name in enumerate(names):
        t = y[:, j] > 0.5
        tp, fp, fn = int((pred[:, j] & t).sum()), int((pred[:, j] & ~t).sum()), int((~pred[:, j] & t).sum())
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan")
        a = float(auroc(t.astype(np.int64), s[:, j])) if 0 < t.sum() < len(t) else float("nan")
        per[name] = {"f1": f1, "auroc": a, "support": int(t.sum())}

    def mean(key: str) -> float:
        v = [m[key] for m in per.values() if math.isfinite(m[key])]
        return float(np.mean(v)) if v else float("nan")

    return {"per_label": per, "macro_f1": mean("f1"), "macro_auroc": mean("auroc"), "threshold": threshold}


def plot_confusion(confusion: Any, classes: Sequence[str], path: str | Path, *, title: str = "") -> Path:
    """A confusion matrix as a PNG: counts in each cell, colour by the row's share (sensitivity on the diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robustlab.common.io import atomic_path

    cm = np.asarray(confusion, dtype=np.float64)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.1 * len(classes) + 1.6, 1.1 * len(classes) + 1.2))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(cm[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def balanced_subset(y, n: int, seed: int):
    """``n`` sorted indices with the classes as equal as their sizes allow (a seeded draw): the subset scored
    under attacks and perturbations, where every class should weigh alike."""
    y = np.asarray(y)
    idx = np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes = list(np.unique(y))
    take: dict[Any, int] = {}
    left = n
    for i, c in enumerate(sorted(classes, key=lambda c: (y == c).sum())):
        share = left // (len(classes) - i)
        take[c] = min(int((y == c).sum()), share)
        left -= take[c]
    return np.sort(np.concatenate([rng.choice(idx[y == c], take[c], replace=False) for c in classes]))


def predict_proba(model: nn.Module, x: Any, *, batch_size: int = 1024, device: str | None = None) -> np.ndarray:
    """Softmax probabilities ``(N, K)`` of a classifier over windows ``(N, L)`` or ``(N, C, L)`` (eval mode, no grad):
    :func:`robustlab.common.training.predict_proba` with one channel added to ``(N, L)`` windows."""
    from robustlab.common.training import predict_proba as _predict_proba

    x = np.asarray(x, np.float32)
    return _predict_proba(model, x[:, None] if x.ndim == 2 else x, batch_size=batch_size, device=device)


def robustness(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    perturbations: Mapping[str, Sequence[float]],
    fs: float,
    seed: int = 0,
    classes: Sequence[str] = BEAT_CLASSES,
    attack: Callable[[float], np.ndarray] | None = None,
    eps: Sequence[float] = (),
) -> dict[str, float]:
    """Macro-F1 and accuracy on clean windows, under each realistic perturbation at each SNR, and under PGD.

    Args:
        predict: ``predict(windows (N, C, L) mV) -> class indices (N,)``.
        x, y: the windows and their classes.
        perturbations: ``{name: [snr_db, ...]}`` of :data:`robustlab.ecg.perturb.PERTURBATIONS`.
        fs: sampling rate of the windows.
        seed: seeds the noise (the same noise for every model given the same seed).
        attack: ``attack(eps) -> adversarial windows`` for each ``eps`` (mV), or None.
        eps: the PGD budgets.

    Returns:
        ``{"clean_macro_f1", "clean_accuracy", "<name>@<snr>dB_macro_f1", ..., "pgd@<eps>mV_macro_f1", ...}``.
    """
    from robustlab.ecg.perturb import perturb

    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        x = x[:, None]
    out: dict[str, float] = {}

    def score(key: str, xs: np.ndarray) -> None:
        rep = aami_report(y, predict(xs), classes)
        out[f"{key}_macro_f1"], out[f"{key}_accuracy"] = rep["macro_f1"], rep["accuracy"]

    score("clean", x)
    for name, snrs in perturbations.items():
        for snr in snrs:
            noisy = perturb(torch.from_numpy(x), name, snr, fs=fs, seed=seed).numpy()
            score(f"{name}@{snr:g}dB", noisy)
    if attack is not None:
        for e in eps:
            score(f"pgd@{e:g}mV", attack(e))
    return out
