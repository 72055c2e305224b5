"""Synthetic regulatory sequences with ground truth: the data sets of Koo et al. (2019) and Koo & Eddy (2019).

Each sequence is drawn from its own generating matrix: a uniform background (0.25 per base) into which a few
motif PWMs (either strand) are placed at random, non-overlapping positions. The number of motifs per sequence
follows a fixed distribution; the free length (the sequence length minus the motifs' widths) is split into
``k + 1`` gaps by drawing ``k + 1`` uniform numbers and rescaling them to sum to the free length (rounded on
their cumulative sum so the gaps are whole and add up exactly). Every base is then sampled from its column of
the matrix, so an embedded motif is a sampled instance, not the consensus. A draw whose motifs do not fit in the
sequence is redrawn (count and motifs), as in the original code.

Everything is vectorised over sequences: 30,000 sequences of length 200 with their one-hot encoding take well
under a second (``benchmarks/bench_genomics_data.py``).

Reference:
    Koo, Qian, Kaplun, Volf & Kalimeris, "Robust neural networks are more interpretable for genomics",
    bioRxiv 657437 (2019). Koo & Eddy, "Representation learning of genomic sequence motifs with convolutional
    neural networks", PLoS Computational Biology 15(12): e1007560 (2019).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from robustlab.common.errors import DataError
from robustlab.genomics.data.motifs import KOO2019_CORE_MOTIFS, KOO_EDDY2019_MOTIFS, Motif, jaspar_motifs

__all__ = [
    "KOO2019_MOTIF_COUNTS",
    "KOO2019_OTHER_IDS",
    "KOO_EDDY2019_MOTIF_COUNTS",
    "SimulatedDataset",
    "koo2019_other_motifs",
    "simulate_koo2019",
    "simulate_koo_eddy2019",
]

KOO2019_MOTIF_COUNTS = {3: 0.50, 4: 0.25, 5: 0.17, 6: 0.05, 7: 0.03}
"""Motifs per sequence in the koo2019 task and their probabilities (Koo et al. 2019)."""

KOO_EDDY2019_MOTIF_COUNTS = {1: 0.50, 2: 0.25, 3: 0.17, 4: 0.05, 5: 0.03}
"""Motifs per sequence in the koo_eddy2019 task: the same shape shifted to 1-5, as in Koo & Eddy's code."""

KOO2019_OTHER_IDS = (
    "MA0909.1", "MA0004.1", "MA0006.1", "MA0913.1", "MA0786.1", "MA0507.1", "MA0663.1", "MA0664.1", "MA0464.2",
    "MA0667.1", "MA0668.1", "MA0482.1", "MA0763.1", "MA0038.1", "MA0124.2", "MA0489.1", "MA0046.2", "MA0492.1",
    "MA0050.2", "MA0498.2", "MA0830.1", "MA0063.1", "MA0823.1", "MA0697.1", "MA0682.1", "MA0701.1", "MA0512.2",
    "MA0513.1", "MA0471.1", "MA0080.4", "MA0838.1", "MA0083.3", "MA0084.1", "MA0593.1", "MA0850.1", "MA0724.1",
    "MA0853.1", "MA0103.2", "MA0599.1", "MA0600.2", "MA0161.1", "MA0863.1", "MA0057.1", "MA0610.1", "MA0870.1",
    "MA0882.1", "MA0749.1", "MA0752.1", "MA0142.1", "MA0143.3",
)
"""The JASPAR 2016 matrix IDs of the 50 non-core motifs of the koo2019 negatives, as the authors' notebook draws
them (``koo-lab/uncovering_regulatory_codes`` at 346b36d, ``code/0_Generate_Synthetic_Dataset.ipynb``): after
``np.random.seed(22)``, ``np.random.permutation(519)[:65]`` over JASPAR 2016 CORE vertebrates non-redundant (the
repository's ``data/pfm_vertebrates.txt``, the same 519 matrices in the same order as pyjaspar's), then
``list(set(index) - set([4, 5, 12, 15, 17, 18, 20, 36, 42, 60]))[:50]`` under the notebook's Python 2.7.12. That
set's iteration order is CPython 2.7's hash-table order; ``tests/genomics/test_simulate.py`` re-derives the list
by replaying the draw and the 2.7 table. (The removed values are meant as positions among the 65 but act as
matrix indices, none of which was drawn, so nothing is removed; none of the 50 is a core factor.)"""

