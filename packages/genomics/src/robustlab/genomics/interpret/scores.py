"""Interpretability scores: how well a per-position attribution map recovers the embedded motifs.

Koo et al. (2019) reduce each attribution map ``(4, L)`` to one importance value per position and score it as a
classifier of the ground-truth motif positions: the per-sequence AUROC and AUPR of importance against the motif
mask, reported as a distribution over (positive) test sequences. :func:`reduce_attribution` does the reduction,
:func:`interpretability_scores` the scoring (with :func:`robustlab.common.metrics.auroc` and
:func:`~robustlab.common.metrics.aupr`), :func:`summarize_scores` the summary, and :func:`motif_mask` derives the
mask from the generating probability matrix the way the authors did (or by a stricter rule).

Reference:
    Koo, P. K., Qian, S., Kaplun, G., Volf, V., Kalimeris, D. "Robust Neural Networks are More Interpretable for
    Genomics", bioRxiv 657437, 2019.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustlab.common.arrays import to_numpy
from robustlab.common.metrics import aupr, auroc

__all__ = ["MASK_RULES", "REDUCTIONS", "reduce_attribution", "motif_mask", "interpretability_scores", "summarize_scores"]

REDUCTIONS = ("grad_times_input", "observed", "sum", "l2")


def reduce_attribution(attr: Any, x: Any, *, how: str = "grad_times_input") -> np.ndarray:
    """Reduce an attribution map over the 4 nucleotide channels to one importance value per position.

    - ``"grad_times_input"``: ``sum_c attr[c] * x[c]``, the gradient × input score of the paper. Use it for maps
      that are plain gradients (saliency, SmoothGrad): for one-hot ``x`` it is the gradient at the observed
      nucleotide.
    - ``"observed"``: the map's value at the observed nucleotide, ``attr[argmax_c x]`` (the mean over tied
      channels, e.g. for an ``N`` coded 0.25 each; 0 where ``x`` is all zero, i.e. padding). For maps already
      multiplied by the input (gradient × input, integrated gradients, expected gradients) this is the
      per-position attribution.

      The two agree whenever ``x`` is one-hot, also on a map already × input (``x * x = x``: nothing is
      counted twice), and at equal-weight ambiguity codes. They differ for soft inputs such as
      ``[0.7, 0.1, 0.1, 0.1]``: ``"grad_times_input"`` mixes every channel weighted by ``x`` (by ``x**2`` on a
      map already × input), ``"observed"`` reads the most likely nucleotide's value alone.
    - ``"sum"``: ``sum_c attr[c]`` (``x`` unused), the completeness-style total of a map already × input.
    - ``"l2"``: ``sqrt(sum_c attr[c]**2)`` (``x`` unused), for maps without a sign convention such as in-silico
      mutagenesis.

    Args:
        attr: an attribution map, numpy array or tensor.
        x: the one-hot input the map explains (same shape).
        how: one of :data:`REDUCTIONS`.

    Returns:
        Per-position importance, float64.

    Shape:
        attr, x: ``(N, 4, L)`` (or ``(4, L)`` for one sequence); returns ``(N, L)`` (or ``(L,)``).
    """
    if how not in REDUCTIONS:
        raise ValueError(f"how must be one of {REDUCTIONS}, got {how!r}")
    a = to_numpy(attr).astype(np.float64, copy=False)
    if a.ndim not in (2, 3) or a.shape[-2] != 4:
        raise ValueError(f"attr must have shape (N, 4, L) or (4, L), got {a.shape}")
    if how == "sum":
        return a.sum(-2)
    if how == "l2":
        return np.sqrt(np.square(a).sum(-2))
    xs = to_numpy(x).astype(np.float64, copy=False)
    if xs.shape != a.shape:
        raise ValueError(f"x must have the shape of attr {a.shape}, got {xs.shape}")
    if how == "grad_times_input":
        return (a * xs).sum(-2)
    top = xs.max(-2, keepdims=True)
    observed = (xs == top) & (top > 0)
    count = observed.sum(-2)
    return np.where(count > 0, (a * observed).sum(-2) / np.maximum(count, 1), 0.0)


MASK_RULES = ("koo2019", "strict")


def motif_mask(pwm_matrix: Any, *, rule: str = "koo2019", threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth from a generating probability matrix.

    The information content of each generating column is ``2 + sum_c p_c log2 p_c`` bits (``0 log 0 = 0``, so a
    uniform background column has exactly 0).

    - ``rule="koo2019"`` (the authors' evaluation, ``code/3_interpretability_analysis.py`` of
      ``koo-lab/uncovering_regulatory_codes`` at 346b36d): a position is a motif position when its information
      exceeds ``threshold`` (default 0), and every position is scored.
    - ``rule="strict"``: motif positions are those above ``threshold`` (default 0.1 bit); motif positions of lower
      information (uninformative columns inside a motif) are neither positive nor negative: they are left out,
      and only the background positions (the minimum information of the sequence) serve as negatives.

    Args:
        pwm_matrix: the per-position generating probabilities of each sequence (columns sum to 1).
        rule: ``"koo2019"`` or ``"strict"``.
        threshold: information in bits above which a position counts as a motif position.

    Returns:
        ``(mask, keep)``: boolean arrays; ``mask`` marks motif positions, ``keep`` the positions to score
        (pass ``exclude=~keep`` to :func:`interpretability_scores`; all True for ``"koo2019"``).

    Shape:
        pwm_matrix: ``(N, 4, L)``; returns two ``(N, L)`` arrays.
    """
    if rule not in MASK_RULES:
        raise ValueError(f"rule must be one of {MASK_RULES}, got {rule!r}")
    p = to_numpy(pwm_matrix).astype(np.float64, copy=False)
    if p.ndim != 3 or p.shape[1] != 4:
        raise ValueError(f"pwm_matrix must have shape (N, 4, L), got {p.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    info = 2.0 + plogp.sum(axis=1)
    if rule == "koo2019":
        mask = info > (0.0 if threshold is None else threshold)
        return mask, np.ones_like(mask)
    mask = info > (0.1 if threshold is None else threshold)
    keep = mask | np.isclose(info, info.min(axis=1, keepdims=True))
    return mask, keep


def interpretability_scores(importance: Any, mask: Any, *, exclude: Any = None) -> dict[str, Any]:
    """Per-sequence AUROC and AUPR of per-position importance against the ground-truth motif mask.

    Each sequence is one binary problem: its positions are the samples, ``mask`` the labels and ``importance``
    the scores (higher = more important). AUROC is rank based (ties count one half); AUPR is average precision
    (:func:`robustlab.common.metrics.aupr`; the authors' code used the trapezoidal area under the PR curve,
    which differs slightly). A sequence whose (kept) mask is all False or all True has no AUROC: it is skipped,
    its entries are NaN and it is counted.

    Args:
        importance: per-position importance, e.g. from :func:`reduce_attribution`; must be finite.
        mask: True at ground-truth motif positions.
        exclude: optional, True at positions to leave out of the scoring (see :func:`motif_mask`).

    Returns:
        ``{"auroc": (N,), "aupr": (N,), "evaluated": (N,) bool, "n_skipped": int, "summary": {"auroc": ...,
        "aupr": ...}}`` with the summaries of :func:`summarize_scores` over the evaluated sequences.

    Shape:
        importance, mask, exclude: ``(N, L)``.
    """
    imp = to_numpy(importance).astype(np.float64, copy=False)
    m = to_numpy(mask)
    if imp.ndim != 2:
        raise ValueError(f"importance must have shape (N, L), got {imp.shape} (reduce the channels first)")
    if m.shape != imp.shape:
        raise ValueError(f"mask must have the shape of importance {imp.shape}, got {m.shape}")
    m = m.astype(bool)
    keep = np.ones_like(m) if exclude is None else ~_check_like(exclude, imp.shape, "exclude").astype(bool)
    finite = np.isfinite(imp) | ~keep
    if not finite.all():
        bad = int(np.flatnonzero(~finite.all(1))[0])
        raise ValueError(f"importance has NaN or infinite values (first in sequence {bad})")
    n = len(imp)
    roc = np.full(n, np.nan)
    pr = np.full(n, np.nan)
    for i in range(n):
        labels = m[i][keep[i]]
        positives = int(labels.sum())
        if positives == 0 or positives == len(labels):
            continue
        scores = imp[i][keep[i]]
        roc[i] = auroc(labels, scores)
        pr[i] = aupr(labels, scores)
    evaluated = ~np.isnan(roc)
    return {
        "auroc": roc,
        "aupr": pr,
        "evaluated": evaluated,
        "n_skipped": int(n - evaluated.sum()),
        "summary": {"auroc": summarize_scores(roc), "aupr": summarize_scores(pr)},
    }


def summarize_scores(values: Any) -> dict[str, float | int]:
    """Mean, standard deviation (population), median and count of the finite values; NaN are left out.

    Args:
        values: scores, e.g. the per-sequence AUROC of :func:`interpretability_scores`.

    Returns:
        ``{"mean", "std", "median", "n"}``; the statistics are NaN when no value is finite.
    """
    v = to_numpy(values).astype(np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "median": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v)), "n": int(v.size)}



def _check_like(a: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    arr = to_numpy(a)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr
