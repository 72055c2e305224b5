"""Classification metrics as pure functions of labels and scores (numpy arrays or tensors).

Labels are class indices ``0 .. K-1``. The per-class report uses the clinical names of the ECG literature
(AAMI EC57): sensitivity (recall), positive predictivity (precision) and F1. AUROC and AUPR take one score
column per class and work one-vs-rest; they are computed here in numpy and agree with scikit-learn's
``roc_auc_score`` and ``average_precision_score`` to rounding.

Undefined values: a per-class ratio whose denominator is zero is NaN (see :func:`per_class_report`). For AUROC
and AUPR a class without positive or without negative samples is undefined; with an average it is left out of
the average with a ``RuntimeWarning`` that names it, and with ``average=None`` its entry is NaN. When no class
(or, for binary input, the only one) is defined, a ``ValueError`` is raised.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from robustlab.common.arrays import to_numpy

__all__ = [
    "accuracy",
    "balanced_accuracy",
    "confusion_matrix",
    "per_class_report",
    "macro_f1",
    "auroc",
    "aupr",
]

_AVERAGES = ("macro", "weighted", "micro", None)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of samples whose predicted class equals the true class.

    Args:
        y_true: true class indices.
        y_pred: predicted class indices (e.g. ``logits.argmax(1)``).

    Returns:
        The accuracy in ``[0, 1]``.

    Shape:
        y_true, y_pred: ``(N,)``.
    """
    y_true, y_pred = _labels_pair(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def balanced_accuracy(y_true: Any, y_pred: Any) -> float:
    """Mean over the classes present in ``y_true`` of the per-class sensitivity (recall).

    Classes that are only predicted, never true, have no sensitivity and do not count (as in scikit-learn).

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.

    Returns:
        The balanced accuracy in ``[0, 1]``.

    Shape:
        y_true, y_pred: ``(N,)``.

    Reference:
        Brodersen, K. H. et al. "The balanced accuracy and its posterior distribution", ICPR 2010.
    """
    cm = confusion_matrix(y_true, y_pred)
    support = cm.sum(1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def confusion_matrix(y_true: Any, y_pred: Any, *, num_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        num_classes: the number of classes ``K``; default one more than the largest label seen. Classes are the
            indices ``0 .. K-1`` (unlike scikit-learn, which uses the sorted labels present).

    Returns:
        ``cm`` with ``cm[i, j]`` the number of samples of true class ``i`` predicted as ``j`` (int64).

    Shape:
        y_true, y_pred: ``(N,)``; returns ``(K, K)``.
    """
    y_true, y_pred = _labels_pair(y_true, y_pred)
    largest = int(max(y_true.max(), y_pred.max()))
    if num_classes is None:
        num_classes = largest + 1
    elif largest >= num_classes:
        raise ValueError(f"labels go up to {largest} but num_classes is {num_classes}")
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_report(y_true: Any, y_pred: Any, *, num_classes: int | None = None) -> dict[str, np.ndarray]:
    """Per-class sensitivity, positive predictivity, F1 and support, as reported in ECG papers (AAMI).

    For class ``k`` with ``TP``, ``FP``, ``FN`` counted one-vs-rest: sensitivity ``TP / (TP + FN)``, positive
    predictivity ``TP / (TP + FP)``, F1 ``2 TP / (2 TP + FP + FN)``. A ratio with a zero denominator is NaN: the
    sensitivity of a class absent from ``y_true``, the positive predictivity of a class never predicted, the F1
    of a class in neither. (scikit-learn gives the same with ``zero_division=np.nan``.)

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        num_classes: the number of classes; default one more than the largest label seen.

    Returns:
        ``{"sensitivity", "positive_predictivity", "f1"}``: float arrays indexed by class; ``"support"``: the
        number of true samples of each class (int64).

    Shape:
        y_true, y_pred: ``(N,)``; every returned array ``(K,)``.

    Reference:
        ANSI/AAMI EC57:2012, "Testing and reporting performance results of cardiac rhythm and ST segment
        measurement algorithms".
    """
    cm = confusion_matrix(y_true, y_pred, num_classes=num_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1)
    predicted = cm.sum(0)
    fn = support - tp
    fp = predicted - tp
    return {
        "sensitivity": _ratio(tp, support),
        "positive_predictivity": _ratio(tp, predicted),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "support": support,
    }


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """Unweighted mean of the per-class F1 over the classes present in ``y_true`` or ``y_pred``.

    Equals scikit-learn's ``f1_score(y_true, y_pred, average="macro")``.

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.

    Returns:
        The macro F1 in ``[0, 1]``.

    Shape:
        y_true, y_pred: ``(N,)``.
    """
    f1 = per_class_report(y_true, y_pred)["f1"]
    return float(np.mean(f1[~np.isnan(f1)]))


def auroc(y_true: Any, scores: Any, *, average: str | None = "macro") -> float | np.ndarray:
    """Area under the ROC curve (rank-based, ties counted one half), binary, one-vs-rest or multi-label.

    The AUROC of one class is the probability that a random positive scores higher than a random negative,
    computed from average ranks (the Mann-Whitney U statistic). Scores are used as given, column by column:
    they need not be probabilities.

    Args:
        y_true: binary labels ``(N,)`` in {0, 1}; class indices ``(N,)`` with ``scores`` of shape ``(N, C)``;
            or a multi-label 0/1 indicator ``(N, C)``.
        scores: higher means more likely positive: ``(N,)`` for binary input, ``(N, C)`` otherwise.
        average: how to combine classes: ``"macro"`` (unweighted mean), ``"weighted"`` (mean weighted by the
            number of positives), ``"micro"`` (one AUROC over all (sample, class) pairs), or None (one value
            per class). Ignored for binary input.

    Returns:
        A float, or for ``average=None`` an array with one value per class (NaN where undefined).

    Raises:
        ValueError: shapes or labels do not fit, scores are not finite, or no class has both positive and
            negative samples. Undefined classes under an average are skipped with a ``RuntimeWarning``.

    Shape:
        y_true: ``(N,)`` or ``(N, C)``; scores: ``(N,)`` or ``(N, C)``.

    Reference:
        Hanley, J. A. and McNeil, B. J. "The meaning and use of the area under a receiver operating
        characteristic (ROC) curve", Radiology 1982.
    """
    return _one_vs_rest(_binary_auroc, "AUROC", y_true, scores, average)


def aupr(y_true: Any, scores: Any, *, average: str | None = "macro") -> float | np.ndarray:
    """Area under the precision-recall curve as average precision, binary, one-vs-rest or multi-label.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds in decreasing order, with ``P_n`` and
    ``R_n`` the precision and recall at the n-th threshold (scikit-learn's ``average_precision_score``; no
    interpolation). A class without positives, or without negatives, is undefined.

    Args:
        y_true: binary labels ``(N,)`` in {0, 1}; class indices ``(N,)`` with ``scores`` of shape ``(N, C)``;
            or a multi-label 0/1 indicator ``(N, C)``.
        scores: higher means more likely positive: ``(N,)`` for binary input, ``(N, C)`` otherwise.
        average: ``"macro"``, ``"weighted"`` (by number of positives), ``"micro"`` or None, as in :func:`auroc`.

    Returns:
        A float, or for ``average=None`` an array with one value per class (NaN where undefined).

    Raises:
        ValueError: as :func:`auroc`.

    Shape:
        y_true: ``(N,)`` or ``(N, C)``; scores: ``(N,)`` or ``(N, C)``.

    Reference:
        Zhu, M. "Recall, precision and average precision", University of Waterloo technical report, 2004.
    """
    return _one_vs_rest(_binary_ap, "AUPR", y_true, scores, average)


# --- helpers -------------------------------------------------------------------------------------------------



def _as_labels(a: Any, name: str) -> np.ndarray:
    arr = to_numpy(a)
    if arr.ndim != 1:
        hint = " (pass class indices, e.g. scores.argmax(1))" if arr.ndim == 2 else ""
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}{hint}")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold class indices >= 0, got {arr.min()}")
    return arr


def _labels_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {len(y_true)} samples but y_pred has {len(y_pred)}")
    if y_true.size == 0:
        raise ValueError("y_true and y_pred are empty")
    return y_true, y_pred


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _indicator_and_scores(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(Y, S, binary)``: a 0/1 indicator ``(N, C)`` and scores ``(N, C)`` (``C = 1`` for binary input)."""
    y = to_numpy(y_true)
    s = to_numpy(scores).astype(np.float64)
    if s.ndim not in (1, 2):
        raise ValueError(f"scores must be (N,) or (N, C), got shape {s.shape}")
    if len(y) != len(s):
        raise ValueError(f"y_true has {len(y)} samples but scores has {len(s)}")
    if len(s) == 0:
        raise ValueError("y_true and scores are empty")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    if s.ndim == 1:
        if y.ndim != 1 or not np.isin(y, (0, 1)).all():
            raise ValueError(
                f"with 1-D scores y_true must be 1-D binary labels in {{0, 1}}, got shape {y.shape} "
                f"and values {np.unique(y)[:5].tolist()}"
            )
        return y.astype(np.int64).reshape(-1, 1), s.reshape(-1, 1), True
    n, c = s.shape
    if y.ndim == 1:  # class indices, one-vs-rest
        labels = _as_labels(y, "y_true")
        if labels.max() >= c:
            raise ValueError(f"y_true holds class {labels.max()} but scores has only {c} columns")
        ind = np.zeros((n, c), dtype=np.int64)
        ind[np.arange(n), labels] = 1
        return ind, s, False
    if y.shape != s.shape:
        raise ValueError(f"a multi-label y_true must have the shape of scores {s.shape}, got {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("a multi-label y_true must be a 0/1 indicator matrix")
    return y.astype(np.int64), s, False


def _one_vs_rest(binary_metric, name: str, y_true: Any, scores: Any, average: str | None) -> float | np.ndarray:
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
    y, s, binary = _indicator_and_scores(y_true, scores)
    if binary or average == "micro":
        y, s = y.reshape(-1), s.reshape(-1)
        pos = int(y.sum())
        if pos == 0 or pos == len(y):
            what = "binary labels" if binary else "the micro-averaged labels"
            raise ValueError(f"{name} is undefined: {what} hold only {'negatives' if pos == 0 else 'positives'}")
        return float(binary_metric(y, s))
    positives = y.sum(0)
    defined = (positives > 0) & (positives < len(y))
    values = np.full(y.shape[1], np.nan)
    for k in np.flatnonzero(defined):
        values[k] = binary_metric(y[:, k], s[:, k])
    if average is None:
        return values
    if not defined.any():
        raise ValueError(f"{name} is undefined for every class: none has both positive and negative samples")
    if not defined.all():
        undefined = np.flatnonzero(~defined).tolist()
        warnings.warn(
            f"{name} is undefined for classes {undefined} (no positive or no negative samples); "
            f"they are left out of the {average} average",
            RuntimeWarning,
            stacklevel=3,
        )
    if average == "weighted":
        return float(np.average(values[defined], weights=positives[defined]))
    return float(np.mean(values[defined]))


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks of ``s`` in increasing order, tied values sharing the mean of their ranks."""
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    new_value = np.r_[True, sorted_s[1:] != sorted_s[:-1]]
    starts = np.flatnonzero(new_value)
    ends = np.r_[starts[1:], len(s)]
    group = np.cumsum(new_value) - 1
    ranks = np.empty(len(s))
    ranks[order] = ((starts + ends + 1) / 2.0)[group]
    return ranks


def _binary_auroc(y: np.ndarray, s: np.ndarray) -> float:
    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    u = _average_ranks(s)[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _binary_ap(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_threshold = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s) - 1]
    tps = np.cumsum(y_sorted)[last_of_threshold].astype(np.float64)
    precision = tps / (last_of_threshold + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))