_FORMAT = "robustlab.genomics.SimulatedDataset/1"
_MAX_REDRAWS = 1000
_SPLIT_STREAM = 0x5B11  # separates the split's random stream from the simulation's


@dataclass(frozen=True, eq=False)
class SimulatedDataset:
    """Simulated sequences with their ground truth.

    Args:
        x: one-hot encoding of the sampled sequences (channels A, C, G, T).
        y: targets: ``(N, 1)`` 0/1 for koo2019 (1 = positive), ``(N, M)`` motif presence for koo_eddy2019.
        pwm_matrix: the generating probability matrix of each sequence: 0.25 in the background, the motif's PWM
            (on the strand it was placed) where a motif is embedded.
        mask: True at the positions covered by an embedded motif.
        motif_index: for each sequence, the index into ``motif_names`` of each embedded motif, left to right;
            -1 pads rows with fewer than ``K`` motifs.
        motif_start: the 0-based start of each embedded motif (-1 for padding).
        motif_strand: +1 (as in JASPAR) or -1 (reverse complement); 0 for padding.
        motif_names: the names of the motifs the sequences could draw from.
        motif_ids: their JASPAR matrix IDs.
        task: the generator (``"koo2019"``, ``"koo_eddy2019"``).

    Shape:
        x, pwm_matrix: ``(N, 4, L)`` float32; mask: ``(N, L)`` bool; y: ``(N, T)`` float32;
        motif_index, motif_start, motif_strand: ``(N, K)`` with ``K`` the most motifs a sequence can hold.
    """

    x: np.ndarray
    y: np.ndarray
    pwm_matrix: np.ndarray
    mask: np.ndarray
    motif_index: np.ndarray
    motif_start: np.ndarray
    motif_strand: np.ndarray
    motif_names: tuple[str, ...]
    motif_ids: tuple[str, ...]
    task: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "motif_names", tuple(str(n) for n in self.motif_names))
        object.__setattr__(self, "motif_ids", tuple(str(n) for n in self.motif_ids))
        x = self.x
        if x.ndim != 3 or x.shape[1] != 4:
            raise DataError(f"SimulatedDataset: 'x' must have shape (N, 4, L), got {x.shape}")
        n, _, length = x.shape
        expect = {
            "pwm_matrix": (n, 4, length), "mask": (n, length),
            "motif_start": self.motif_index.shape, "motif_strand": self.motif_index.shape,
        }
        for name, shape in expect.items():
            if getattr(self, name).shape != shape:
                got = getattr(self, name).shape
                raise DataError(f"SimulatedDataset: {name!r} has shape {got}, expected {shape}")
        if self.y.shape[:1] != (n,):
            raise DataError(f"SimulatedDataset: 'y' has {self.y.shape[0]} rows but 'x' has {n}")
        if self.motif_index.ndim != 2 or self.motif_index.shape[0] != n:
            raise DataError(
                f"SimulatedDataset: 'motif_index' must have shape (N={n}, K), got {self.motif_index.shape}"
            )
        m = len(self.motif_names)
        if len(self.motif_ids) != m:
            raise DataError(f"SimulatedDataset: {len(self.motif_ids)} motif_ids for {m} motif_names")
        if self.motif_index.size and not (-1 <= self.motif_index.min() and self.motif_index.max() < m):
            raise DataError(f"SimulatedDataset: 'motif_index' must lie in [-1, {m})")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def length(self) -> int:
        """The sequence length ``L``."""
        return self.x.shape[2]

    @property
    def n_motifs(self) -> np.ndarray:
        """The number of motifs embedded in each sequence, ``(N,)``."""
        return (self.motif_index >= 0).sum(axis=1)

    def sequences(self) -> list[str]:
        """The sampled sequences as strings."""
        from robustlab.genomics.data.onehot import decode

        return decode(self.x)

    def subset(self, index) -> SimulatedDataset:
        """The sequences at ``index`` (an integer array, a slice or a boolean mask), ground truth included."""
        arrays = {f.name: getattr(self, f.name)[index] for f in fields(self)
                  if isinstance(getattr(self, f.name), np.ndarray)}
        return SimulatedDataset(**arrays, motif_names=self.motif_names, motif_ids=self.motif_ids, task=self.task)

    def split(
        self, fractions: Sequence[float] = (0.7, 0.1, 0.2), *, seed: int = 0
    ) -> tuple[SimulatedDataset, ...]:
        """Random disjoint parts (train/valid/test by default) of the given fractions of the sequences.

        Sizes are the rounded cumulative fractions, so 10,000 sequences split into 7,000 / 1,000 / 2,000.

        Args:
            fractions: non-negative fractions summing to 1.
            seed: seed of the shuffle (independent of the simulation seed).
        """
        f = np.asarray(fractions, dtype=np.float64)
        if f.ndim != 1 or not len(f) or (f < 0).any() or abs(f.sum() - 1) > 1e-6:
            raise ValueError(f"fractions must be non-negative and sum to 1, got {tuple(fractions)}")
        n = len(self)
        bounds = np.rint(np.cumsum(f) * n).astype(np.int64)
        bounds[-1] = n
        # A stream of its own: default_rng(seed) would repeat the simulation's draws for the same seed (its
        # choice of positives), putting every positive in one part.
        order = np.random.default_rng([seed, _SPLIT_STREAM]).permutation(n)
        return tuple(self.subset(np.sort(part)) for part in np.split(order, bounds[:-1]))

    def to_dataset(self):
        """A :class:`robustlab.common.data.ArrayDataset` of ``x``, ``y`` and the motif ``mask``."""
        from robustlab.common.data import ArrayDataset

        return ArrayDataset(self.x, self.y, mask=self.mask)

    def save_npz(self, path: str | os.PathLike) -> Path:
        """Write every field to a compressed NPZ file, atomically (readable with ``np.load`` alone)."""
        from robustlab.common.io import atomic_write

        arrays = {f.name: getattr(self, f.name) for f in fields(self)}
        arrays["motif_names"] = np.array(self.motif_names, dtype=str)
        arrays["motif_ids"] = np.array(self.motif_ids, dtype=str)
        arrays["task"] = np.array(self.task)
        arrays["format"] = np.array(_FORMAT)
        return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> SimulatedDataset:
        """Read a file written by :meth:`save_npz`.

        Raises:
            DataError: the file is missing, not an NPZ file, lacks a field, holds inconsistent shapes, values
                that do not fit a field's type, NaN or infinite values, an ``x`` that is not one-hot (0/1), or
                motif positions outside the sequences (the message names the file and the field).
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"simulated data set {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as e:  # zipfile.BadZipFile, ValueError (pickled objects), OSError, EOFError...
            raise DataError(f"{path} is not a readable NPZ file: {type(e).__name__}: {e}") from e
        names = [f.name for f in fields(cls)]
        missing = [k for k in names if k not in data]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise DataError(f"{path} lacks the field{plural} {', '.join(map(repr, missing))} of a simulated data set")
        kwargs = {k: data[k] for k in names}
        for k in ("motif_names", "motif_ids"):
            if kwargs[k].ndim != 1:
                raise DataError(f"{path}: field {k!r} must be a list of strings, got an array of shape "
                                f"{kwargs[k].shape}")
            kwargs[k] = tuple(kwargs[k].tolist())
        kwargs["task"] = str(kwargs["task"])
        dtypes = {"x": np.float32, "y": np.float32, "pwm_matrix": np.float32, "mask": bool,
                  "motif_index": np.int16, "motif_start": np.int32, "motif_strand": np.int8}
        try:
            for k, dtype in dtypes.items():
                kwargs[k] = _as_dtype(kwargs[k], dtype, k)
            ds = cls(**kwargs)
        except (DataError, ValueError, TypeError) as e:
            raise DataError(f"{path}: {e}") from e
        problem = _check_values(ds)
        if problem:
            raise DataError(f"{path}: {problem}; the file is corrupt or was not written by save_npz")
        return ds


def _as_dtype(a: np.ndarray, dtype, name: str) -> np.ndarray:
    """``a`` as ``dtype``; integer and boolean fields must keep their values (no wrap-around, no rounding)."""
    try:
        with np.errstate(invalid="ignore", over="ignore"):  # NaN or overflow in a cast: caught below
            out = a.astype(dtype, copy=False)
    except (ValueError, TypeError) as e:
        raise DataError(f"field {name!r} cannot be read as {np.dtype(dtype).name}: {e}") from None
    if out.dtype.kind in "iub" and (a.dtype.kind not in "iubf" or not np.array_equal(out, a)):
        raise DataError(f"field {name!r} holds values that are not {np.dtype(dtype).name} (dtype {a.dtype})")
    return out


def _check_values(ds: SimulatedDataset) -> str | None:
    """What is wrong with the values of a data set whose shapes fit (None when nothing is)."""
    for name in ("x", "y", "pwm_matrix"):
        a = getattr(ds, name)
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            return f"{name!r} holds {bad} non-finite value{'s' if bad > 1 else ''} (NaN or infinite)"
    if ((ds.x != 0) & (ds.x != 1)).any():
        return "'x' is not one-hot: it holds values other than 0 and 1"
    pad = ds.motif_index < 0
    if (ds.motif_start[pad] != -1).any() or (ds.motif_strand[pad] != 0).any():
        return "'motif_start' and 'motif_strand' must be -1 and 0 where 'motif_index' is -1 (no motif)"
    start = ds.motif_start[~pad]
    if start.size and (start.min() < 0 or start.max() >= ds.length):
        return f"'motif_start' holds positions outside the sequences of length {ds.length}"
    if not np.isin(ds.motif_strand[~pad], (-1, 1)).all():
        return "'motif_strand' must be +1 or -1 where there is a motif"
    return None


# -- the two tasks --------------------------------------------------------------------------------------------


def koo2019_other_motifs() -> list[Motif]:
    """The 50 non-core motifs of the koo2019 negatives: :data:`KOO2019_OTHER_IDS` from JASPAR 2016 (pyjaspar),
    in the authors' order."""
    by_id = {m.matrix_id: m for m in jaspar_motifs(release=2016)}
    missing = [i for i in KOO2019_OTHER_IDS if i not in by_id]
    if missing:
        raise DataError(f"JASPAR 2016 CORE vertebrates (pyjaspar) lacks the koo2019 motifs {', '.join(missing)}")
    return [by_id[i] for i in KOO2019_OTHER_IDS]


