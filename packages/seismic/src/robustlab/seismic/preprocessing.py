"""The preprocessing chain of seismic traces, with a report of every trace skipped and why.

One trace per file (the trace id that the labels name, else the file's first): its segments merged when every gap is
at most ``max_gap`` (:func:`robustlab.seismic.data.traces.read_trace`), then, per trace:

1. skipped when its rate is below ``min_rate`` (LHZ/VHZ, 1 Hz and slower), it is empty, holds NaN/inf samples, does
   not cover the signal or noise window, or is a flat line over the signal window (counted by reason);
2. cut to the analysis span (noise window start minus ``margin`` to the signal window end): the steps below run on
   that span only (leaner than filtering the whole file). The span always ends at the signal window's end, so the
   taper and the filter's edge fall on the window's last seconds alike for every file: the PNW files end there,
   and a longer file given to ``predict`` is treated as they were in training;
3. detrend (demean, then the least-squares line), Hann taper (``taper`` of the span's length at each end, as
   ObsPy's ``Trace.taper(max_percentage, type="hann")``), Butterworth band-pass ``freqmin``-``freqmax`` Hz with
   ``corners`` corners, zero-phase (forward and backward, as ObsPy's ``bandpass(..., zerophase=True)``; the
   second-order sections are designed once per rate);
4. resampled to ``rate`` by a rational polyphase filter (``scipy.signal.resample_poly``: 100 -> 20 Hz decimates by
   5, 50 -> 20 Hz is up 2 / down 5, each with its FIR anti-alias filter; a rate within 1e-4 of ``rate`` is taken
   as ``rate``). It is ~10x faster than ObsPy's FFT ``Trace.resample`` per trace and needs no whole-trace FFT;
   the two agree inside the band (see the tests);
5. the signal window ``[origin + window[0], origin + window[1])`` and the noise window cut at the nearest output
   samples (as ObsPy's ``trim(nearest_sample=True)``); the signal window divided by its standard deviation
   (``normalize="std"``); the noise window is returned as filtered counts (the noise-only baseline's input, never a
   model input).

The arithmetic runs on NumPy arrays, not ObsPy ``Trace`` methods: each ObsPy method call records its processing
in the trace's stats, which looks up the ObsPy version through ``importlib.metadata`` and costs more than the
filtering itself (see ``benchmarks/bench_seismic_data.py``).

Importing this module loads NumPy only; ObsPy, SciPy and pandas load when traces are processed.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from robustlab.common.errors import ConfigError, DataError

__all__ = ["NORMALIZATIONS", "SKIP_KINDS", "PreprocessConfig", "SkipTrace", "TraceSet", "filter_array",
           "preprocess_files", "preprocess_trace"]

NORMALIZATIONS = ("std", "none")
"""``normalize`` values: divide the signal window by its standard deviation (z-score), or leave it."""

SKIP_KINDS = ("unreadable", "missing trace", "rate", "empty", "gap", "not finite", "truncated", "flat")
"""The kinds of skip reasons (``TraceSet.report["kind"]``): the file does not read as miniSEED/SAC (or is
missing), the trace id is not in it, the rate is below ``min_rate``, no samples, a gap above ``max_gap``, NaN/inf
samples, a window not fully covered, a constant signal window."""

_RATE_TOLERANCE = 1e-4  # relative: a 19.99994 Hz clock counts as 20 Hz
_CACHE_VERSION = 1


class SkipTrace(DataError):
    """A trace that the chain leaves out; ``reason`` is the report's text, ``kind`` one of :data:`SKIP_KINDS`.

    Args:
        reason: what is wrong, e.g. ``"gap of 3.2 s > 1.0 s"``.
        kind: the reason's kind (:data:`SKIP_KINDS`).
        file: the file, named in the message (not in ``reason``).
    """

    def __init__(self, reason: str, kind: str, file: str | os.PathLike | None = None):
        self.reason = reason
        self.kind = kind
        self.file = None if file is None else str(file)
        super().__init__(f"{file}: {reason}" if file is not None else reason)


@dataclass(frozen=True)
class PreprocessConfig:
    """The chain's parameters (validated on construction: :class:`ConfigError` names the field).

    Args:
        rate: the output rate (Hz).
        min_rate: traces sampled below this (Hz, relative tolerance 1e-4) are skipped ("rate below 20 Hz").
        freqmin, freqmax: the band-pass corners (Hz); ``freqmax`` must lie below half of ``rate`` and of
            ``min_rate``.
        corners: the Butterworth filter's corners (order).
        zerophase: filter forward and backward (no phase shift).
        window: the signal window in seconds relative to the origin, ``[start, end)``.
        noise_window: the noise window relative to the origin (``(0.0, 0.0)``: none).
        taper: the Hann taper's share of the span at each end (ObsPy's ``max_percentage``).
        max_gap: the largest gap (s) merged by interpolation; a trace with a larger one is skipped.
        normalize: ``"std"`` (the signal window divided by its standard deviation) or ``"none"``.
        margin: seconds of data kept before the windows for filtering (the span is cut to
            ``[origin + min(window[0], noise_window[0]) - margin, origin + window[1]]``).

    Examples::

        >>> from robustlab.seismic.preprocessing import PreprocessConfig
        >>> PreprocessConfig().n_samples, PreprocessConfig().n_noise
        (2000, 200)
    """

    rate: float = 20.0
    min_rate: float = 20.0
    freqmin: float = 1.0
    freqmax: float = 8.0
    corners: int = 4
    zerophase: bool = True
    window: tuple[float, float] = (0.0, 100.0)
    noise_window: tuple[float, float] = (-10.0, 0.0)
    taper: float = 0.05
    max_gap: float = 1.0
    normalize: str = "std"
    margin: float = 20.0

    def __post_init__(self):
        object.__setattr__(self, "window", tuple(float(v) for v in self.window))
        object.__setattr__(self, "noise_window", tuple(float(v) for v in self.noise_window))
        for name in ("rate", "min_rate", "freqmin", "freqmax"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"PreprocessConfig.{name} must be a positive number (Hz), got {v!r}")
        if not self.freqmin < self.freqmax:
            raise ConfigError(f"PreprocessConfig.freqmin ({self.freqmin}) must be below freqmax ({self.freqmax})")
        for name in ("rate", "min_rate"):
            if self.freqmax >= getattr(self, name) / 2:
                raise ConfigError(f"PreprocessConfig.freqmax ({self.freqmax} Hz) must be below half of {name} "
                                  f"({getattr(self, name)} Hz), the Nyquist frequency")
        if not isinstance(self.corners, int) or isinstance(self.corners, bool) or not 1 <= self.corners <= 10:
            raise ConfigError(f"PreprocessConfig.corners must be an integer in 1..10, got {self.corners!r}")
        for name in ("window", "noise_window"):
            w = getattr(self, name)
            if len(w) != 2 or not all(math.isfinite(v) for v in w) or w[1] < w[0]:
                raise ConfigError(f"PreprocessConfig.{name} must be (start, end) seconds from the origin with "
                                  f"start <= end, got {w!r}")
        if self.n_samples < 1:
            raise ConfigError(f"PreprocessConfig.window {self.window} holds no sample at {self.rate} Hz")
        if not 0 <= self.taper <= 0.5:
            raise ConfigError(f"PreprocessConfig.taper must be in [0, 0.5], got {self.taper!r}")
        if not self.max_gap >= 0:
            raise ConfigError(f"PreprocessConfig.max_gap must be >= 0 seconds, got {self.max_gap!r}")
        if not self.margin >= 0:
            raise ConfigError(f"PreprocessConfig.margin must be >= 0 seconds, got {self.margin!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(f"PreprocessConfig.normalize must be one of {', '.join(NORMALIZATIONS)}, "
                              f"got {self.normalize!r}")

    @property
    def n_samples(self) -> int:
        """Samples of the signal window (2000 by default)."""
        return int(round((self.window[1] - self.window[0]) * self.rate))

    @property
    def n_noise(self) -> int:
        """Samples of the noise window (200 by default)."""
        return int(round((self.noise_window[1] - self.noise_window[0]) * self.rate))

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (windows as lists)."""
        d = asdict(self)
        d["window"], d["noise_window"] = list(self.window), list(self.noise_window)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        """The config of :meth:`to_dict`; unknown keys raise :class:`ConfigError` naming them."""
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown PreprocessConfig field(s) {', '.join(unknown)}; the fields are "
                              f"{', '.join(cls.__dataclass_fields__)}")
        d = dict(d)
        for k in ("window", "noise_window"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@functools.lru_cache(maxsize=64)
def _bandpass_sos(freqmin: float, freqmax: float, rate: float, corners: int) -> np.ndarray:
    """ObsPy's ``bandpass`` filter design (Butterworth, second-order sections), once per rate."""
    from scipy.signal import iirfilter

    fe = 0.5 * rate
    return iirfilter(corners, [freqmin / fe, freqmax / fe], btype="band", ftype="butter", output="sos")


@functools.lru_cache(maxsize=256)
def _hann(m: int) -> np.ndarray:
    from scipy.signal.windows import hann

    return hann(m)


def filter_array(x: np.ndarray, rate: float, config: PreprocessConfig) -> np.ndarray:
    """Detrend (mean, then line), taper and band-pass ``x`` along its last axis (float64, a new array).

    Args:
        x: ``(..., n)`` samples.
        rate: their rate (Hz).
        config: the taper, corners and band.

    Returns:
        ``(..., n)`` float64.
    """
    from scipy.signal import sosfilt

    x = np.array(x, dtype=np.float64)  # a copy
    n = x.shape[-1]
    if n == 0:
        return x
    x -= x.mean(axis=-1, keepdims=True)
    if n > 1:  # the least-squares line (scipy.signal.detrend(type="linear"), in closed form)
        t = np.arange(n, dtype=np.float64) - (n - 1) / 2
        slope = (x @ t) / (t @ t)
        x -= slope[..., None] * t + x.mean(axis=-1, keepdims=True)
    wlen = min(int(config.taper * n), int(n / 2))
    if wlen:
        ends = _hann(2 * wlen if 2 * wlen == n else 2 * wlen + 1)
        x[..., :wlen] *= ends[:wlen]
        x[..., n - wlen:] *= ends[len(ends) - wlen:]
    sos = _bandpass_sos(float(config.freqmin), float(config.freqmax), float(rate), int(config.corners))
    x = sosfilt(sos, x, axis=-1)
    if config.zerophase:
        x = sosfilt(sos, x[..., ::-1], axis=-1)[..., ::-1]
    return np.ascontiguousarray(x)


def _grid_step(rate: float, target: float) -> int:
    """Raw samples between two output samples that fall on raw samples (the output grid starts at the trace's
    first sample, as ObsPy's ``resample``; cutting the span at a multiple of this keeps that grid)."""
    if abs(rate - target) <= _RATE_TOLERANCE * target:
        return 1
    frac = Fraction(target / rate).limit_denominator(1000)
    if abs(frac.numerator / frac.denominator * rate - target) > _RATE_TOLERANCE * target:
        return 1
    return frac.denominator


def _resample(x: np.ndarray, rate: float, target: float) -> np.ndarray:
    """``x`` at ``rate`` -> ``target`` by a rational polyphase filter (the same start time)."""
    if abs(rate - target) <= _RATE_TOLERANCE * target:
        return x
    frac = Fraction(target / rate).limit_denominator(1000)
    if abs(frac.numerator / frac.denominator * rate - target) > _RATE_TOLERANCE * target:
        # no small ratio: linear interpolation onto the output grid (the band is far below both Nyquists)
        n_out = int(math.floor((len(x) - 1) * target / rate)) + 1
        return np.interp(np.arange(n_out) * (rate / target), np.arange(len(x)), x)
    from scipy.signal import resample_poly

    return resample_poly(x, frac.numerator, frac.denominator)


def _seconds(a, b) -> float:
    """``a - b`` in seconds for ObsPy UTCDateTime values."""
    return float(a - b)


def preprocess_trace(trace, origin, config: PreprocessConfig = PreprocessConfig(), *,
                     file: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The signal and noise windows of one trace (the chain of the module docstring).

    Args:
        trace: an ``obspy.Trace`` (merged: one segment).
        origin: the event's origin time (``obspy.UTCDateTime`` or what it parses).
        config: the chain's parameters.
        file: the trace's file, named in :class:`SkipTrace` messages.

    Returns:
        ``(signal (config.n_samples,), noise (config.n_noise,))`` float32; the signal z-scored when
        ``config.normalize == "std"``, the noise in filtered counts.

    Raises:
        SkipTrace: the trace is left out (``reason``, ``kind``: rate, empty, not finite, truncated, flat).
    """
    from obspy import UTCDateTime

    origin = UTCDateTime(origin)
    rate = float(trace.stats.sampling_rate)
    if rate < config.min_rate * (1 - _RATE_TOLERANCE):
        raise SkipTrace(f"rate below {config.min_rate:g} Hz", "rate", file)
    data = trace.data
    n = len(data)
    if n == 0:
        raise SkipTrace("empty trace (0 samples)", "empty", file)
    if np.ma.isMaskedArray(data):
        raise SkipTrace("masked samples (unmerged gaps)", "gap", file)
    # output-grid bookkeeping: the span starts at a raw sample; output sample k lies at span start + k / config.rate
    t0 = _seconds(trace.stats.starttime, origin)  # first sample, seconds after origin
    w0, w1 = config.window
    n0, n1 = config.noise_window if config.n_noise else (w0, w0)
    need0, need1 = min(w0, n0), max(w1, n1)
    span0 = need0 - config.margin
    step = _grid_step(rate, config.rate)  # raw samples per whole output period: the span starts on the output grid
    i0 = max(0, int(math.floor((span0 - t0) * rate / step)) * step)
    i1 = min(n, int(math.ceil((need1 - t0) * rate)) + 1)  # no margin after: every file ends as the PNW files do
    t_end = t0 + n / rate  # end of the last sample's interval
    for (a, b), what in (((w0, w1), "the signal window"), ((n0, n1), "the noise window")):
        if b <= a:
            continue
        covered = max(0.0, min(t_end, b) - max(t0, a))
        if covered < (b - a) - 0.5 / config.rate:
            raise SkipTrace(f"truncated: covers {covered:.2f} of {b - a:g} s of {what} "
                            f"[{a:g}, {b:g}) s from origin", "truncated", file)
    span = np.asarray(data[i0:i1], dtype=np.float64)
    if not np.isfinite(span).all():
        bad = int((~np.isfinite(span)).sum())
        raise SkipTrace(f"NaN/inf samples ({bad} of {len(span)} in the analysis span)", "not finite", file)
    s0 = max(0, int(math.floor((w0 - t0) * rate)))
    s1 = min(n, int(math.ceil((w1 - t0) * rate)))
    raw = data[s0:s1]
    if len(raw) == 0 or raw.min() == raw.max():
        raise SkipTrace("flat line: constant over the signal window", "flat", file)
    y = _resample(filter_array(span, rate, config), rate, config.rate)
    start = t0 + i0 / rate  # time of y[0]
    k0 = int(round((w0 - start) * config.rate))
    L = config.n_samples
    if k0 < 0 or k0 + L > len(y):
        raise SkipTrace(f"truncated: the resampled trace holds {len(y)} samples from {start:.2f} s, the signal "
                        f"window needs {L} from {w0:g} s", "truncated", file)
    signal = y[k0:k0 + L]
    Ln = config.n_noise
    if Ln:
        kn = int(round((n0 - start) * config.rate))
        kn = min(max(kn, 0), len(y) - Ln)
        noise = y[kn:kn + Ln]
    else:
        noise = y[:0]
    if config.normalize == "std":
        sd = float(signal.std())
        if not (sd > 0 and math.isfinite(sd)) or sd < 1e-12 * float(np.abs(signal).max() or 1.0):
            raise SkipTrace(f"flat line: the filtered signal window's standard deviation is {sd:.3g}", "flat", file)
        signal = (signal - signal.mean()) / sd
    return signal.astype(np.float32), noise.astype(np.float32)


@dataclass(frozen=True, eq=False)
class TraceSet:
    """Preprocessed traces with their metadata and the report of those left out.

    Shape:
        x: ``(N, C, L)`` float32 signal windows (C = 1 vertical; 3 = ZNE for IPOC).
        noise: ``(N, C, Ln)`` float32 noise windows (filtered counts; never a model input).

    Attributes:
        meta: N rows: file, event_id, station (NET.STA), channel, trace_id, sampling_rate (the original),
            label (``""`` unlabelled), y (class index, -1 unlabelled), origin_time (ISO), depth_km (NaN if unknown;
            never a model input), source (``"labelled"``/``"unreviewed"``), and the frame's other columns.
        report: one row per trace left out: file, trace_id, event_id, source, reason, kind (:data:`SKIP_KINDS`).
        config: the chain's parameters.
        classes: the class names ``y`` indexes.
    """

    x: np.ndarray
    noise: np.ndarray
    meta: Any
    report: Any
    config: PreprocessConfig
    classes: tuple[str, ...] = ("earthquake", "explosion")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def y(self) -> np.ndarray:
        """``(N,)`` int64 class indices (-1 unlabelled)."""
        return self.meta["y"].to_numpy(dtype=np.int64)

    @property
    def event_ids(self) -> np.ndarray:
        """``(N,)`` the event of each trace (the grouping key)."""
        return self.meta["event_id"].to_numpy()

    def subset(self, idx) -> TraceSet:
        """The traces at ``idx`` (indices or a boolean mask of length N); the report is kept."""
        idx = np.asarray(idx)
        if idx.dtype == bool and idx.shape != (len(self),):
            raise DataError(f"a boolean mask over a TraceSet of {len(self)} traces has shape {idx.shape}")
        return replace(self, x=self.x[idx], noise=self.noise[idx], meta=self.meta.iloc[idx].reset_index(drop=True))

    def reason_counts(self, *, detail: bool = False):
        """Traces left out per reason kind (:data:`SKIP_KINDS`; ``detail=True``: per full reason), most first."""
        import pandas as pd

        if not len(self.report):
            return pd.Series(dtype=np.int64, name="count")
        return self.report["reason" if detail else "kind"].value_counts()

    def summary(self) -> str:
        """One line: traces kept (by source and label) and left out (by reason kind)."""
        kept = ", ".join(f"{k}: {v}" for k, v in self.meta.groupby(["source", "label"]).size().items())
        skipped = ", ".join(f"{k} {v}" for k, v in self.reason_counts().items())
        return f"{len(self)} traces kept ({kept}); {len(self.report)} skipped ({skipped or 'none'})"

    def save_npz(self, path: str | os.PathLike) -> Path:
        """Write the set to an uncompressed NPZ atomically: arrays, the frames column by column, the config as JSON
        (no pickled objects)."""
        from robustlab.common.io import atomic_write

        arrays = {"x": self.x, "noise": self.noise}
        header = {"version": _CACHE_VERSION, "config": self.config.to_dict(), "classes": list(self.classes),
                  "meta": _pack_frame(self.meta, "meta", arrays), "report": _pack_frame(self.report, "report", arrays)}
        arrays["header"] = np.array(json.dumps(header))
        return atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> TraceSet:
        """Read a set written by :meth:`save_npz`.

        Raises:
            DataError: the file is missing, not such an NPZ archive, of another version, or inconsistent.
        """
        from robustlab.common.io import read_npz

        d = read_npz(path, required=("x", "noise", "header"), what="trace set")
        try:
            header = json.loads(str(d["header"]))
        except ValueError as e:
            raise DataError(f"trace set {path}: its 'header' field is not JSON: {e}") from None
        if header.get("version") != _CACHE_VERSION:
            raise DataError(f"trace set {path} is of version {header.get('version')}, expected {_CACHE_VERSION}")
        try:
            meta = _unpack_frame(header["meta"], "meta", d)
            report = _unpack_frame(header["report"], "report", d)
            config = PreprocessConfig.from_dict(header["config"])
        except (KeyError, ConfigError) as e:
            raise DataError(f"trace set {path}: its header lacks or garbles {e}") from None
        if not (len(d["x"]) == len(d["noise"]) == len(meta)):
            raise DataError(f"trace set {path}: x, noise and meta have different lengths "
                            f"({len(d['x'])}, {len(d['noise'])}, {len(meta)})")
        return cls(x=d["x"], noise=d["noise"], meta=meta, report=report, config=config,
                   classes=tuple(header["classes"]))


def _pack_frame(frame, prefix: str, arrays: dict) -> list[list[str]]:
    """Store each column of ``frame`` as an array ``prefix/column`` (strings as unicode); returns [name, kind]."""
    cols = []
    for c in frame.columns:
        s = frame[c]
        if s.dtype.kind in "biuf":
            arrays[f"{prefix}/{c}"] = s.to_numpy()
            cols.append([c, "num"])
        else:
            arrays[f"{prefix}/{c}"] = s.astype(str).to_numpy(dtype=str) if len(s) else np.zeros(0, dtype="<U1")
            cols.append([c, "str"])
    return cols


def _unpack_frame(cols, prefix: str, d: dict):
    import pandas as pd

    return pd.DataFrame({c: (d[f"{prefix}/{c}"] if kind == "num" else d[f"{prefix}/{c}"].astype(object))
                         for c, kind in cols}, columns=[c for c, _ in cols])


_REPORT_COLUMNS = ("file", "trace_id", "event_id", "source", "reason", "kind")


def preprocess_files(frame, root: str | os.PathLike, config: PreprocessConfig = PreprocessConfig(), *,
                     classes: tuple[str, ...] = ("earthquake", "explosion"), progress: bool = False) -> TraceSet:
    """Read and preprocess one trace per row of ``frame`` (no cache; see ``robustlab.seismic.data.pnw.load_pnw``).

    Args:
        frame: rows with ``file`` (relative to ``root``), ``trace_id`` (empty/NaN: the file's first), ``origin_time``,
            ``event_id``, and optionally ``label`` (a name of ``classes`` or ``""``), ``source``, ``depth_km`` and
            more (carried into ``meta``).
        root: the folder the files are relative to.
        config: the chain's parameters.
        classes: the names that ``label`` takes (``y`` indexes them).
        progress: show a progress bar.

    Returns:
        A :class:`TraceSet` in the frame's order, with every row left out in ``report`` (never silently).

    Raises:
        DataError: the frame lacks a column, or a label is not one of ``classes`` (naming the file).
    """
    import pandas as pd

    from robustlab.common.progress import progress as progress_bar
    from robustlab.seismic.data.traces import read_trace

    missing = [c for c in ("file", "origin_time", "event_id") if c not in frame.columns]
    if missing:
        raise DataError(f"preprocess_files: the frame lacks the column(s) {', '.join(missing)} (it has "
                        f"{', '.join(map(str, frame.columns))})")
    root = Path(root)
    classes = tuple(classes)
    rows = frame.reset_index(drop=True)
    labels = rows["label"].fillna("").astype(str) if "label" in rows else pd.Series([""] * len(rows))
    unknown = sorted(set(labels) - set(classes) - {""})
    if unknown:
        bad = rows.loc[labels.isin(unknown), "file"].iloc[0]
        raise DataError(f"unknown label(s) {', '.join(map(repr, unknown))} (first in {bad}); expected one of "
                        f"{', '.join(classes)} or '' (unlabelled)")
    trace_ids = rows["trace_id"] if "trace_id" in rows else pd.Series([None] * len(rows))
    sources = rows["source"].astype(str) if "source" in rows else pd.Series(["labelled"] * len(rows))
    L, Ln = config.n_samples, config.n_noise
    x = np.empty((len(rows), 1, L), dtype=np.float32)
    noise = np.empty((len(rows), 1, Ln), dtype=np.float32)
    keep, info, report = [], [], []
    with progress_bar(total=len(rows), desc="seismic traces", unit="trace", enabled=progress, leave=False) as bar:
        for i, (file, tid, origin, event) in enumerate(zip(rows["file"], trace_ids, rows["origin_time"],
                                                           rows["event_id"])):
            tid = None if tid is None or (isinstance(tid, float) and math.isnan(tid)) or tid == "" else str(tid)
            try:
                tr = read_trace(root / file, tid, max_gap=config.max_gap)
                x[i, 0], noise[i, 0] = preprocess_trace(tr, origin, config, file=file)
                keep.append(i)
                info.append((tr.id, f"{tr.stats.network}.{tr.stats.station}", tr.stats.channel,
                             float(tr.stats.sampling_rate)))
            except SkipTrace as e:
                report.append((str(file), tid or "", str(event), sources[i], e.reason, e.kind))
            bar.update(1)
    meta = rows.iloc[keep].reset_index(drop=True).copy()
    meta["label"] = labels.iloc[keep].to_numpy()
    if info:
        meta["trace_id"], meta["station"], meta["channel"], meta["sampling_rate"] = (list(c) for c in zip(*info))
    else:
        for c in ("trace_id", "station", "channel"):
            meta[c] = pd.Series(dtype=object)
        meta["sampling_rate"] = pd.Series(dtype=np.float64)
    meta["y"] = np.array([classes.index(v) if v else -1 for v in meta["label"]], dtype=np.int64)
    meta["source"] = sources.iloc[keep].to_numpy() if len(keep) else pd.Series(dtype=object)
    meta["origin_time"] = meta["origin_time"].astype(str)
    meta["event_id"] = meta["event_id"].astype(str)
    if "depth_km" not in meta:
        meta["depth_km"] = np.nan
    meta["depth_km"] = meta["depth_km"].astype(np.float64)
    for c in meta.columns:  # text columns: "" where missing (as the cache stores them)
        if meta[c].dtype.kind not in "biuf":
            meta[c] = meta[c].fillna("").astype(str)
    first = ["file", "event_id", "station", "channel", "trace_id", "sampling_rate", "label", "y", "origin_time",
             "depth_km", "source"]
    meta = meta[first + [c for c in meta.columns if c not in first]]
    return TraceSet(x=x[keep], noise=noise[keep], meta=meta,
                    report=pd.DataFrame(report, columns=list(_REPORT_COLUMNS)), config=config, classes=classes)
