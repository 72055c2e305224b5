"""Class-weighted losses for imbalanced data (arrhythmia beats, rare diagnoses), usable as any regime's ``loss=``.

A regime's training loss is ``loss(logits, y) -> scalar`` (see :class:`~robustlab.common.regimes.base.Regime`);
:class:`WeightedCrossEntropy` and :class:`WeightedBCE` are such losses, so the same weighting serves ERM, Gaussian
noise and adversarial training alike (attacks keep ascending the task's unweighted loss). Weights come from
:func:`class_weights`, scikit-learn's ``compute_class_weight("balanced")`` rule.

Examples::

    >>> import torch
    >>> from robustlab.common.losses import WeightedCrossEntropy, class_weights
    >>> y = torch.tensor([0, 0, 0, 1])
    >>> class_weights(y, 2).tolist()
    [0.6666666666666666, 2.0]
    >>> loss = WeightedCrossEntropy(class_weights(y, 2))
    >>> float(loss(torch.zeros(4, 2), y))  # log 2 whatever the weights
    0.6931471824645996
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from robustlab.common.errors import ConfigError
from robustlab.common.tasks import UNLABELED

__all__ = ["WeightedBCE", "WeightedCrossEntropy", "class_weights", "positive_weights"]


def class_weights(y: Any, num_classes: int, *, how: str = "balanced", power: float = 1.0) -> np.ndarray:
    """Per-class weights ``(n / (K * n_k)) ** power`` (``how="balanced"``), or ones (``how="none"``).

    ``power=1`` is scikit-learn's ``compute_class_weight("balanced")``; ``power=0.5`` softens it. Unlabelled
    samples (:data:`~robustlab.common.tasks.UNLABELED`) are left out. A class without samples gets weight 0 (it
    cannot occur in a batch).

    Args:
        y: class indices ``(N,)``.
        num_classes: ``K``.
        how: ``"balanced"`` or ``"none"``.
        power: exponent applied to the balanced weights, ``> 0``.

    Returns:
        float64 array ``(K,)``.
    """
    if how not in ("balanced", "none"):
        raise ConfigError(f"class_weights: how must be 'balanced' or 'none', got {how!r}")
    if not power > 0:
        raise ConfigError(f"class_weights: power must be > 0, got {power!r}")
    y = np.asarray(y.cpu() if isinstance(y, Tensor) else y).astype(np.int64).ravel()
    y = y[y != UNLABELED]
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ConfigError(f"class_weights: labels must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    if how == "none":
        return np.ones(num_classes)
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    with np.errstate(divide="ignore"):
        w = np.where(counts > 0, len(y) / (num_classes * counts), 0.0)
    return w ** power


def positive_weights(y: Any, *, max_weight: float = 100.0) -> np.ndarray:
    """Per-label ``negatives / positives`` of 0/1 rows ``(N, L)`` (``BCEWithLogitsLoss(pos_weight=...)``),
    clipped to ``[1, max_weight]`` (a label without positives gets ``max_weight``); NaN entries are ignored."""
    y = np.asarray(y.cpu() if isinstance(y, Tensor) else y, dtype=np.float64)
    y = y.reshape(len(y), -1)
    known = ~np.isnan(y)
    pos = np.where(known, y > 0.5, False).sum(0).astype(np.float64)
    neg = known.sum(0) - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(pos > 0, neg / np.maximum(pos, 1), max_weight)
    return np.clip(w, 1.0, max_weight)


class WeightedCrossEntropy:
    """Class-weighted cross entropy on class indices, the weighted mean over labelled samples
    (``F.cross_entropy(weight=w, ignore_index=-1)``); a batch without labelled samples gives a zero that keeps
    the graph.

    Args:
        weights: ``(K,)`` non-negative weights (see :func:`class_weights`).
    """

    def __init__(self, weights: Any) -> None:
        w = torch.as_tensor(np.asarray(weights, dtype=np.float32))
        if w.ndim != 1 or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ConfigError(f"WeightedCrossEntropy: weights must be a finite non-negative vector, got {weights!r}")
        self.weights = w

    def __call__(self, logits: Tensor, y: Tensor) -> Tensor:
        if logits.shape[-1] != len(self.weights):
            raise ConfigError(f"WeightedCrossEntropy has {len(self.weights)} class weights but the logits have "
                              f"{logits.shape[-1]} classes")
        w = self.weights.to(device=logits.device, dtype=logits.dtype)
        labelled = y != UNLABELED
        mean = F.cross_entropy(logits, y, weight=w, ignore_index=UNLABELED)
        return torch.where(labelled.any(), torch.nan_to_num(mean), logits.sum() * 0.0)

    def __repr__(self) -> str:
        return f"WeightedCrossEntropy({[round(float(v), 4) for v in self.weights]})"


class WeightedBCE:
    """Binary cross entropy on logits with per-label positive weights (``pos_weight``), the mean over the known
    (non-NaN) entries of 0/1 targets ``(N, L)``."""

    def __init__(self, pos_weight: Any) -> None:
        w = torch.as_tensor(np.asarray(pos_weight, dtype=np.float32))
        if w.ndim != 1 or not bool(torch.isfinite(w).all()) or bool((w <= 0).any()):
            raise ConfigError(f"WeightedBCE: pos_weight must be a finite positive vector, got {pos_weight!r}")
        self.pos_weight = w

    def __call__(self, logits: Tensor, y: Tensor) -> Tensor:
        y = y.to(logits.dtype).reshape(logits.shape)
        known = ~torch.isnan(y)
        pw = self.pos_weight.to(device=logits.device, dtype=logits.dtype)
        elem = F.binary_cross_entropy_with_logits(logits, torch.where(known, y, torch.zeros_like(y)),
                                                  pos_weight=pw, reduction="none")
        n = known.sum()
        return torch.where(n > 0, (elem * known).sum() / n.clamp_min(1), logits.sum() * 0.0)

    def __repr__(self) -> str:
        return f"WeightedBCE({[round(float(v), 4) for v in self.pos_weight]})"