def simulate_koo2019(
    n: int = 10000,
    *,
    seed: int = 0,
    length: int = 200,
    core: Sequence[Motif] | None = None,
    others: Sequence[Motif] | None = None,
) -> SimulatedDataset:
    """The binary task of Koo et al. (2019): core motifs only (positives) against core plus other motifs.

    Half the sequences (``n // 2``, in random order) are positives: 3 to 7 motifs (probabilities
    :data:`KOO2019_MOTIF_COUNTS`) drawn with replacement from the core motifs, each on a random strand.
    Negatives draw their motifs from the core and the other motifs together (``motif_index`` < ``len(core)``
    is a core motif). The background is uniform.

    Args:
        n: number of sequences (10,000 is the paper's small data set, 30,000 its large one).
        seed: seed of the NumPy generator; the same seed gives the same data set.
        length: sequence length.
        core: the positive-class motifs (default JASPAR 2016 SP1, Gabpa, CEBPB, MAX, YY1).
        others: the further motifs of the negatives (default :func:`koo2019_other_motifs`).

    Returns:
        A :class:`SimulatedDataset` with ``y`` of shape ``(N, 1)`` (1 = positive) and ``motif_names`` the core
        names followed by the others'.

    Reference:
        Koo, Qian, Kaplun, Volf & Kalimeris, "Robust neural networks are more interpretable for genomics",
        bioRxiv 657437 (2019).
    """
    _check(n, length)
    core = list(core) if core is not None else jaspar_motifs(release=2016, names=KOO2019_CORE_MOTIFS)
    others = list(others) if others is not None else koo2019_other_motifs()
    if not core:
        raise ValueError("core must hold at least one motif")
    motifs = core + others
    rng = np.random.default_rng(seed)
    n_pos = n // 2
    y = np.zeros(n, dtype=np.float32)
    y[rng.permutation(n)[:n_pos]] = 1
    allowed = np.where(y == 1, len(core), len(motifs))
    parts = _embed(rng, motifs, allowed, KOO2019_MOTIF_COUNTS, length)
    return SimulatedDataset(y=y[:, None], **parts, task="koo2019")


