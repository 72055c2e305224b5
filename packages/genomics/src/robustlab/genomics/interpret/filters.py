"""First-layer filters as motifs, and a Tomtom-like comparison of those motifs with a database (Koo & Eddy 2019).

Koo & Eddy turn each first-layer filter into a position probability matrix by aligning the input windows where
the filter fires (activation above half its maximum over the data) and averaging them; then Tomtom compares the
matrices with JASPAR and a filter counts as a match when a ground-truth motif is among its significant hits.
Here: :func:`first_layer_activations` records a layer's output with a forward hook (the model is not changed),
:func:`filter_pwms` builds the matrices from activations (:func:`model_filter_pwms` from a model, streaming over
the data), :func:`trim_pwm` drops uninformative flanks (before matching, by default), :func:`match_motifs` is
the comparison and :func:`fraction_matched` the summary.

The comparison follows Tomtom (Gupta et al. 2007). Columns are compared with Pearson correlation (Tomtom's
default ``-dist pearson``) or negative Euclidean distance (``ed``). An alignment of a filter with a database motif
at one offset and strand scores the sum of its column similarities over the overlapping columns. Its p-value is
the probability that a motif made of columns drawn at random from the database (every column of every motif on
both strands; a database shuffled column by column) scores at least as much on the same overlap: the null of
each filter column is the histogram of its similarities with all database columns (``n_bins`` bins), and the
null of a sum is the convolution of those histograms (columns independent), computed exactly rather than
sampled, so that p-values reach the 1e-5 and below that a correction over hundreds of database motifs needs (an
empirical p-value from B shuffles cannot go below 1 / (B + 1)). The best alignment's p-value is corrected for
the number of alignments tried, ``1 - (1 - p_min) ** n``, the E-value is that times the database size, and
q-values are Benjamini-Hochberg over the database motifs, per filter. The tests check this null against a seeded
sample of such column-shuffled motifs (the fraction of p-values below alpha is alpha), and measure about 5% of
random matrices with a hit at q < 0.05 against JASPAR 2016, as the correction promises.

References:
    Koo, P. K., Eddy, S. R. "Representation learning of genomic sequence motifs with convolutional neural
    networks", PLoS Computational Biology 15(12): e1007560, 2019.
    Gupta, S., Stamatoyannopoulos, J. A., Bailey, T. L., Noble, W. S. "Quantifying similarity between motifs",
    Genome Biology 8: R24, 2007.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SIMILARITIES",
    "MotifMatches",
    "first_layer_activations",
    "filter_pwms",
    "model_filter_pwms",
    "trim_pwm",
    "match_motifs",
    "fraction_matched",
]

SIMILARITIES = ("pearson", "ed")
_COMPLEMENT = [3, 2, 1, 0]  # rows A, C, G, T -> T, G, C, A


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
    info = 2.0 + np.sum(p * np.log2(p + 1e-7), axis=0)
    informative = np.flatnonzero(info > min_information)
    if informative.size == 0:
        return p, 0
    start = max(int(informative[0]) - pad, 0)
    end = min(int(informative[-1]) + pad + 1, p.shape[1])
    return p[:, start:end], start


# --- Tomtom-like matching -------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MotifMatches:
    """The result of :func:`match_motifs`, one entry per filter (index ``f``) unless noted.

    Attributes:
        database_names: the names of the database motifs, in order (``T`` of them).
        name: the best match's name, None for an empty filter.
        index: the best match's index in the database, -1 for an empty filter.
        score: summed column similarity of the best alignment.
        overlap: number of aligned columns of the best alignment.
        offset: index of the filter column (untrimmed) aligned with the motif's first column (negative when the
            motif starts before the filter).
        strand: ``"+"`` when the motif aligns as given, ``"-"`` when its reverse complement does, ``""`` if empty.
        p_value, e_value, q_value: of the best match (NaN for an empty filter).
        significant: the best match has ``q_value < q_threshold``.
        true_match: some database motif with a name in ``true_names`` has ``q < q_threshold`` (Koo & Eddy's
            criterion: a ground-truth motif among the filter's significant hits); None without ``true_names``.
        empty: the filter never fired (NaN matrix) and was not compared.
        p_values, q_values: every filter against every database motif, ``(F, T)`` (NaN rows for empty filters).
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
    p_values: np.ndarray
    q_values: np.ndarray
    q_threshold: float


def match_motifs(
    filter_pwms: Any,
    database_pwms: Sequence[Any],
    names: Sequence[str],
    *,
    true_names: Iterable[str] | None = None,
    similarity: str = "pearson",
    min_overlap: int = 5,
    q_threshold: float = 0.05,
    trim: float | None = 0.5,
    trim_pad: int = 0,
    n_bins: int = 100,
) -> MotifMatches:
    """Compare each filter matrix with every database motif, Tomtom-style (see the module docstring).

    Every offset with at least ``min(min_overlap, filter width, motif width)`` overlapping columns is tried, on
    both strands of the database motif; the alignment with the smallest p-value is the filter's match with that
    motif.

    Args:
        filter_pwms: probability matrices of the filters (rows A, C, G, T); a filter whose matrix holds NaN (it
            never fired) is reported empty.
        database_pwms: the database motifs, counts or probabilities (columns are normalized to sum 1), e.g. the
            ``counts`` of ``robustlab.genomics.data`` motifs.
        names: the database motifs' names, matched against ``true_names`` exactly (JASPAR names are
            case-sensitive: ``"Gabpa"``).
        true_names: the ground-truth motif names; sets ``true_match``.
        similarity: column similarity, ``"pearson"`` (correlation; a constant column scores 0; Tomtom's
            default, used by Koo & Eddy) or ``"ed"`` (negative Euclidean distance). Prefer ``"pearson"``: the
            null treats database columns as independent, but the flat flanks of database motifs sit together,
            so under ``"ed"`` a flat filter finds significant flat stretches (against JASPAR 2016, 80% of nearly
            uniform random 19-column matrices got a hit at q < 0.05 under ``"ed"``, 4% under ``"pearson"``).
        min_overlap: fewest aligned columns (lowered to the shorter motif's width).
        q_threshold: significance threshold on the q-value.
        trim: trim each filter with :func:`trim_pwm` at this many bits (None: compare whole filters).
        trim_pad: columns kept beyond the informative core when trimming. Koo & Eddy kept 3; under Pearson
            correlation a nearly uniform column correlates at random (up to +-1) with any target column: over
            360 shifted, truncated noisy copies of JASPAR motifs in 19-column filters, padding 3 cost 19 of them
            their significance and padding 0 none, at the same false-positive rate (5% on random matrices).
        n_bins: resolution of the column-score null (scores are rounded to ``n_bins + 1`` levels).

    Returns:
        A :class:`MotifMatches`.

    Shape:
        filter_pwms: ``(F, 4, W)`` (or a sequence of ``(4, W_f)``); database_pwms: ``T`` arrays ``(4, K_t)``.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    min_overlap = _positive_int(min_overlap, "min_overlap")
    if isinstance(trim_pad, bool) or not isinstance(trim_pad, int) or trim_pad < 0:
        raise ValueError(f"trim_pad must be an int >= 0, got {trim_pad!r}")
    n_bins = _positive_int(n_bins, "n_bins")
    if not 0 < q_threshold <= 1:
        raise ValueError(f"q_threshold must be in (0, 1], got {q_threshold}")
    db = _Database(database_pwms, names, similarity, n_bins)
    queries = [np.asarray(q, dtype=np.float64) for q in filter_pwms]
    truth = None if true_names is None else np.isin(np.array(db.names, dtype=object), list(true_names))
    f, t = len(queries), len(db.names)
    p_all = np.full((f, t), np.nan)
    q_all = np.full((f, t), np.nan)
    fields = {k: np.full(f, np.nan) for k in ("score", "p_value", "e_value", "q_value")}
    index = np.full(f, -1)
    overlap = np.zeros(f, dtype=np.int64)
    offset = np.zeros(f, dtype=np.int64)
    strand = [""] * f
    empty = np.zeros(f, dtype=bool)
    for k, query in enumerate(queries):
        if query.ndim != 2 or query.shape[0] != 4:
            raise ValueError(f"filter {k}: a matrix must have shape (4, W), got {query.shape}")
        if np.isnan(query).any():
            empty[k] = True
            continue
        if not np.all(np.isfinite(query)) or (query < 0).any() or (query.sum(0) <= 0).any():
            raise ValueError(
                f"filter {k}: a matrix needs finite non-negative columns, not all 0 (NaN: empty)"
            )
        query = query / query.sum(0, keepdims=True)
        start = 0
        if trim is not None:
            query, start = trim_pwm(query, min_information=trim, pad=trim_pad)
        best = db.compare(query, min_overlap)
        p_all[k] = best["p"]
        q_all[k] = _benjamini_hochberg(best["p"])
        j = int(np.argmin(best["p"]))
        index[k] = j
        fields["score"][k] = best["score"][j]
        fields["p_value"][k] = best["p"][j]
        fields["e_value"][k] = best["p"][j] * t
        fields["q_value"][k] = q_all[k, j]
        overlap[k] = best["overlap"][j]
        offset[k] = best["offset"][j] + start
        strand[k] = "-" if best["reverse"][j] else "+"
    significant = ~empty & (fields["q_value"] < q_threshold)
    true_match = None
    if truth is not None:
        true_match = ~empty & ((q_all < q_threshold) & truth[None, :]).any(1)
    return MotifMatches(
        database_names=tuple(db.names),
        name=tuple(None if i < 0 else db.names[i] for i in index),
        index=index,
        score=fields["score"],
        overlap=overlap,
        offset=offset,
        strand=tuple(strand),
        p_value=fields["p_value"],
        e_value=fields["e_value"],
        q_value=fields["q_value"],
        significant=significant,
        true_match=true_match,
        empty=empty,
        p_values=p_all,
        q_values=q_all,
        q_threshold=float(q_threshold),
    )


def fraction_matched(matches: MotifMatches) -> float:
    """The fraction of non-empty filters that match a ground-truth motif (``true_match``).

    Koo & Eddy divide by all filters; empty filters (never firing) are left out here, and counted in
    ``matches.empty``. NaN when every filter is empty.

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


class _Database:
    """Database motifs padded into arrays on both strands, with the pooled columns of the null."""

    def __init__(self, pwms: Sequence[Any], names: Sequence[str], similarity: str, n_bins: int) -> None:
        mats = [np.asarray(p, dtype=np.float64) for p in pwms]
        names = [str(n) for n in names]
        if len(mats) != len(names) or not mats:
            raise ValueError(
                f"need one name per database motif and at least one motif, got {len(mats)} motifs "
                f"and {len(names)} names"
            )
        for i, m in enumerate(mats):
            if m.ndim != 2 or m.shape[0] != 4 or m.shape[1] == 0:
                raise ValueError(f"database motif {i} ({names[i]}): must have shape (4, K), got {m.shape}")
            if not np.all(np.isfinite(m)) or (m < 0).any() or (m.sum(0) <= 0).any():
                raise ValueError(
                    f"database motif {i} ({names[i]}): needs finite non-negative columns, not all 0"
                )
        mats = [m / m.sum(0, keepdims=True) for m in mats]
        self.names = names
        self.similarity = similarity
        self.n_bins = n_bins
        self.lengths = np.array([m.shape[1] for m in mats])
        kmax = int(self.lengths.max())
        self.cols = np.zeros((2, len(mats), kmax, 4))  # strand, motif, column, nucleotide
        for i, m in enumerate(mats):
            self.cols[0, i, : m.shape[1]] = m.T
            self.cols[1, i, : m.shape[1]] = m[_COMPLEMENT, ::-1].T
        self.valid = np.arange(kmax)[None, :] < self.lengths[:, None]  # (T, Kmax)
        self.pool = self.cols[:, self.valid].reshape(-1, 4)  # every column on both strands
        if similarity == "pearson":
            self.lo, self.hi = -1.0, 1.0
        else:
            self.lo, self.hi = -np.sqrt(2.0), 0.0

    def _similarity(self, q: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Similarity of query columns ``(W, 4)`` with columns ``(..., 4)``: ``(W, ...)``."""
        if self.similarity == "pearson":
            zq = _standardize(q)
            zc = _standardize(cols)
            return np.einsum("wc,...c->w...", zq, zc) / 4.0
        d = q.reshape((q.shape[0],) + (1,) * (cols.ndim - 1) + (4,)) - cols[None]
        return -np.sqrt(np.square(d).sum(-1))

    def _levels(self, s: np.ndarray) -> np.ndarray:
        scaled = (np.clip(s, self.lo, self.hi) - self.lo) / (self.hi - self.lo) * self.n_bins
        return np.rint(scaled).astype(np.int64)

    def compare(self, query: np.ndarray, min_overlap: int) -> dict[str, np.ndarray]:
        """Best alignment of ``query (4, W)`` with every motif: p-value (corrected), score, overlap, offset."""
        q = query.T  # (W, 4)
        w = len(q)
        sf = _null_survival(self._levels(self._similarity(q, self.pool)), self.n_bins)  # (W+1, W+1, S)
        raw = self._similarity(q, self.cols)  # (W, 2, T, Kmax)
        raw = np.moveaxis(raw, 0, 2)  # (2, T, W, Kmax)
        lev = self._levels(raw)
        kmax = self.cols.shape[2]
        offsets = np.arange(-(kmax - 1), w)  # query column i aligns with motif column i - o
        i = np.arange(w)[:, None]
        j = i - offsets[None, :]  # (W, O)
        inside = (j >= 0)[None] & (j < self.lengths[:, None, None])  # (T, W, O)
        jc = np.clip(j, 0, kmax - 1)
        idx = np.broadcast_to(jc, (2, len(self.names), w, len(offsets)))
        mask = inside[None]
        score_lev = (np.take_along_axis(lev, idx, axis=3) * mask).sum(2)  # (2, T, O)
        score_raw = (np.take_along_axis(raw, idx, axis=3) * mask).sum(2)
        a = np.maximum(offsets[None, :], 0)  # (1, O)
        b = np.minimum(w, self.lengths[:, None] + offsets[None, :])  # (T, O)
        a = np.broadcast_to(a, b.shape)
        length = b - a
        need = np.minimum(min_overlap, np.minimum(w, self.lengths))[:, None]  # (T, 1)
        ok = length >= need  # (T, O)
        a_safe = np.where(ok, a, 0)
        b_safe = np.where(ok, b, 1)
        p = sf[a_safe[None], b_safe[None], np.where(ok[None], score_lev, 0)]  # (2, T, O)
        p = np.where(ok[None], p, np.inf)
        flat = p.transpose(1, 0, 2).reshape(len(self.names), -1)  # (T, 2 * O)
        best = np.argmin(flat, axis=1)
        rows = np.arange(len(self.names))
        p_min = np.minimum(flat[rows, best], 1.0)
        n_tests = 2 * ok.sum(1)
        p_motif = -np.expm1(n_tests * np.log1p(-np.minimum(p_min, 1 - 1e-16)))
        p_motif = np.where(p_min >= 1.0, 1.0, np.maximum(p_motif, p_min))
        reverse, o = np.divmod(best, len(offsets))
        return {
            "p": p_motif,
            "score": score_raw[reverse, rows, o],
            "overlap": length[rows, o],
            "offset": offsets[o],
            "reverse": reverse.astype(bool),
        }


def _null_survival(levels: np.ndarray, n_bins: int) -> np.ndarray:
    """``sf[a, b, s] = P(sum of columns a..b-1's null levels >= s)``, columns independent.

    ``levels`` ``(W, P)``: each query column's levels against the ``P`` pooled database columns.
    """
    w = len(levels)
    hist = np.stack([np.bincount(row, minlength=n_bins + 1) for row in levels]).astype(np.float64)
    hist /= hist.sum(1, keepdims=True)
    size = w * n_bins + 2
    sf = np.zeros((w + 1, w + 1, size))
    for a in range(w):
        dist = np.ones(1)
        for b in range(a + 1, w + 1):
            dist = np.convolve(dist, hist[b - 1])
            tail = np.cumsum(dist[::-1])[::-1]
            sf[a, b, : len(tail)] = np.minimum(tail, 1.0)
    return sf


def _standardize(cols: np.ndarray) -> np.ndarray:
    centred = cols - cols.mean(-1, keepdims=True)
    sd = np.sqrt(np.square(centred).mean(-1, keepdims=True))
    return np.divide(centred, sd, out=np.zeros_like(centred), where=sd > 1e-12)


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
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
