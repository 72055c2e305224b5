"""First-layer filters as motifs, and their comparison with a motif database by Tomtom (Koo & Eddy 2019).

Koo & Eddy turn each first-layer filter into a position probability matrix by aligning the input windows where
the filter fires (activation above half its maximum over the data) and averaging them; then Tomtom compares the
matrices with JASPAR and a filter counts as a match when a ground-truth motif is among its significant hits.
Here: :func:`first_layer_activations` records a layer's output with a forward hook (the model is not changed),
:func:`filter_pwms` builds the matrices from activations (:func:`model_filter_pwms` from a model, streaming over
the data), :func:`trim_pwm` drops uninformative flanks (before matching, by default), :func:`match_motifs` is
the comparison and :func:`fraction_matched` the summary.

The comparison is Tomtom (Gupta et al. 2007) as memelite implements it (``memelite.tomtom``, Jacob Schreiber's
numba re-implementation of MEME-suite tools, https://github.com/jmschrei/memesuite-lite), called through
:func:`tomtom_pvalues`, which :mod:`~robustlab.genomics.interpret.modisco` uses too; memelite is imported when it
runs. What memelite does, from its source (0.5): columns are compared by negative Euclidean distance (MEME's
``tomtom -dist ed``; MEME's default is Pearson correlation, which memelite does not offer), with no pseudocount
and no background model: each filter column's scores are taken relative to their median over all database
columns, on both strands, and binned (``n_score_bins``); the "complete score" of an alignment sums the aligned
columns' scores, an unaligned filter column scoring its median. The null of the best alignment of a filter with a
motif of width ``K`` is built from those same histograms (database columns drawn independently, the maximum over
the offsets), so the p-value accounts for the offsets tried; both strands of every motif are tried and merged as
``1 - (1 - min(p+, p-))**2``. Similar database columns are not merged (memelite's ``n_target_bins=None``; its
default merging moved JASPAR 2016 p-values by up to a factor 10). memelite returns per filter and motif the
p-value, score, offset, overlap and strand of the best alignment, but no q-values: :func:`tomtom_pvalues` adds
Benjamini-Hochberg q-values over the database motifs, per filter, as MEME's Tomtom reports them, and
:func:`match_motifs` E-values (p-value times the number of motifs). Filters with no informative column are left
out (see :func:`match_motifs`: under Euclidean distance, flat matrices match the flat flanks of database motifs).

References:
    Koo, P. K., Eddy, S. R. "Representation learning of genomic sequence motifs with convolutional neural
    networks", PLoS Computational Biology 15(12): e1007560, 2019.
    Gupta, S., Stamatoyannopoulos, J. A., Bailey, T. L., Noble, W. S. "Quantifying similarity between motifs",
    Genome Biology 8: R24, 2007.
    Schreiber, J. memesuite-lite (memelite), https://github.com/jmschrei/memesuite-lite.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "MotifMatches",
    "first_layer_activations",
    "filter_pwms",
    "model_filter_pwms",
    "trim_pwm",
    "match_motifs",
    "fraction_matched",
    "tomtom_pvalues",
]


# --- activations and filter PWMs ------------------------------------------------------------------------------


def first_layer_activations(model: Any, x: Any, *, layer: Any = None, batch_size: int = 256) -> np.ndarray:
    """The output of one layer (by default the first-layer activation) for every sequence, via a forward hook.

    The model runs in eval mode without gradients; every submodule's mode is restored afterwards.

    Args:
        model: an ``nn.Module`` taking ``(N, 4, L)``.
        x: one-hot sequences, array or tensor.
        layer: the submodule whose output is recorded. Default: ``model.act1`` when the model has it (the
            robustlab genomics models: after batch norm and the activation, as Koo & Eddy used), else the first
            ``nn.Conv1d``.
        batch_size: sequences per forward pass.

    Returns:
        float32 activations.

    Shape:
        x: ``(N, 4, L)``; returns ``(N, F, L')`` with ``F`` filters (``L' = L`` for same padding).
    """
    chunks = [act.numpy() for _, act in _iter_activations(model, x, layer, batch_size)]
    return np.concatenate(chunks, axis=0)


def filter_pwms(
    activations: Any,
    x: Any,
    *,
    window: int,
    offset: int | None = None,
    threshold: float = 0.5,
    pseudocount: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Position probability matrices of first-layer filters from the windows where they fire (Koo & Eddy 2019).

    For filter ``f`` with maximum activation ``max_f`` over all the data, every position where its activation
    exceeds ``threshold * max_f`` selects the input window the filter saw there; the windows' one-hot columns are
    summed into counts, and ``(counts + pseudocount) / (column total + 4 * pseudocount)`` is the matrix. Windows
    that run off either end of the sequence are skipped (as in the authors' code). A filter that never fires
    (``max_f <= 0``, a dead ReLU filter, or no complete window above threshold) gets a NaN matrix.

    Args:
        activations: the first layer's output (see :func:`first_layer_activations`).
        x: the one-hot sequences that produced it.
        window: the filter width ``W``.
        offset: how far the window of output position ``l`` starts before ``l``: the convolution's left zero
            padding. Default: inferred from the lengths, ``(W - 1) // 2`` when ``L' = L`` (same padding), 0 when
            ``L' = L - W + 1`` (no padding).
        threshold: fraction of each filter's maximum activation above which it counts as firing.
        pseudocount: added to every count.

    Returns:
        ``(pwms, n_sites)``: float64 matrices (rows A, C, G, T; NaN for filters that never fire) and the number
        of windows behind each.

    Shape:
        activations: ``(N, F, L')``; x: ``(N, 4, L)``; returns ``(F, 4, W)`` and ``(F,)``.
    """
    import torch

    acts = _as_float_tensor(activations, "activations")
    xs = _as_float_tensor(x, "x")
    if acts.ndim != 3 or xs.ndim != 3 or xs.shape[1] != 4 or len(acts) != len(xs):
        raise ValueError(
            f"activations must be (N, F, L') and x (N, 4, L) with the same N, got {tuple(acts.shape)} and "
            f"{tuple(xs.shape)}"
        )
    window = _positive_int(window, "window")
    offset = _infer_offset(acts.shape[2], xs.shape[2], window, offset)
    _check_threshold(threshold, pseudocount)
    peak = acts.amax(dim=(0, 2))
    sums = torch.zeros(acts.shape[1], 4, window, dtype=torch.float64)
    n = torch.zeros(acts.shape[1], dtype=torch.float64)
    for start in range(0, len(xs), 512):
        _accumulate(
            acts[start : start + 512], xs[start : start + 512], peak * threshold, peak > 0, offset, sums, n
        )
    return _normalize(sums, n, pseudocount)