def simulate_koo_eddy2019(
    n: int = 25000,
    *,
    seed: int = 0,
    length: int = 200,
    motifs: Sequence[Motif] | None = None,
) -> SimulatedDataset:
    """The multi-task data set of Koo & Eddy (2019): which of 12 motifs a sequence holds.

    Each sequence holds 1 to 5 motifs (probabilities :data:`KOO_EDDY2019_MOTIF_COUNTS`: .50/.25/.17/.05/.03, the
    distribution of Koo & Eddy's generator) drawn with replacement from the 12, each on a random strand; the
    target is 1 for every motif present on either strand.

    Args:
        n: number of sequences (25,000 in the paper).
        seed: seed of the NumPy generator.
        length: sequence length.
        motifs: the motifs (default the JASPAR 2016 motifs of :data:`KOO_EDDY2019_MOTIFS`).

    Returns:
        A :class:`SimulatedDataset` with ``y`` of shape ``(N, M)`` float32 (M = 12 by default).

    Reference:
        Koo & Eddy, "Representation learning of genomic sequence motifs with convolutional neural networks",
        PLoS Computational Biology 15(12): e1007560 (2019).
    """
    _check(n, length)
    motifs = list(motifs) if motifs is not None else jaspar_motifs(release=2016, names=KOO_EDDY2019_MOTIFS)
    if not motifs:
        raise ValueError("motifs must hold at least one motif")
    rng = np.random.default_rng(seed)
    parts = _embed(rng, motifs, np.full(n, len(motifs)), KOO_EDDY2019_MOTIF_COUNTS, length)
    idx = parts["motif_index"]
    rows, cols = np.nonzero(idx >= 0)
    y = np.zeros((n, len(motifs)), dtype=np.float32)
    y[rows, idx[rows, cols]] = 1
    return SimulatedDataset(y=y, **parts, task="koo_eddy2019")


