"""Regression metrics as pure functions of targets and predictions (numpy arrays or tensors).

Definitions follow scikit-learn (``mean_absolute_error``, ``root_mean_squared_error``, ``r2_score``) and agree
with it to rounding, including for several outputs: each output is scored on its own and the scores are averaged
with equal weights (scikit-learn's default ``multioutput="uniform_average"``); ``average=None`` returns the
per-output scores. Targets of shape ``(N,)`` and ``(N, 1)`` are the same single output; more than two dimensions
are flattened from dim 1 (e.g. a profile ``(N, L)`` per sample, or ``(N, C, L)``).

Inputs must be finite: a NaN (an unlabelled target, a diverged model) raises an error instead of propagating
into a NaN score; drop unlabelled samples first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustlab.common.arrays import to_numpy

__all__ = ["mae", "rmse", "r2"]

_AVERAGES = ("uniform", None)


def mae(y_true: Any, y_pred: Any, *, average: str | None = "uniform") -> float | np.ndarray:
    """Mean absolute error, ``mean_n |y_n - p_n|`` per output.

    Args:
        y_true: true values.
        y_pred: predicted values, of the shape of ``y_true``.
        average: ``"uniform"``: the mean over outputs; None: one value per output.

    Returns:
        A float (``average="uniform"``) or an array ``(D,)``.

    Raises:
        ValueError: the shapes differ, the input is empty, or a value is NaN or infinite.

    Shape:
        y_true, y_pred: ``(N,)`` or ``(N, D)`` (or ``(N, *)``, flattened to ``(N, D)``).

    Examples::

        >>> mae([3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0])
        0.5
    """
    t, p = _pair(y_true, y_pred, average)
    return _average(np.abs(t - p).mean(axis=0), average)


def rmse(y_true: Any, y_pred: Any, *, average: str | None = "uniform") -> float | np.ndarray:
    """Root mean squared error, ``sqrt(mean_n (y_n - p_n)^2)`` per output (averaged after the root).

    Args:
        y_true: true values.
        y_pred: predicted values, of the shape of ``y_true``.
        average: ``"uniform"``: the mean of the per-output RMSEs (as scikit-learn's
            ``root_mean_squared_error``); None: one value per output.

    Returns:
        A float (``average="uniform"``) or an array ``(D,)``.

    Raises:
        ValueError: the shapes differ, the input is empty, or a value is NaN or infinite.

    Shape:
        y_true, y_pred: ``(N,)`` or ``(N, D)`` (or ``(N, *)``, flattened to ``(N, D)``).

    Examples::

        >>> rmse([0.0, 0.0], [3.0, -3.0])
        3.0
    """
    t, p = _pair(y_true, y_pred, average)
    return _average(np.sqrt(np.square(t - p).mean(axis=0)), average)


def r2(y_true: Any, y_pred: Any, *, average: str | None = "uniform") -> float | np.ndarray:
    """Coefficient of determination, ``1 - sum_n (y_n - p_n)^2 / sum_n (y_n - mean(y))^2`` per output.

    1 is a perfect fit, 0 the score of always predicting the mean, and it is negative for worse predictions. An
    output whose true values are constant has no variance to explain: its score is 1 when predicted exactly and
    0 otherwise (scikit-learn's default, ``force_finite=True``).

    Args:
        y_true: true values (at least two samples).
        y_pred: predicted values, of the shape of ``y_true``.
        average: ``"uniform"``: the mean over outputs (scikit-learn's ``multioutput="uniform_average"``);
            None: one value per output.

    Returns:
        A float (``average="uniform"``) or an array ``(D,)``.

    Raises:
        ValueError: the shapes differ, there are fewer than two samples, or a value is NaN or infinite.

    Shape:
        y_true, y_pred: ``(N,)`` or ``(N, D)`` (or ``(N, *)``, flattened to ``(N, D)``).

    Reference:
        Wright, S. "Correlation and causation", Journal of Agricultural Research 20: 557-585, 1921.

    Examples::

        >>> r2([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
        1.0
        >>> r2([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
        0.0
    """
    t, p = _pair(y_true, y_pred, average)
    if len(t) < 2:
        raise ValueError(f"r2 needs at least two samples, got {len(t)}")
    ss_res = np.square(t - p).sum(axis=0)
    ss_tot = np.square(t - t.mean(axis=0)).sum(axis=0)
    scores = np.where(ss_res == 0, 1.0, 0.0)
    np.subtract(1.0, ss_res / np.where(ss_tot > 0, ss_tot, 1.0), out=scores, where=ss_tot > 0)
    return _average(scores, average)


# --- helpers -------------------------------------------------------------------------------------------------


def _as_values(a: Any, name: str) -> np.ndarray:
    arr = to_numpy(a)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be an array of shape (N,) or (N, D), got a scalar")
    return arr.reshape(len(arr), int(np.prod(arr.shape[1:])))


def _pair(y_true: Any, y_pred: Any, average: str | None) -> tuple[np.ndarray, np.ndarray]:
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
    t, p = _as_values(y_true, "y_true"), _as_values(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} samples but y_pred has {len(p)}")
    if len(t) == 0:
        raise ValueError("y_true and y_pred are empty")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.shape[1]} outputs per sample but y_pred has {p.shape[1]} "
                         f"(shapes {np.shape(to_numpy(y_true))} and {np.shape(to_numpy(y_pred))})")
    if t.shape[1] == 0:
        raise ValueError("y_true and y_pred have no outputs (shape (N, 0))")
    for arr, name in ((t, "y_true"), (p, "y_pred")):
        bad = ~np.isfinite(arr)
        if bad.any():
            kind = "NaN" if np.isnan(arr).any() else "infinite"
            raise ValueError(f"{name} holds {int(bad.sum())} {kind} value(s), the first at sample "
                             f"{int(np.flatnonzero(bad.any(axis=1))[0])}; drop unlabelled samples first")
    return t, p


def _average(scores: np.ndarray, average: str | None) -> float | np.ndarray:
    return scores if average is None else float(np.mean(scores))