def model_filter_pwms(
    model: Any,
    x: Any,
    *,
    layer: Any = None,
    threshold: float = 0.5,
    pseudocount: float = 0.1,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`filter_pwms` of a model's first convolution, streaming over ``x`` (two passes, little memory).

    The window width, offset (left padding) and the check that stride and dilation are 1 come from the model's
    first ``nn.Conv1d``; ``layer`` (default ``model.act1`` if present, else that convolution) must keep its
    positions, i.e. come before any pooling.

    Args:
        model: an ``nn.Module`` taking ``(N, 4, L)``.
        x: one-hot sequences.
        layer: the submodule whose output is thresholded.
        threshold: fraction of each filter's maximum activation above which it counts as firing.
        pseudocount: added to every count.
        batch_size: sequences per forward pass.

    Returns:
        ``(pwms, n_sites)`` as :func:`filter_pwms`.

    Shape:
        x: ``(N, 4, L)``; returns ``(F, 4, W)`` and ``(F,)``.
    """
    import torch

    conv = _first_conv(model)
    window = int(conv.kernel_size[0])
    if conv.stride[0] != 1 or conv.dilation[0] != 1:
        raise ValueError(f"the first convolution must have stride 1 and dilation 1, got {conv}")
    offset = (
        (window - 1) // 2
        if conv.padding == "same"
        else 0
        if conv.padding == "valid"
        else int(conv.padding[0])
    )
    _check_threshold(threshold, pseudocount)
    peak = None
    for _, act in _iter_activations(model, x, layer, batch_size):
        m = act.amax(dim=(0, 2)).double()
        peak = m if peak is None else torch.maximum(peak, m)
    f = len(peak)
    sums = torch.zeros(f, 4, window, dtype=torch.float64)
    n = torch.zeros(f, dtype=torch.float64)
    for xb, act in _iter_activations(model, x, layer, batch_size):
        if act.shape[2] != xb.shape[2] + 2 * offset - window + 1:
            raise ValueError(
                f"the recorded layer has {act.shape[2]} positions but the first convolution outputs "
                f"{xb.shape[2] + 2 * offset - window + 1}: record a layer before any pooling"
            )
        _accumulate(act, xb, peak * threshold, peak > 0, offset, sums, n)
    return _normalize(sums, n, pseudocount)


def trim_pwm(pwm: Any, *, min_information: float = 0.5, pad: int = 3) -> tuple[np.ndarray, int]:
    """Cut a matrix to its informative core: from the first to the last column above ``min_information`` bits,
    plus up to ``pad`` columns each side (Koo & Eddy trimmed filters this way, 0.5 bits and 3, before Tomtom).

    Args:
        pwm: a probability matrix (columns sum to 1).
        min_information: bits (``2 + sum p log2 p``) a column needs to count as informative.
        pad: columns kept beyond the informative core on each side.

    Returns:
        ``(trimmed, start)``: the kept columns and the index of the first; the whole matrix when no column is
        informative.

    Shape:
        pwm: ``(4, W)``; trimmed: ``(4, W')``.
    """
    p = np.asarray(pwm, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != 4:
        raise ValueError(f"pwm must have shape (4, W), got {p.shape}")
    informative = np.flatnonzero(_information(p) > min_information)
    if informative.size == 0:
        return p, 0
    start = max(int(informative[0]) - pad, 0)
    end = min(int(informative[-1]) + pad + 1, p.shape[1])
    return p[:, start:end], start


# --- matching with Tomtom (memelite) --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MotifMatches:
    """The result of :func:`match_motifs`, one entry per filter (index ``f``) unless noted.

    A filter is compared with the database unless it is ``empty`` (never fired) or ``uninformative`` (no column
    reaches the trimming threshold); the fields of a filter not compared are None, -1, ``""`` or NaN.

    Attributes:
        database_names: the names of the database motifs, in order (``T`` of them).
        name: the best match's name (smallest p-value).
        index: the best match's index in the database.
        score: Tomtom's complete score of the best alignment with that motif, as memelite reports it: per filter
            column, its negative Euclidean distance to the aligned motif column less that column's median over
            all database columns (an unaligned filter column scores its median, 0), binned into memelite's
            ``n_score_bins`` levels and summed; higher is more similar.
        overlap: number of aligned columns of the best alignment.
        offset: index of the filter column (untrimmed) aligned with the first column of the motif as aligned (of
            its reverse complement when ``strand`` is ``"-"``); negative when the motif starts before the filter.
        strand: ``"+"`` when the motif aligns as given, ``"-"`` when its reverse complement does (memelite keeps
            the strand of the higher score, the reverse one on a tie).
        p_value, e_value, q_value: of the best match; ``e_value`` is ``p_value * T``.
        significant: the best match has ``q_value < q_threshold``.
        true_match: some database motif with a name in ``true_names`` has ``q < q_threshold`` (Koo & Eddy's
            criterion: a ground-truth motif among the filter's significant hits); None without ``true_names``.
        empty: the filter never fired (NaN matrix).
        uninformative: no column of the filter reaches ``trim`` bits: the filter learned no motif; not compared
            and never a match.
        p_values, q_values: every filter against every database motif, ``(F, T)``; q-values are
            Benjamini-Hochberg over the ``T`` motifs, per filter.
        q_threshold: the threshold used.
    """

    database_names: tuple[str, ...]
    name: tuple[str | None, ...]
    index: np.ndarray
    score: np.ndarray
    overlap: np.ndarray
    offset: np.ndarray
    strand: tuple[str, ...]
    p_value: np.ndarray
    e_value: np.ndarray
    q_value: np.ndarray
    significant: np.ndarray
    true_match: np.ndarray | None
    empty: np.ndarray
    uninformative: np.ndarray
    p_values: np.ndarray
    q_values: np.ndarray
    q_threshold: float


def match_motifs(
    filter_pwms: Any,
    database_pwms: Sequence[Any],
    names: Sequence[str],
    *,
    true_names: Iterable[str] | None = None,
    q_threshold: float = 0.05,
    trim: float | None = 0.5,
    trim_pad: int = 0,
    n_score_bins: int = 100,
) -> MotifMatches:
    """Compare each filter matrix with every database motif with Tomtom (memelite's ``tomtom``).

    Each filter is first trimmed to its informative core (:func:`trim_pwm`); a filter with no column above
    ``trim`` bits is reported ``uninformative`` and not compared. memelite's Tomtom then scores every alignment
    of the filter with each motif and its reverse complement (see the module docstring) and gives the p-value of
    the best one; q-values are Benjamini-Hochberg over the database motifs, per filter, as MEME's Tomtom
    computes them.

    Args:
        filter_pwms: probability matrices of the filters (rows A, C, G, T; columns are normalized to sum 1); a
            filter whose matrix holds NaN (it never fired) is reported empty.
        database_pwms: the database motifs, counts or probabilities (columns are normalized to sum 1), e.g. the
            ``counts`` of ``robustlab.genomics.data`` motifs. Tomtom's null is built from the database's columns:
            use a whole database (memelite warns below 25 motifs).
        names: the database motifs' names, matched against ``true_names`` exactly (JASPAR names are
            case-sensitive: ``"Gabpa"``).
        true_names: the ground-truth motif names; sets ``true_match``.
        q_threshold: significance threshold on the q-value.
        trim: trim each filter with :func:`trim_pwm` at this many bits, and leave out filters with no column
            above it (None: compare whole filters, however flat). Under Euclidean distance a flat stretch of a
            filter scores well against the flat flanks of database motifs: against JASPAR 2016, untrimmed, 4 of
            6 uniform matrices and 4%, 18%, 35% and 88% of random 19-column ones with Dirichlet(0.5, 1, 2, 5)
            columns got a best hit at q < 0.05; trimmed (pad 0) with uninformative filters left out, 3%, 8%, 7%
            and none (99% of the Dirichlet(5) ones are uninformative). 200 matrices each.
        trim_pad: columns kept beyond the informative core when trimming. Koo & Eddy kept 3; the flat columns it
            keeps raise the false-positive rate above to 4%, 15% and 16% (Dirichlet 0.5, 1, 2).
        n_score_bins: memelite's score resolution (``t`` of the Tomtom paper).

    Returns:
        A :class:`MotifMatches`.

    Shape:
        filter_pwms: ``(F, 4, W)`` (or a sequence of ``(4, W_f)``); database_pwms: ``T`` arrays ``(4, K_t)``.
    """
    if not 0 < q_threshold <= 1:
        raise ValueError(f"q_threshold must be in (0, 1], got {q_threshold}")
    if trim is not None and not 0.0 <= trim < 2.0:
        raise ValueError(f"trim must be None or a number of bits in [0, 2), got {trim!r}")
    if isinstance(trim_pad, bool) or not isinstance(trim_pad, (int, np.integer)) or trim_pad < 0:
        raise ValueError(f"trim_pad must be an int >= 0, got {trim_pad!r}")
    n_score_bins = _positive_int(n_score_bins, "n_score_bins")
    targets, names = _database(database_pwms, names)
    queries, starts, empty, uninformative = _queries(filter_pwms, trim, int(trim_pad))
    truth = None if true_names is None else np.isin(np.array(names, dtype=object), list(true_names))
    f, t = len(queries), len(names)
    p_all = np.full((f, t), np.nan)
    q_all = np.full((f, t), np.nan)
    score, overlap, offset, strand = (np.full((f, t), np.nan) for _ in range(4))
    compared = np.flatnonzero(~empty & ~uninformative)
    if compared.size:
        p, q, s, o, ov, rc = tomtom_pvalues([queries[k] for k in compared], targets, n_score_bins=n_score_bins)
        p_all[compared], q_all[compared] = p, q
        score[compared], overlap[compared], offset[compared], strand[compared] = s, ov, o, rc
    rows = np.arange(f)
    best = np.where(np.isin(rows, compared), np.argmin(np.nan_to_num(p_all, nan=np.inf), axis=1), -1)
    pick = np.clip(best, 0, None)
    done = best >= 0

    def at_best(a: np.ndarray) -> np.ndarray:
        return np.where(done, a[rows, pick], np.nan)

    p_value, q_value = at_best(p_all), at_best(q_all)
    # memelite's offset o aligns filter column i with motif column i + o: the motif's first column sits at -o
    first = np.where(done, starts - at_best(offset), 0)
    significant = done & (q_value < q_threshold)
    true_match = None
    if truth is not None:
        true_match = done & ((q_all < q_threshold) & truth[None, :]).any(1)
    return MotifMatches(
        database_names=tuple(names),
        name=tuple(names[j] if j >= 0 else None for j in best),
        index=best,
        score=at_best(score),
        overlap=np.where(done, at_best(overlap), 0).astype(np.int64),
        offset=first.astype(np.int64),
        strand=tuple(("-" if rc else "+") if ok else "" for rc, ok in zip(at_best(strand), done)),
        p_value=p_value,
        e_value=p_value * t,
        q_value=q_value,
        significant=significant,
        true_match=true_match,
        empty=empty,
        uninformative=uninformative,
        p_values=p_all,
        q_values=q_all,
        q_threshold=float(q_threshold),
    )


def tomtom_pvalues(
    queries: Sequence[Any],
    targets: Sequence[Any],
    *,
    n_score_bins: int = 100,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """memelite's Tomtom of every query against every target, with Benjamini-Hochberg q-values per query.

    The one Tomtom call of this package (:func:`match_motifs` and
    :func:`robustlab.genomics.interpret.modisco.match_patterns` use it). Similar target columns are not merged
    (memelite's ``n_target_bins=None``): its default merging is an approximation that moved JASPAR 2016 p-values
    by up to a factor 10, and costs nothing measurable to turn off for a database of JASPAR's size. A NaN p-value
    counts as 1 and p-values are clipped to ``[0, 1]``; q-values are Benjamini-Hochberg over the targets, per
    query, as MEME's Tomtom computes them. memelite's RuntimeWarnings (from numerics on flat columns) are silenced;
    its warning about fewer than 25 targets is not.

    Args:
        queries: probability matrices (rows A, C, G, T), compared as given (normalize and trim them first).
        targets: the database's probability matrices; Tomtom's null is built from their columns.
        n_score_bins: memelite's score resolution (``t`` of the Tomtom paper).
        threads: numba threads for Tomtom (None: numba's setting).

    Returns:
        ``(p_values, q_values, scores, offsets, overlaps, strands)`` of the best alignment of each query with
        each target, as memelite reports them (offset ``o`` aligns query column ``i`` with target column
        ``i + o``; strand 1: the target's reverse complement); float64, and int64 for the last three.

    Shape:
        queries: ``Q`` arrays ``(4, W_q)``; targets: ``T`` arrays ``(4, K_t)``; each output ``(Q, T)``.
    """
    qs = [np.ascontiguousarray(q, dtype=np.float64) for q in queries]
    ts = [np.ascontiguousarray(t, dtype=np.float64) for t in targets]
    if not qs:
        empty = np.empty((0, len(ts)))
        return empty, empty.copy(), empty.copy(), *(np.empty((0, len(ts)), dtype=np.int64) for _ in range(3))
    from memelite import tomtom

    with keep_torch_threads(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p, scores, offsets, overlaps, strands = tomtom(
            qs, ts, n_score_bins=_positive_int(n_score_bins, "n_score_bins"), n_target_bins=None,
            n_jobs=-1 if threads is None else int(threads),
        )
    p = np.clip(np.nan_to_num(np.asarray(p, dtype=np.float64), nan=1.0), 0.0, 1.0)
    q = np.stack([_benjamini_hochberg(row) for row in p])
    return (
        p,
        q,
        np.asarray(scores, dtype=np.float64),
        *(np.asarray(a).astype(np.int64) for a in (offsets, overlaps, strands)),
    )


def fraction_matched(matches: MotifMatches) -> float:
    """The fraction of non-empty filters that match a ground-truth motif (``true_match``).

    Koo & Eddy divide by all filters; empty filters (never firing) are left out here, and counted in
    ``matches.empty``. Uninformative filters fire but match nothing: they count, as unmatched. NaN when every
    filter is empty.

    Raises:
        ValueError: the matches were computed without ``true_names``.
    """
    if matches.true_match is None:
        raise ValueError("fraction_matched needs matches computed with true_names=")
    live = ~matches.empty
    if not live.any():
        return float("nan")
    return float(matches.true_match[live].mean())


# --- helpers --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Restore torch's intra-op thread count after numba code (memelite, modisco-lite) has run.

    numba's OpenMP threading layer shares libgomp with torch, and starting its thread team resets the OpenMP thread
    count torch reads: without this, a process pinned to one torch thread trains on numba's count after its first
    Tomtom call, which changes the order of floating-point sums (the figures) and oversubscribes the CPU."""
    import sys

    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _database(pwms: Sequence[Any], names: Sequence[str]) -> tuple[list[np.ndarray], list[str]]:
    """The database motifs as C-contiguous probability matrices, checked, and their names as strings."""
    mats = [np.asarray(p, dtype=np.float64) for p in pwms]
    names = [str(n) for n in names]
    if len(mats) != len(names) or not mats:
        raise ValueError(
            f"need one name per database motif and at least one motif, got {len(mats)} motifs and "
            f"{len(names)} names"
        )
    for i, m in enumerate(mats):
        if m.ndim != 2 or m.shape[0] != 4 or m.shape[1] == 0:
            raise ValueError(
                f"database_pwms[{i}] ({names[i]}): a motif must have shape (4, K), got {m.shape}"
            )
        if not np.all(np.isfinite(m)) or (m < 0).any() or (m.sum(0) <= 0).any():
            raise ValueError(f"database_pwms[{i}] ({names[i]}): needs finite non-negative columns, not all 0")
    return [np.ascontiguousarray(m / m.sum(0, keepdims=True)) for m in mats], names


def _queries(
    filter_pwms: Any, trim: float | None, pad: int
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Normalized, trimmed filter matrices, the first kept column of each, and the empty / uninformative masks."""
    if isinstance(filter_pwms, np.ndarray) and filter_pwms.ndim != 3:
        raise ValueError(
            f"filter_pwms must be an array (F, 4, W) or a sequence of (4, W) matrices, got an array of shape "
            f"{filter_pwms.shape}"
        )
    mats = [np.asarray(q, dtype=np.float64) for q in filter_pwms]
    f = len(mats)
    queries: list[np.ndarray] = [np.empty((4, 0))] * f
    starts = np.zeros(f, dtype=np.int64)
    empty = np.zeros(f, dtype=bool)
    uninformative = np.zeros(f, dtype=bool)
    for k, q in enumerate(mats):
        if q.ndim != 2 or q.shape[0] != 4 or q.shape[1] == 0:
            raise ValueError(f"filter_pwms[{k}]: a filter matrix must have shape (4, W), got {q.shape}")
        if np.isnan(q).any():
            empty[k] = True
            continue
        if not np.all(np.isfinite(q)) or (q < 0).any() or (q.sum(0) <= 0).any():
            raise ValueError(
                f"filter_pwms[{k}]: a filter matrix needs finite non-negative columns, not all 0 (NaN: empty)"
            )
        q = q / q.sum(0, keepdims=True)
        if trim is not None:
            if not (_information(q) > trim).any():
                uninformative[k] = True
                continue
            q, starts[k] = trim_pwm(q, min_information=trim, pad=pad)
        queries[k] = np.ascontiguousarray(q)
    return queries, starts, empty, uninformative


def _information(p: np.ndarray) -> np.ndarray:
    """Bits of each column of a probability matrix: ``2 + sum p log2 p``."""
    return 2.0 + np.sum(p * np.log2(p + 1e-7), axis=0)


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of one query's p-values against every target (as MEME's Tomtom)."""
    m = len(p)
    order = np.argsort(p, kind="mergesort")
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def _iter_activations(model: Any, x: Any, layer: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
    """Yield ``(x_batch, recorded_output)`` float tensors on the CPU, the model in eval mode without grad."""
    import torch
    from torch import nn

    from robustlab.common.features import FeatureRecorder
    from robustlab.common.modes import model_mode

    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    if layer is None:
        layer = getattr(model, "act1", None)
        if not isinstance(layer, nn.Module):
            layer = _first_conv(model)
    elif not isinstance(layer, nn.Module):
        raise ValueError(f"layer must be a submodule of the model, got {type(layer).__name__}")
    batch_size = _positive_int(batch_size, "batch_size")
    xs = _as_float_tensor(x, "x")
    if xs.ndim != 3 or xs.shape[1] != 4 or len(xs) == 0:
        raise ValueError(f"x must be a non-empty batch of one-hot sequences (N, 4, L), got {tuple(xs.shape)}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    recorder = FeatureRecorder(model, layer, detach=True, keep="all")
    (name,) = recorder.names
    with recorder, model_mode(model, "eval"), torch.no_grad():
        for start in range(0, len(xs), batch_size):
            xb = xs[start : start + batch_size]
            recorder.clear()
            model(xb.to(device))
            recorded = recorder.outputs[name]
            if len(recorded) != 1:
                raise ValueError(
                    f"the recorded layer ran {len(recorded)} times in one forward pass; pass "
                    f"layer= a submodule used once"
                )
            yield xb, recorded[0].float().cpu()


def _first_conv(model: Any) -> Any:
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            return m
    raise ValueError(f"{type(model).__name__} has no nn.Conv1d")


def _accumulate(acts, xs, thresholds, alive, offset: int, sums, n) -> None:
    """Add the windows of ``xs`` where ``acts`` exceed ``thresholds`` to ``sums`` (F, 4, W) and ``n`` (F,)."""
    import torch

    window = sums.shape[2]
    steps = xs.shape[2] - window + 1
    if steps < 1:
        raise ValueError(f"sequences of length {xs.shape[2]} are shorter than the filter width {window}")
    lo = offset
    hi = min(offset + steps, acts.shape[2])
    if hi <= lo:
        return
    fire = (acts[:, :, lo:hi] > thresholds.to(acts.dtype)[None, :, None]) & alive[None, :, None]
    fire = fire.to(torch.float64)  # (B, F, S') over window starts 0 .. S'-1
    windows = xs.to(torch.float64).unfold(2, window, 1)[:, :, : hi - lo]  # (B, 4, S', W)
    sums += torch.einsum("bfs,bcsw->fcw", fire, windows)
    n += fire.sum(dim=(0, 2))


def _normalize(sums, n, pseudocount: float) -> tuple[np.ndarray, np.ndarray]:
    s = sums.numpy()
    counts = n.numpy()
    pwms = (s + pseudocount) / (s.sum(1, keepdims=True) + 4 * pseudocount)
    pwms[counts == 0] = np.nan
    return pwms, counts.astype(np.int64)


def _as_float_tensor(a: Any, name: str):
    import torch

    if isinstance(a, torch.Tensor):
        t = a.detach().cpu()
    else:
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(a)))
    if t.is_complex():
        raise ValueError(f"{name} must be real, got dtype {t.dtype}")
    return t.float()


def _infer_offset(l_act: int, length: int, window: int, offset: int | None) -> int:
    if offset is not None:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, got {offset!r}")
        return offset
    if l_act == length:
        return (window - 1) // 2
    if l_act == length - window + 1:
        return 0
    raise ValueError(
        f"cannot infer the window offset from {l_act} activation positions for sequences of length {length} "
        f"and width {window}; pass offset= (the convolution's left padding)"
    )


def _check_threshold(threshold: float, pseudocount: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a fraction of the maximum activation in [0, 1], got {threshold}")
    if not pseudocount >= 0.0:
        raise ValueError(f"pseudocount must be >= 0, got {pseudocount}")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)