def _check(n: int, length: int) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    if int(length) != length or length < 1:
        raise ValueError(f"length must be a positive integer, got {length}")


def _embed(
    rng: np.random.Generator,
    motifs: Sequence[Motif],
    allowed: np.ndarray,
    counts: dict[int, float],
    length: int,
) -> dict:
    """Place motifs in uniform backgrounds and sample the sequences; row ``i`` draws from ``motifs[:allowed[i]]``."""
    from robustlab.genomics.data.onehot import ALPHABET

    n = len(allowed)
    ks = np.array(list(counts), dtype=np.int64)
    probs = np.array(list(counts.values()), dtype=np.float64)
    probs = probs / probs.sum()
    kmax = int(ks.max())
    widths = np.array([m.length for m in motifs], dtype=np.int64)
    if ks.min() * widths[: int(allowed.min())].min() > length:
        raise ValueError(f"length {length} is too short for {ks.min()} motifs of width "
                         f"{widths[: int(allowed.min())].min()} or more")

    # How many motifs, which ones, and on which strand; redraw the rows whose motifs do not fit.
    k = np.empty(n, dtype=np.int64)
    idx = np.empty((n, kmax), dtype=np.int64)
    todo = np.arange(n)
    for _ in range(_MAX_REDRAWS):
        k[todo] = rng.choice(ks, size=len(todo), p=probs)
        idx[todo] = (rng.random((len(todo), kmax)) * allowed[todo, None]).astype(np.int64)
        active = np.arange(kmax)[None, :] < k[todo, None]
        total = (widths[idx[todo]] * active).sum(axis=1)
        todo = todo[total > length]
        if not len(todo):
            break
    else:
        raise ValueError(f"length {length} is too short: {len(todo)} sequences could not fit their motifs after "
                         f"{_MAX_REDRAWS} draws")
    active = np.arange(kmax)[None, :] < k[:, None]
    strand = rng.integers(0, 2, size=(n, kmax))  # 0: as in JASPAR, 1: reverse complement
    w = widths[idx] * active

    # Gaps: k + 1 uniform numbers per sequence, rescaled to fill the free length; rounding the cumulative sum
    # keeps the gaps whole, non-negative and summing exactly to the free length.
    free = length - w.sum(axis=1)
    u = (1.0 - rng.random((n, kmax + 1))) * (np.arange(kmax + 1)[None, :] <= k[:, None])
    cum = np.cumsum(u, axis=1)
    cum_gap = np.rint(cum / cum[:, -1:] * free[:, None]).astype(np.int64)
    start = cum_gap[:, :kmax] + np.cumsum(w, axis=1) - w

    # Every embedded position, flattened: (sequence, column) and the matching column of the motif bank.
    bank = []
    for m in motifs:
        p = m.pwm()
        bank += [p, p[::-1, ::-1]]
    offsets = np.cumsum([0] + [b.shape[1] for b in bank])[:-1]
    bank = np.concatenate(bank, axis=1)  # (4, total width), forward then reverse complement of each motif
    rows, slots = np.nonzero(active)
    e_width = w[rows, slots]
    rep = np.repeat(np.arange(len(rows)), e_width)
    within = np.arange(int(e_width.sum())) - np.repeat(np.cumsum(e_width) - e_width, e_width)
    seq_row = rows[rep]
    seq_col = start[rows, slots][rep] + within
    src = offsets[2 * idx[rows, slots] + strand[rows, slots]][rep] + within

    pwm_matrix = np.full((n, 4, length), 0.25, dtype=np.float32)
    pwm_matrix[seq_row, :, seq_col] = bank[:, src].T
    mask = np.zeros((n, length), dtype=bool)
    mask[seq_row, seq_col] = True

    # Sampling: uniform bases in the background, inverse-CDF draws from the motif columns.
    bases = rng.integers(0, 4, size=(n, length), dtype=np.uint8)
    cdf = np.cumsum(bank, axis=0)[:, src]
    r = rng.random(len(src)) * cdf[3]
    bases[seq_row, seq_col] = (r >= cdf[0]).astype(np.uint8) + (r >= cdf[1]) + (r >= cdf[2])
    x = np.empty((n, 4, length), dtype=np.float32)
    for c in range(len(ALPHABET)):
        np.equal(bases, c, out=x[:, c, :], casting="unsafe")

    return {
        "x": x,
        "pwm_matrix": pwm_matrix,
        "mask": mask,
        "motif_index": np.where(active, idx, -1).astype(np.int16),
        "motif_start": np.where(active, start, -1).astype(np.int32),
        "motif_strand": np.where(active, 1 - 2 * strand, 0).astype(np.int8),
        "motif_names": tuple(m.name for m in motifs),
        "motif_ids": tuple(m.matrix_id for m in motifs),
    }
