"""Noisy labels: generating known corruption, estimating it, finding the wrong labels and correcting the loss.

The pieces, all pure functions over arrays (no model inside):

- *generators* of known corruption, so that tests and benchmarks can check that a method finds what was injected:
  :func:`transition_matrix` (symmetric, pair and random-pair noise), :func:`corrupt` (draws each label from its
  row), the wrappers :func:`symmetric_noise` and :func:`pair_noise`, and :func:`noise_rate` (the fraction that
  changed). Numpy in, numpy out.
- *estimators* of the corruption matrix ``C`` (rows = true class, columns = observed label, ``C[i, j] =
  P(noisy = j | true = i)``, rows sum to 1): :func:`estimate_corruption` from a small trusted set (the gold loss
  correction of Hendrycks et al. 2018, GLC), :func:`anchor_transition_matrix` from anchor points without trusted
  data (Patrini et al. 2017), and :func:`estimate_noise_rate`, the confident-learning estimate of the fraction of
  wrong labels (Northcutt et al. 2021).
- *detectors*: :func:`label_distribution` and :func:`confidence`, the label-distribution confidence of Liu et al.
  2020 (LDCE: a sample's distances to the trusted samples of each class, turned into a distribution over classes;
  the share of its observed label, smoothed across epochs), :func:`find_noisy` (the mask of low confidence), and
  :func:`confident_learning_issues`, a checked call of cleanlab's ``find_label_issues`` (Northcutt et al. 2021);
  :func:`detection_scores` compares a flagged mask with the true noise mask.
- *correction*: :func:`forward_loss`, the forward-corrected cross-entropy ``-log((softmax(logits) @ C)[y])``
  (Patrini et al. 2017), which GLC trains with its estimated ``C``.

Masks follow cleanlab's convention: ``True`` marks a label flagged as wrong. Seeds are an ``int``, ``None`` or a
``numpy.random.Generator``; the same seed gives the same output. Nothing is imported at module level beyond numpy
and torch (cleanlab is imported inside :func:`confident_learning_issues`).

Reference:
    Liu, Y., Xu, N., Zhang, Y., Geng, X. "Label Distribution for Learning with Noisy Labels", IJCAI 2020
    (authors' code: palm-ml/PDLE@e325db6, ``PDLE/detect.py``, ``PDLE/genC.py``, ``PDLE/utils.py``).
    Hendrycks, D., Mazeika, M., Wilson, D., Gimpel, K. "Using Trusted Data to Train Deep Networks on Labels
    Corrupted by Severe Noise", NeurIPS 2018.
    Patrini, G., Rozza, A., Menon, A. K., Nock, R., Qu, L. "Making Deep Neural Networks Robust to Label Noise:
    a Loss Correction Approach", CVPR 2017.
    Northcutt, C., Jiang, L., Chuang, I. "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 2021.
    Han, B. et al. "Co-teaching: Robust Training of Deep Neural Networks with Extremely Noisy Labels", NeurIPS
    2018 (pair flipping).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from robustlab.common.arrays import to_numpy
from robustlab.common.errors import ConfigError, DataError

__all__ = [
    "label_distribution",
    "confidence",
    "find_noisy",
    "estimate_corruption",
    "forward_loss",
]

_TINY = 1e-12
_ROW_ATOL = 1e-6
_PROB_ATOL = 1e-3
_CHUNK_ELEMENTS = 1 << 24  # at most this many (sample, support, feature) differences at once in label_distribution


# ----------------------------------------------------------------------------------------------------- helpers


def _check_num_classes(num_classes: Any, name: str = "num_classes") -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ConfigError(f"{name} must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


def _labels(labels: Any, num_classes: int, name: str = "labels") -> np.ndarray:
    """``labels`` as a 1-D int64 array of integers in ``[0, num_classes)``; DataError naming the first bad one."""
    a = to_numpy(labels)
    if a.ndim != 1:
        raise DataError(f"{name} must be 1-D (N,), got shape {tuple(a.shape)}")
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise DataError(f"{name} must hold integer class indices, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{name}[{i}] = {a[i].item()!r} is not an integer class index")
    bad = (a < 0) | (a >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{name}[{i}] = {a[i].item()!r} is not a class index in [0, {num_classes})")
    return a.astype(np.int64)


def _probs(probs: Any, name: str, num_classes: int | None = None) -> np.ndarray:
    """``probs`` as an (N, K) float64 array of finite, non-negative rows that sum to 1 (within 1e-3)."""
    p = to_numpy(probs)
    if p.ndim != 2:
        raise DataError(f"{name} must be 2-D (N, K), got shape {tuple(p.shape)}")
    if num_classes is not None and p.shape[1] != num_classes:
        raise DataError(f"{name} has {p.shape[1]} columns, expected num_classes = {num_classes}")
    if len(p) == 0:
        raise DataError(f"{name} has no rows")
    p = p.astype(np.float64)
    bad = ~np.isfinite(p) | (p < 0)
    if bad.any():
        i, j = np.unravel_index(int(np.argmax(bad)), p.shape)
        raise DataError(f"{name}[{i}, {j}] = {p[i, j].item()!r} is not a probability (finite, >= 0)")
    sums = p.sum(axis=1)
    bad = np.abs(sums - 1) > _PROB_ATOL
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"row {i} of {name} sums to {sums[i]:.6g}, expected 1 (probabilities, e.g. a softmax)")
    return p


def _float_tensor(a: Any, name: str, device=None) -> Tensor:
    """``a`` as a floating tensor: a floating tensor keeps its dtype, anything else becomes float32."""
    t = a if isinstance(a, Tensor) else torch.as_tensor(np.asarray(a))
    if not t.is_floating_point():
        t = t.float()
    elif not isinstance(a, Tensor):
        t = t.float()
    return t if device is None else t.to(device)


def _label_tensor(labels: Any, num_classes: int, n: int, name: str, device) -> Tensor:
    """``labels`` as an int64 tensor of length ``n`` on ``device`` with values in ``[0, num_classes)``."""
    if isinstance(labels, Tensor):
        if labels.ndim != 1:
            raise DataError(f"{name} must be 1-D (N,), got shape {tuple(labels.shape)}")
        if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
            _labels(labels, num_classes, name)  # names the first non-integer value
        t = labels.long()
        bad = (t < 0) | (t >= num_classes)
        if bool(bad.any()):
            i = int(torch.argmax(bad.to(torch.uint8)))
            raise DataError(f"{name}[{i}] = {int(t[i])} is not a class index in [0, {num_classes})")
        t = t.to(device)
    else:
        t = torch.as_tensor(_labels(labels, num_classes, name), device=device)
    if len(t) != n:
        raise DataError(f"{name} has {len(t)} entries, expected {n} (one per sample)")
    return t


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ConfigError(f"seed must be an int, None or a numpy.random.Generator, got {seed!r}")
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------------- detection


def label_distribution(features: Any, support_features: Any, support_labels: Any, num_classes: int) -> Tensor:
    """LDCE's label distribution: how close each sample lies to the trusted (support) samples of each class.

    For sample ``n`` and class ``j``, ``d_j`` is the mean, over class ``j``'s support samples ``s``, of the mean
    squared difference over the feature dimensions, ``mean_d (f_n[d] - s[d]) ** 2``; the similarity is
    ``1 / d_j`` (``d_j`` clamped at 1e-12) and the distribution is ``softmax_j(1 / d_j)``, without a
    temperature, as in the authors' ``detect.py`` (``torch.pow(a - b, 2).mean(1)``, then the mean over the shots,
    then ``1 /``; the share of the label is ``exp(s_y) / sum_j exp(s_j)``). Differentiable; LDCE calls it on
    detached features.

    Args:
        features: the embeddings of the samples to score, a tensor or array; flattened to ``(N, D)``.
        support_features: the embeddings of the trusted samples, flattened to ``(M, D)``.
        support_labels: their classes, integers in ``[0, num_classes)``; every class needs at least one.
        num_classes: ``K``.

    Returns:
        ``(N, K)`` rows summing to 1, on the features' device: float32, or the features' dtype when they are a
        floating tensor (float64 stays float64).

    Shape:
        features ``(N, *)``, support_features ``(M, *)`` with the same number of elements per sample,
        support_labels ``(M,)``; returns ``(N, K)``.

    Reference:
        Liu, Y., Xu, N., Zhang, Y., Geng, X. "Label Distribution for Learning with Noisy Labels", IJCAI 2020
        (palm-ml/PDLE@e325db6, ``PDLE/detect.py``).

    Examples::

        >>> support = [[0.0], [2.0]]                 # one trusted sample of class 0 at 0, one of class 1 at 2
        >>> dist = label_distribution([[1.0], [0.5]], support, [0, 1], 2)
        >>> dist[0].tolist()                         # equidistant: d = (1, 1)
        [0.5, 0.5]
        >>> round(dist[1, 0].item(), 4)              # d = (0.25, 2.25): softmax(4, 0.444...)
        0.9722
    """
    k = _check_num_classes(num_classes)
    f = _float_tensor(features, "features")
    s = _float_tensor(support_features, "support_features", device=f.device).to(f.dtype)
    if f.ndim == 0 or s.ndim == 0:
        raise DataError("features and support_features need a sample dimension first, got a scalar")
    f, s = f.reshape(len(f), -1), s.reshape(len(s), -1)
    if f.shape[1] != s.shape[1]:
        raise DataError(f"features have {f.shape[1]} values per sample but support_features have {s.shape[1]}")
    y = _label_tensor(support_labels, k, len(s), "support_labels", f.device)
    counts = torch.bincount(y, minlength=k)
    if bool((counts == 0).any()):
        missing = int(torch.nonzero(counts == 0)[0, 0])
        raise DataError(f"class {missing} has no support sample (support_labels must contain every class in "
                        f"[0, {k}))")
    one_hot = F.one_hot(y, k).to(f.dtype) / counts.to(f.dtype)  # (M, K): averaging over each class's shots
    n, m, d = len(f), len(s), f.shape[1]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, m * d))
    parts = []
    for start in range(0, n, chunk):
        diff = f[start:start + chunk, None, :] - s[None, :, :]
        parts.append(diff.pow(2).mean(dim=2) @ one_hot)  # (n_chunk, K): per-class mean of the mean squared diff
    dist = torch.cat(parts) if parts else f.new_zeros((0, k))
    return torch.softmax(1.0 / dist.clamp_min(_TINY), dim=1)


def confidence(distribution: Any, labels: Any, *, previous: Any = None, alpha: float = 0.6) -> Tensor:
    """The share of each sample's observed label in its label distribution, optionally smoothed over epochs.

    ``share[n] = distribution[n, labels[n]]``; with ``previous`` (the confidences of the same samples from the
    last visit) the result is ``alpha * previous + (1 - alpha) * share``, the authors' running average across
    epochs (``alpha = 0.6``; they start from ``previous = 0``).

    Args:
        distribution: ``(N, K)`` label distributions (e.g. :func:`label_distribution`), tensor or array.
        labels: the observed labels, integers in ``[0, K)``.
        previous: ``(N,)`` earlier confidences, or ``None`` for the share alone.
        alpha: the weight of ``previous``, in ``[0, 1]``.

    Returns:
        ``(N,)`` on the distribution's device and dtype (float32 for arrays).

    Shape:
        distribution ``(N, K)``, labels ``(N,)``, previous ``(N,)``; returns ``(N,)``.

    Reference:
        Liu et al., IJCAI 2020 (palm-ml/PDLE@e325db6, ``PDLE/detect.py``, ``batch_confidence``).

    Examples::

        >>> dist = [[0.9, 0.1], [0.3, 0.7]]
        >>> confidence(dist, [0, 0])
        tensor([0.9000, 0.3000])
        >>> confidence(dist, [0, 0], previous=[0.0, 1.0], alpha=0.5)  # 0.5 * previous + 0.5 * share
        tensor([0.4500, 0.6500])
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)) \
            or not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f"alpha must be a number in [0, 1], got {alpha!r}")
    dist = _float_tensor(distribution, "distribution")
    if dist.ndim != 2:
        raise DataError(f"distribution must be 2-D (N, K), got shape {tuple(dist.shape)}")
    y = _label_tensor(labels, dist.shape[1], len(dist), "labels", dist.device)
    share = dist.gather(1, y[:, None]).squeeze(1)
    if previous is None:
        return share
    prev = _float_tensor(previous, "previous", device=dist.device).to(dist.dtype)
    if tuple(prev.shape) != (len(dist),):
        raise DataError(f"previous must have shape ({len(dist)},) (one confidence per sample), got "
                        f"{tuple(prev.shape)}")
    return float(alpha) * prev + (1.0 - float(alpha)) * share


def find_noisy(confidences: Any, threshold: float = 0.5) -> np.ndarray:
    """The mask of samples whose label confidence is below ``threshold``: ``True`` = flagged as a wrong label.

    Like cleanlab's masks, ``True`` marks a label issue; the complement (confidence ``>= threshold``) is what
    LDCE calls the detected clean set.

    Args:
        confidences: ``(N,)`` confidences (e.g. :func:`confidence`), tensor or array, finite.
        threshold: a finite number (the authors use 0.5).

    Returns:
        ``(N,)`` numpy bool array.

    Examples::

        >>> find_noisy([0.9, 0.2, 0.5]).tolist()
        [False, True, False]
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)) \
            or not math.isfinite(threshold):
        raise ConfigError(f"threshold must be a finite number, got {threshold!r}")
    c = to_numpy(confidences)
    if c.ndim != 1:
        raise DataError(f"confidences must be 1-D (N,), got shape {tuple(c.shape)}")
    if not (np.issubdtype(c.dtype, np.floating) or np.issubdtype(c.dtype, np.integer)) or c.dtype == bool:
        raise DataError(f"confidences must be numbers, got dtype {c.dtype}")
    bad = ~np.isfinite(c)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"confidences[{i}] = {c[i].item()!r} is not finite")
    return c < threshold


# -------------------------------------------------------------------------------------------------- estimators


def estimate_corruption(probs: Any, true_labels: Any, num_classes: int) -> np.ndarray:
    """GLC's estimate of the corruption matrix from a trusted set: row ``i`` is the mean prediction over the
    trusted samples of true class ``i``.

    ``probs`` come from a model trained on the noisy labels, evaluated on the trusted samples; such a model
    predicts ``P(noisy label | x)``, so averaging over the samples whose true class is ``i`` estimates
    ``C[i, j] = P(noisy = j | true = i)``. (The authors' ``genC.py`` returns the transpose; rows here are the
    true class.)

    Args:
        probs: ``(N, K)`` predicted probabilities of the trusted samples (rows sum to 1).
        true_labels: their true classes, integers in ``[0, K)``; every class needs at least one.
        num_classes: ``K``.

    Returns:
        ``(K, K)`` float64, rows = true class, columns = observed label, rows summing to 1.

    Shape:
        probs ``(N, K)``, true_labels ``(N,)``; returns ``(K, K)``.

    Reference:
        Hendrycks, D., Mazeika, M., Wilson, D., Gimpel, K. "Using Trusted Data to Train Deep Networks on Labels
        Corrupted by Severe Noise", NeurIPS 2018 (C-hat, algorithm 1).

    Examples::

        >>> estimate_corruption([[0.8, 0.2], [0.6, 0.4], [0.1, 0.9]], [0, 0, 1], 2).round(6).tolist()
        [[0.7, 0.3], [0.1, 0.9]]
    """
    k = _check_num_classes(num_classes)
    p = _probs(probs, "probs", k)
    y = _labels(true_labels, k, "true_labels")
    if len(y) != len(p):
        raise DataError(f"true_labels has {len(y)} entries but probs has {len(p)} rows")
    counts = np.bincount(y, minlength=k)
    if (counts == 0).any():
        missing = int(np.flatnonzero(counts == 0)[0])
        raise DataError(f"class {missing} has no trusted sample in true_labels: its row of C cannot be estimated")
    c = np.zeros((k, k))
    np.add.at(c, y, p)
    return c / counts[:, None]


# -------------------------------------------------------------------------------------------------- correction


def forward_loss(logits: Tensor, labels: Any, C: Any, reduction: str = "mean") -> Tensor:
    """Forward-corrected cross-entropy: ``-log((softmax(logits) @ C)[n, labels[n]])``.

    The model's softmax estimates the clean class posterior; multiplying by ``C`` (rows = true class, columns =
    observed label) gives the posterior of the observed, noisy label, which the noisy labels train. With
    ``C = I`` it is the ordinary cross-entropy. The probability is clamped at 1e-12 before the log.

    Args:
        logits: ``(N, K)`` model outputs.
        labels: ``(N,)`` observed labels, integers in ``[0, K)`` (tensor or array).
        C: ``(K, K)`` corruption matrix, tensor or array; moved to the logits' device. The loss is computed in
            the logits' dtype, at least float32 (half-precision logits under autocast are promoted, since 1e-12
            underflows in float16).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per sample).

    Returns:
        a scalar, or ``(N,)`` with ``reduction="none"``.

    Shape:
        logits ``(N, K)``, labels ``(N,)``, C ``(K, K)``.

    Reference:
        Patrini, G. et al. "Making Deep Neural Networks Robust to Label Noise: a Loss Correction Approach", CVPR
        2017 (forward correction); Hendrycks et al., NeurIPS 2018 (GLC trains with it).

    Examples::

        >>> import torch
        >>> logits, y = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
        >>> bool(torch.isclose(forward_loss(logits, y, torch.eye(2)), torch.nn.functional.cross_entropy(logits, y)))
        True
        >>> forward_loss(logits, y, [[0.5, 0.5], [0.5, 0.5]], reduction="none")  # C erases the label: log 2
        tensor([0.6931, 0.6931])
    """
    if reduction not in ("mean", "sum", "none"):
        raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise DataError(f"logits must be a 2-D tensor (N, K), got {shape}")
    n, k = logits.shape
    dtype = torch.promote_types(logits.dtype, torch.float32)
    c = (C if isinstance(C, Tensor) else torch.as_tensor(np.asarray(C, dtype=np.float64)))
    c = c.to(device=logits.device, dtype=dtype)
    if tuple(c.shape) != (k, k):
        raise DataError(f"C must have shape ({k}, {k}) to match the logits' {k} classes, got {tuple(c.shape)}")
    y = _label_tensor(labels, k, n, "labels", logits.device)
    noisy = torch.softmax(logits.to(dtype), dim=1) @ c
    loss = -torch.log(noisy.gather(1, y[:, None]).squeeze(1).clamp_min(_TINY))
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
