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
    "transition_matrix",
    "check_transition_matrix",
    "corrupt",
    "symmetric_noise",
    "pair_noise",
    "noise_rate",
    "estimate_noise_rate",
    "label_distribution",
    "inverse_distances",
    "confidence",
    "find_noisy",
    "estimate_corruption",
    "anchor_transition_matrix",
    "forward_loss",
    "detection_scores",
    "confident_learning_issues",
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
    return _stochastic_rows(p.astype(np.float64), name, _PROB_ATOL, lambda i: "probabilities, e.g. a softmax")


def _stochastic_rows(a: np.ndarray, name: str, atol: float, meaning) -> np.ndarray:
    """``a`` (2-D float64) when every entry is finite and >= 0 and every row sums to 1 within ``atol``; else a
    DataError naming the entry, or the row with its sum and ``meaning(row)``."""
    bad = ~np.isfinite(a) | (a < 0)
    if bad.any():
        i, j = np.unravel_index(int(np.argmax(bad)), a.shape)
        raise DataError(f"{name}[{i}, {j}] = {a[i, j].item()!r} is not a probability (finite, >= 0)")
    sums = a.sum(axis=1)
    bad = np.abs(sums - 1.0) > atol
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"row {i} of {name} sums to {sums[i]:.9g}, expected 1 (within {atol:g}): {meaning(i)}")
    return a


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


# -------------------------------------------------------------------------------------------------- generators

_KINDS = ("symmetric", "pair", "random_pair")


def _check_rate(rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)) \
            or not 0.0 <= float(rate) < 1.0:
        raise ConfigError(f"rate must be a number in [0, 1), got {rate!r}")
    return float(rate)


def transition_matrix(kind: str, rate: float, num_classes: int, *, seed=None) -> np.ndarray:
    """A corruption matrix of a standard kind, rows = true class, columns = observed label.

    - ``"symmetric"``: ``C[i, i] = 1 - rate``, every other entry ``rate / (K - 1)`` (the authors' ``"unif"``), so
      ``rate`` is the expected fraction of wrong labels;
    - ``"pair"``: each class sends ``rate`` to the next one, ``C[i, (i + 1) % K] = rate`` (Han et al. 2018's pair
      flipping);
    - ``"random_pair"``: each class sends ``rate`` to ONE other class drawn at random with ``seed`` (the authors'
      ``"flip"``).

    Args:
        kind: ``"symmetric"``, ``"pair"`` or ``"random_pair"``.
        rate: the fraction of each class's labels that change, in ``[0, 1)``.
        num_classes: ``K >= 2``.
        seed: for ``"random_pair"``: an int, ``None`` or a ``numpy.random.Generator``.

    Returns:
        ``(K, K)`` float64, rows summing to 1.

    Reference:
        Liu et al., IJCAI 2020 (palm-ml/PDLE@e325db6, ``PDLE/utils.py``); Han, B. et al., NeurIPS 2018.

    Examples::

        >>> transition_matrix("symmetric", 0.3, 3).round(3).tolist()
        [[0.7, 0.15, 0.15], [0.15, 0.7, 0.15], [0.15, 0.15, 0.7]]
        >>> transition_matrix("pair", 0.2, 3).round(3).tolist()
        [[0.8, 0.2, 0.0], [0.0, 0.8, 0.2], [0.2, 0.0, 0.8]]
    """
    if kind not in _KINDS:
        raise ConfigError(f"kind must be one of {', '.join(map(repr, _KINDS))}, got {kind!r}")
    rate = _check_rate(rate)
    k = _check_num_classes(num_classes)
    if kind == "symmetric":
        c = np.full((k, k), rate / (k - 1))
        np.fill_diagonal(c, 1.0 - rate)
        return c
    c = np.eye(k) * (1.0 - rate)
    rows = np.arange(k)
    if kind == "pair":
        targets = (rows + 1) % k
    else:
        draws = _rng(seed).integers(0, k - 1, size=k)  # one of the K - 1 other classes, uniformly
        targets = draws + (draws >= rows)
    c[rows, targets] += rate
    return c


def check_transition_matrix(C: Any, num_classes: int | None = None) -> np.ndarray:
    """``C`` as a float64 array, checked: square (``(num_classes, num_classes)`` when given), finite,
    non-negative, every row summing to 1 (within 1e-6).

    Args:
        C: the matrix, array or tensor.
        num_classes: the expected ``K``, or ``None`` for any.

    Returns:
        ``(K, K)`` float64 copy.

    Raises:
        DataError: naming the shape, the entry or the row (with its sum) at fault.

    Examples::

        >>> check_transition_matrix([[0.9, 0.1], [0.0, 1.0]]).tolist()
        [[0.9, 0.1], [0.0, 1.0]]
    """
    c = np.array(to_numpy(C), dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise DataError(f"C must be a square (K, K) matrix, got shape {tuple(c.shape)}")
    if num_classes is not None:
        k = _check_num_classes(num_classes)
        if c.shape != (k, k):
            raise DataError(f"C must have shape ({k}, {k}) for num_classes = {k}, got {tuple(c.shape)}")
    return _stochastic_rows(c, "C", _ROW_ATOL, lambda i: f"rows are P(observed label | true class {i})")


def corrupt(labels: Any, C: Any, *, seed=None) -> tuple[np.ndarray, np.ndarray]:
    """Noisy labels drawn from ``C``: the label of a sample of true class ``y`` is drawn from row ``C[y]``.

    Args:
        labels: ``(N,)`` true labels, integers in ``[0, K)``.
        C: ``(K, K)`` corruption matrix (checked with :func:`check_transition_matrix`).
        seed: an int, ``None`` or a ``numpy.random.Generator``; the same seed gives the same labels.

    Returns:
        ``(noisy_labels, is_noisy)``: ``(N,)`` int64 and ``(N,)`` bool (``noisy_labels != labels``).

    Examples::

        >>> noisy, is_noisy = corrupt([0, 1, 2, 0], transition_matrix("pair", 0.0, 3), seed=0)
        >>> noisy.tolist(), is_noisy.tolist()
        ([0, 1, 2, 0], [False, False, False, False])
    """
    c = check_transition_matrix(C)
    k = len(c)
    y = _labels(labels, k, "labels")
    rng = _rng(seed)
    u = rng.random(len(y))
    cum = np.cumsum(c, axis=1)
    cum = cum / cum[:, -1:]  # the last entry exactly 1, so u < 1 never falls past the last class
    noisy = np.empty_like(y)
    for i in range(k):
        at = np.flatnonzero(y == i)
        noisy[at] = np.searchsorted(cum[i], u[at], side="right")
    return noisy, noisy != y


def symmetric_noise(labels: Any, rate: float, num_classes: int, *, seed=None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric (uniform) label noise: a fraction ``rate`` of the labels, in expectation, moves to one of the
    ``K - 1`` other classes, uniformly. :func:`transition_matrix` ``("symmetric", ...)`` then :func:`corrupt`.

    Returns:
        ``(noisy_labels, is_noisy)`` as :func:`corrupt`.

    Examples::

        >>> import numpy as np
        >>> noisy, is_noisy = symmetric_noise(np.arange(10_000) % 10, 0.4, 10, seed=0)
        >>> round(float(is_noisy.mean()), 2)
        0.4
    """
    return corrupt(labels, transition_matrix("symmetric", rate, num_classes), seed=seed)


def pair_noise(labels: Any, rate: float, num_classes: int, *, seed=None,
               variant: str = "next") -> tuple[np.ndarray, np.ndarray]:
    """Pair (flip) label noise: a fraction ``rate`` of each class's labels moves to one other class.

    ``variant="next"``: class ``i`` flips to ``(i + 1) % K`` (Han et al. 2018); ``variant="random"``: each class
    flips to one other class drawn at random (the authors' ``"flip"``); the same ``seed`` draws the pairs and
    then the labels.

    Returns:
        ``(noisy_labels, is_noisy)`` as :func:`corrupt`.

    Examples::

        >>> noisy, _ = pair_noise([0, 1, 2], 0.5, 3, seed=1)
        >>> all(n in (y, (y + 1) % 3) for y, n in zip([0, 1, 2], noisy.tolist()))
        True
    """
    if variant not in ("next", "random"):
        raise ConfigError(f"variant must be 'next' or 'random', got {variant!r}")
    rng = _rng(seed)
    c = transition_matrix("pair" if variant == "next" else "random_pair", rate, num_classes, seed=rng)
    return corrupt(labels, c, seed=rng)


def noise_rate(noisy_labels: Any, true_labels: Any) -> float:
    """The observed fraction of labels that differ from the true ones.

    Examples::

        >>> noise_rate([0, 1, 1, 0], [0, 1, 0, 0])
        0.25
    """
    a, b = to_numpy(noisy_labels), to_numpy(true_labels)
    if a.ndim != 1 or b.ndim != 1:
        raise DataError(f"noisy_labels and true_labels must be 1-D, got shapes {tuple(a.shape)} and "
                        f"{tuple(b.shape)}")
    if len(a) != len(b):
        raise DataError(f"noisy_labels has {len(a)} entries but true_labels has {len(b)}")
    if len(a) == 0:
        raise DataError("noisy_labels and true_labels are empty: no rate to compute")
    return float(np.mean(a != b))


# --------------------------------------------------------------------------------------------------- detection


def label_distribution(features: Any, support_features: Any, support_labels: Any, num_classes: int) -> Tensor:
    """LDCE's label distribution: how close each sample lies to the trusted (support) samples of each class.

    For sample ``n`` and class ``j``, ``d_j`` is the mean, over class ``j``'s support samples ``s``, of the mean
    squared difference over the feature dimensions, ``mean_d (f_n[d] - s[d]) ** 2``; the similarity is
    ``1 / d_j`` (``d_j`` clamped at 1e-12) and the distribution is ``softmax_j(1 / d_j)``, without a
    temperature, as in the authors' ``detect.py`` (``torch.pow(a - b, 2).mean(1)``, then the mean over the shots,
    then ``1 /``; the share of the label is ``exp(s_y) / sum_j exp(s_j)``). Differentiable; LDCE calls it on
    detached features. Without a temperature the scale of the features matters: the distribution is sharp only
    where the distances to the own class are well below 1 (LDCE's similarity loss trains the embedding so); at
    larger distances every ``1 / d_j`` is small and the distribution is nearly flat.

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
    return torch.softmax(inverse_distances(features, support_features, support_labels, num_classes), dim=1)


def inverse_distances(features: Any, support_features: Any, support_labels: Any, num_classes: int) -> Tensor:
    """The similarities ``1 / d_j`` of :func:`label_distribution`, before its softmax: LDCE's prototype loss
    uses them as logits (cross-entropy of the trusted query samples against the support set). Differentiable.

    Args: as :func:`label_distribution`.

    Returns:
        ``(N, K)``, ``d_j`` clamped at 1e-12; dtype and device as :func:`label_distribution`.

    Examples::

        >>> inverse_distances([[1.0], [0.5]], [[0.0], [2.0]], [0, 1], 2).tolist()  # d = (1, 1), (0.25, 2.25)
        [[1.0, 1.0], [4.0, 0.4444444477558136]]
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
    return 1.0 / dist.clamp_min(_TINY)


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


def detection_scores(flagged: Any, is_noisy: Any) -> dict[str, float]:
    """How well a flagged mask finds the wrong labels: precision, recall and F1 against the true noise mask.

    ``precision`` is the fraction of wrong labels among the flagged samples, ``recall`` the fraction of wrong
    labels that were flagged, ``f1`` their harmonic mean, ``flagged_fraction`` the fraction flagged. Never NaN: an
    empty flag set has precision 0.0 (and ``flagged_fraction`` 0.0 shows it), no wrong labels give recall 0.0,
    and F1 is 0.0 when both are 0 (scikit-learn's ``zero_division=0``).

    Args:
        flagged: ``(N,)`` bool (or 0/1) mask, ``True`` = flagged as a wrong label (e.g. :func:`find_noisy`).
        is_noisy: ``(N,)`` bool (or 0/1) mask of the labels that are truly wrong (e.g. from :func:`corrupt`).

    Returns:
        ``{"precision", "recall", "f1", "flagged_fraction"}`` floats.

    Examples::

        >>> detection_scores([True, True, False, False], [True, False, True, False])
        {'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'flagged_fraction': 0.5}
    """
    f, t = _mask(flagged, "flagged"), _mask(is_noisy, "is_noisy")
    if len(f) != len(t):
        raise DataError(f"flagged has {len(f)} entries but is_noisy has {len(t)}")
    if len(f) == 0:
        raise DataError("flagged and is_noisy are empty: nothing to score")
    hits = int(np.sum(f & t))
    n_flagged, n_noisy = int(f.sum()), int(t.sum())
    precision = hits / n_flagged if n_flagged else 0.0
    recall = hits / n_noisy if n_noisy else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1),
            "flagged_fraction": n_flagged / len(f)}


def _mask(a: Any, name: str) -> np.ndarray:
    m = to_numpy(a)
    if m.ndim != 1:
        raise DataError(f"{name} must be a 1-D mask (N,), got shape {tuple(m.shape)}")
    if m.dtype == bool:
        return m
    if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
        raise DataError(f"{name} must be a bool or 0/1 mask, got dtype {m.dtype}")
    bad = (m != 0) & (m != 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{name}[{i}] = {m[i].item()!r} is not a mask value (True/False or 1/0)")
    return m.astype(bool)


def confident_learning_issues(labels: Any, pred_probs: Any, **kwargs) -> np.ndarray:
    """Confident learning's label issues: cleanlab's ``find_label_issues`` after checking the inputs.

    Checks that ``pred_probs`` is ``(N, K)`` of finite, non-negative rows summing to 1 (within 1e-3) and that
    ``labels`` are ``N`` integers in ``[0, K)`` (raising :class:`~robustlab.common.errors.DataError` naming the
    row or position, where cleanlab would fail later or with a less precise message), then returns
    ``cleanlab.filter.find_label_issues(labels, pred_probs, **kwargs)``. ``pred_probs`` should be out-of-sample
    (cross-validated) predictions.

    Args:
        labels: ``(N,)`` observed labels.
        pred_probs: ``(N, K)`` predicted probabilities.
        **kwargs: passed to cleanlab (e.g. ``filter_by="prune_by_noise_rate"``, ``frac_noise``; with
            ``return_index_ranked_by`` cleanlab returns indices instead of a mask). ``n_jobs`` defaults to 1
            here (cleanlab's default, one process per core, fails with a NameError inside a worker process of a
            recipe sweep, and the work is small); pass ``n_jobs=None`` for cleanlab's own default.

    Returns:
        ``(N,)`` bool mask, ``True`` = label issue (cleanlab's return value).

    Reference:
        Northcutt, C., Jiang, L., Chuang, I. "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR
        2021 (cleanlab).

    Examples::

        >>> import numpy as np
        >>> probs = np.array([[0.9, 0.1]] * 5 + [[0.1, 0.9]] * 5)
        >>> labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])  # the fifth is labelled 1 but looks like a 0
        >>> np.flatnonzero(confident_learning_issues(labels, probs)).tolist()
        [4]
    """
    p = _probs(pred_probs, "pred_probs")
    y = _labels(labels, p.shape[1], "labels")
    if len(y) != len(p):
        raise DataError(f"labels has {len(y)} entries but pred_probs has {len(p)} rows")
    from cleanlab.filter import find_label_issues

    kwargs.setdefault("n_jobs", 1)
    return find_label_issues(y, p, **kwargs)


# -------------------------------------------------------------------------------------------------- estimators


def estimate_noise_rate(labels: Any, pred_probs: Any) -> float:
    """Confident learning's estimate of the fraction of wrong labels.

    Per class ``j`` the threshold ``t_j`` is the mean of ``pred_probs[:, j]`` over the samples labelled ``j`` (a
    class nobody is labelled gets no confident sample); a sample labelled ``i`` counts in the confident joint at
    ``(i, j)`` where ``j`` is its most probable class among those with ``p_j >= t_j`` (within 1e-6, as cleanlab);
    a sample above no threshold is not counted. The diagonal is raised to at least 1, each row is rescaled to the
    number of samples labelled ``i`` and the whole normalised to a joint distribution of (observed, true) labels;
    the estimate is its off-diagonal mass. (cleanlab's ``estimate_joint`` takes the plain argmax when two or
    more classes pass their thresholds and rounds the calibrated counts to integers; the two agree closely.)

    Args:
        labels: ``(N,)`` observed labels, integers in ``[0, K)``.
        pred_probs: ``(N, K)`` out-of-sample predicted probabilities, rows summing to 1.

    Returns:
        the estimated fraction of wrong labels, in ``[0, 1]``.

    Reference:
        Northcutt, C., Jiang, L., Chuang, I. "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR
        2021 (sections 2.2-2.3: the confident joint and its calibration).

    Examples::

        >>> import numpy as np
        >>> probs = np.array([[0.9, 0.1]] * 5 + [[0.1, 0.9]] * 5)
        >>> round(estimate_noise_rate([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], probs), 6)  # one of ten labels is off
        0.1
    """
    p = _probs(pred_probs, "pred_probs")
    k = p.shape[1]
    y = _labels(labels, k, "labels")
    if len(y) != len(p):
        raise DataError(f"labels has {len(y)} entries but pred_probs has {len(p)} rows")
    counts = np.bincount(y, minlength=k)
    sums = np.zeros(k)
    np.add.at(sums, y, p[np.arange(len(y)), y])
    thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    confident = p >= thresholds - 1e-6
    any_confident = confident.any(axis=1)
    guess = np.where(confident, p, -np.inf).argmax(axis=1)
    joint = np.zeros((k, k))
    np.add.at(joint, (y[any_confident], guess[any_confident]), 1.0)
    np.fill_diagonal(joint, np.maximum(np.diag(joint), 1.0))
    joint = joint / joint.sum(axis=1, keepdims=True) * counts[:, None]
    joint = joint / joint.sum()
    return float(1.0 - np.trace(joint))


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
    c /= counts[:, None]
    return c / c.sum(1, keepdims=True)  # rows of float32 softmax sum to 1 only within ~1e-7 * K


def anchor_transition_matrix(probs: Any, num_classes: int, *, quantile: float = 0.97) -> np.ndarray:
    """Patrini et al.'s estimate of the corruption matrix from anchor points, without trusted data.

    For each class ``i`` the anchor is a sample the model (trained on the noisy labels) deems most surely of
    class ``i``, and row ``i`` is its predicted distribution: if it truly is of class ``i``, its prediction is
    ``P(noisy | true = i)``. To resist outliers the anchor is the sample with the largest ``p_i`` strictly
    below the ``quantile`` of ``p_i`` over all samples (numpy's ``"higher"`` quantile), as in the authors'
    ``filter_outlier`` (97th percentile); ``quantile=1.0`` takes the plain argmax (no filtering). Where no value
    lies below that quantile (all equal) the argmax is used.

    Args:
        probs: ``(N, K)`` predicted probabilities (rows sum to 1) of a model trained on the noisy labels.
        num_classes: ``K``.
        quantile: in ``(0, 1]``.

    Returns:
        ``(K, K)`` float64, rows = true class, columns = observed label, rows summing to 1.

    Shape:
        probs ``(N, K)``; returns ``(K, K)``.

    Reference:
        Patrini, G., Rozza, A., Menon, A. K., Nock, R., Qu, L. "Making Deep Neural Networks Robust to Label
        Noise: a Loss Correction Approach", CVPR 2017 (section 4, eq. 12-13).

    Examples::

        >>> probs = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]]
        >>> anchor_transition_matrix(probs, 2, quantile=1.0).round(6).tolist()
        [[0.9, 0.1], [0.2, 0.8]]
    """
    k = _check_num_classes(num_classes)
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float, np.floating, np.integer)) \
            or not 0.0 < float(quantile) <= 1.0:
        raise ConfigError(f"quantile must be a number in (0, 1], got {quantile!r}")
    p = _probs(probs, "probs", k)
    c = np.empty((k, k))
    for i in range(k):
        col = p[:, i]
        best = int(np.argmax(col))
        if quantile < 1.0:
            cut = np.quantile(col, float(quantile), method="higher")
            below = col < cut
            if below.any():
                best = int(np.argmax(np.where(below, col, -np.inf)))
        c[i] = p[best]
    return c / c.sum(1, keepdims=True)  # rows of float32 softmax sum to 1 only within ~1e-7 * K


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
