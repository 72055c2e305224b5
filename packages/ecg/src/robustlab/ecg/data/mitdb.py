"""MIT-BIH Arrhythmia Database beats: R-peak-centred windows, AAMI EC57 classes, the de Chazal split, RR features.

Each annotated beat becomes a window of lead MLII (chosen by name: record 114 has it as its second signal) from
``before`` samples before the annotated R peak to ``after`` samples from it on, cut from the whole record after
:func:`robustlab.ecg.preprocessing.remove_baseline`. The beat symbols map to the AAMI EC57 classes N, S, V, F, Q
(:data:`AAMI_SYMBOLS`); the inter-patient split DS1/DS2 is de Chazal et al.'s, without the paced records.
Nothing is dropped silently: the :class:`BeatSet` report counts, per record, the beats read, kept and dropped
(window past the record's edges, invalid samples) and the non-beat annotations by symbol.

Reference:
    de Chazal, O'Dwyer & Reilly (2004), Automatic classification of heartbeats using ECG morphology and heartbeat
    interval features, IEEE TBME 51(7). ANSI/AAMI EC57:2012. Mondéjar-Guerra et al. (2019), Heartbeat
    classification fusing temporal and morphological information of ECGs via ensemble of classifiers, BSPC 47.
    Moody & Mark (2001), The impact of the MIT-BIH Arrhythmia Database, IEEE EMBM 20(3).

Importing this module loads NumPy only; wfdb and torch load when records are read.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from robustlab.common.errors import DataError, DownloadError
from robustlab.ecg.data.records import (
    alignment_ratio,
    cut_windows,
    read_annotations,
    read_header,
    read_record,
)
from robustlab.ecg.data.records import check_alignment as _check_alignment

__all__ = [
    "AAMI_CLASSES",
    "AAMI_SYMBOLS",
    "AFTER",
    "BEFORE",
    "ENV_VAR",
    "beat_windows",
    "DS1",
    "DS2",
    "FS",
    "PACED",
    "RECORDS",
    "RR_FEATURES",
    "SYMBOL_TO_CLASS",
    "BeatSet",
    "extract_beats",
    "load_beats",
    "mitdb_path",
    "rr_features",
    "split_records",
]

AAMI_CLASSES = ("N", "S", "V", "F", "Q")
AAMI_SYMBOLS = {"N": ("N", "L", "R", "e", "j"), "S": ("A", "a", "J", "S"), "V": ("V", "E"), "F": ("F",),
                "Q": ("/", "f", "Q")}
"""The MIT-BIH beat symbols of each AAMI EC57 class; every other annotation symbol is a non-beat annotation."""
SYMBOL_TO_CLASS = {s: c for c, symbols in AAMI_SYMBOLS.items() for s in symbols}
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201", "203", "205",
       "207", "208", "209", "215", "220", "223", "230")
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213", "214", "219",
       "221", "222", "228", "231", "232", "233", "234")
PACED = ("102", "104", "107", "217")
RECORDS = tuple(sorted(DS1 + DS2 + PACED))
FS = 360
ENV_VAR = "ROBUSTLAB_MITDB"
"""Names a local copy of the MIT-BIH Arrhythmia Database that :func:`mitdb_path` reads instead of the cache."""
BEFORE = 360
AFTER = 360
RR_FEATURES = ("pre_rr", "post_rr", "local_rr", "record_rr", "pre_ratio", "post_ratio", "local_ratio",
               "post_pre_ratio")
_LOCAL_BEATS = 10
_CACHE_VERSION = 1
_EXTENSIONS = ("hea", "dat", "atr")
_SYMBOLS_SORTED = np.array(sorted(SYMBOL_TO_CLASS))  # a vectorised symbol -> class lookup (searchsorted)
_SYMBOL_CLASS = np.array([AAMI_CLASSES.index(SYMBOL_TO_CLASS[s]) for s in _SYMBOLS_SORTED], dtype=np.int64)


def split_records(split: str | Sequence[str]) -> tuple[str, ...]:
    """The records of ``"DS1"``, ``"DS2"``, ``"all"`` (DS1 + DS2: the 44 records without a pacemaker, sorted)
    or a list of record names (checked against :data:`RECORDS`).

    Raises:
        DataError: an unknown split name or record name.
    """
    if isinstance(split, str):
        named = {"DS1": DS1, "DS2": DS2, "all": tuple(sorted(DS1 + DS2))}
        if split not in named:
            raise DataError(f"unknown MIT-BIH split {split!r}; expected 'DS1', 'DS2', 'all' or a list of records")
        return named[split]
    records = tuple(str(r) for r in split)
    unknown = [r for r in records if r not in RECORDS]
    if unknown:
        raise DataError(f"unknown MIT-BIH record(s) {', '.join(unknown)}; the records are {', '.join(RECORDS)}")
    if not records:
        raise DataError("no MIT-BIH record given")
    return records


def _missing_files(folder: Path, records: Sequence[str]) -> list[str]:
    return [f"{r}.{ext}" for r in records for ext in _EXTENSIONS if not (folder / f"{r}.{ext}").is_file()]


def mitdb_path(root: str | os.PathLike | None = None, *, records: Sequence[str] = RECORDS, download: bool = True,
               progress: bool = True) -> Path:
    """The folder of the MIT-BIH records, downloaded from PhysioNet into the cache when they are missing there.

    Args:
        root: a folder holding the records (``NNN.hea/.dat/.atr``); checked, never downloaded into. None: the
            folder named by ``$ROBUSTLAB_MITDB`` (:data:`ENV_VAR`) when set (a local copy), else the cache folder
            ``robustlab.common.data.data_dir("ecg", "mitdb")``.
        records: the records that must be there.
        download: fetch the missing records of the cache folder with ``wfdb.dl_database("mitdb", ...)``; they are
            downloaded into a temporary folder beside it, checked (:func:`read_record`, :func:`read_annotations`)
            and only then moved into place, so an interrupted download leaves no partial record.
        progress: let WFDB report the files it fetches.

    Returns:
        The folder.

    Raises:
        DataError: ``root`` lacks files (named), or the cache lacks them and ``download`` is False.
        DownloadError: the download failed or the files fetched do not read.
    """
    from robustlab.common.data import data_dir

    records = tuple(records)
    if root is None and os.environ.get(ENV_VAR):
        root = os.environ[ENV_VAR]
    if root is not None:
        root = Path(root)
        missing = _missing_files(root, records)
        if missing:
            raise DataError(f"MIT-BIH folder {root} lacks {len(missing)} file(s): {', '.join(missing[:6])}"
                            f"{' ...' if len(missing) > 6 else ''}; expected the records {', '.join(records)}")
        return root
    folder = data_dir("ecg", "mitdb")
    missing = _missing_files(folder, records)
    if not missing:
        return folder
    todo = sorted({m.split(".")[0] for m in missing})
    if not download:
        raise DataError(f"the MIT-BIH cache {folder} lacks {len(missing)} file(s) of the records "
                        f"{', '.join(todo)}; call with download=True or pass root= a folder holding them")
    _download_mitdb(folder, todo, progress=progress)
    missing = _missing_files(folder, records)
    if missing:
        raise DownloadError(f"after downloading MIT-BIH into {folder}, {', '.join(missing[:6])} are still missing")
    return folder


def _download_mitdb(folder: Path, records: list[str], *, progress: bool) -> None:
    """``wfdb.dl_database`` into a temporary folder beside ``folder``, check each record, then move it in."""
    import logging

    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".mitdb-download-", dir=folder))
    level = logging.getLogger("wfdb").level
    try:
        if not progress:
            logging.getLogger("wfdb").setLevel(logging.WARNING)
        try:
            wfdb.dl_database("mitdb", str(tmp), records=list(records), annotators=["atr"])
        except Exception as e:
            raise DownloadError(f"downloading the MIT-BIH records {', '.join(records)} from PhysioNet into "
                                f"{folder} failed: {type(e).__name__}: {e}") from e
        for r in records:
            try:
                read_record(tmp / r)
                read_annotations(tmp / r)
            except DataError as e:
                raise DownloadError(f"the MIT-BIH record {r} downloaded from PhysioNet does not read: {e}") from e
        for r in records:  # .dat and .atr before .hea: a record counts as present once all three are
            for ext in ("dat", "atr", "hea"):
                os.replace(tmp / f"{r}.{ext}", folder / f"{r}.{ext}")
    finally:
        logging.getLogger("wfdb").setLevel(level)
        shutil.rmtree(tmp, ignore_errors=True)


def rr_features(sample: np.ndarray, fs: float) -> np.ndarray:
    """The RR features (:data:`RR_FEATURES`) of each beat from the sorted positions of all beats of a record.

    ``pre_rr``/``post_rr``: seconds to the previous/next beat (the first beat takes its ``post_rr`` as
    ``pre_rr``, the last its ``pre_rr`` as ``post_rr``); ``local_rr``: mean of the (up to) 10 RR intervals that end at or
    before the beat (fewer at the start; the first beat takes its ``pre_rr``); ``record_rr``: mean RR
    interval of the record; ratios: ``pre_rr / record_rr``, ``post_rr / record_rr``, ``local_rr / record_rr``,
    ``post_rr / pre_rr`` (Mondéjar-Guerra et al. 2019).

    Args:
        sample: ``(M,)`` sorted beat positions, ``M >= 2``.
        fs: sampling frequency (Hz).

    Returns:
        ``(M, 8)`` float32.
    """
    s = np.asarray(sample, dtype=np.float64)
    if len(s) < 2:
        raise ValueError(f"RR features need at least 2 beats, got {len(s)}")
    rr = np.diff(s) / fs
    pre = np.concatenate([rr[:1], rr])
    post = np.concatenate([rr, rr[-1:]])
    c = np.concatenate([[0.0], np.cumsum(rr)])  # interval k ends at beat k + 1
    end = np.maximum(np.arange(len(s)), 1)  # beat 0 has no interval before it: its first one stands in
    lo = np.maximum(0, end - _LOCAL_BEATS)
    local = (c[end] - c[lo]) / (end - lo)
    record = np.full_like(pre, rr.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.stack([pre, post, local, record, pre / record, post / record, local / record, post / pre], axis=1)
    return out.astype(np.float32)


@dataclass(frozen=True, eq=False)
class BeatSet:
    """Beat windows with their AAMI class, RR features and provenance.

    Shape:
        x: ``(N, before + after)`` float32 mV, baseline removed; ``x[:, before]`` is the annotated R sample.
        y: ``(N,)`` int64 index into ``classes``; rr: ``(N, 8)`` float32 (:data:`RR_FEATURES`);
        record, symbol: ``(N,)`` str; sample: ``(N,)`` int64 (the R sample in its record).

    Attributes:
        classes: the class names ``y`` indexes (:data:`AAMI_CLASSES`, or those kept by :meth:`only`).
        report: per record (``report["records"][name]``): ``beats`` (beat annotations read), ``kept``,
            ``dropped`` (``{"edge": n, "invalid_samples": n}``), ``non_beat`` (``{symbol: n}``), ``alignment``
            (:func:`~robustlab.ecg.data.records.alignment_ratio`); ``only`` after :meth:`only`.
    """

    x: np.ndarray
    y: np.ndarray
    rr: np.ndarray
    record: np.ndarray
    sample: np.ndarray
    symbol: np.ndarray
    fs: float = FS
    before: int = BEFORE
    after: int = AFTER
    lead: str = "MLII"
    classes: tuple[str, ...] = AAMI_CLASSES
    report: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def r_index(self) -> int:
        """The index of the annotated R sample in each window (``before``)."""
        return self.before

    def counts(self) -> dict[str, int]:
        """The number of beats of each class, in the order of ``classes``."""
        n = np.bincount(self.y, minlength=len(self.classes))
        return {c: int(k) for c, k in zip(self.classes, n)}

    def subset(self, idx) -> BeatSet:
        """The beats at ``idx`` (indices or a boolean mask); the report is kept, with ``subset`` counts added."""
        idx = np.asarray(idx)
        report = {**self.report, "subset": {"from": len(self), "kept": int(idx.sum() if idx.dtype == bool
                                                                              else len(idx))}}
        return replace(self, x=self.x[idx], y=self.y[idx], rr=self.rr[idx], record=self.record[idx],
                       sample=self.sample[idx], symbol=self.symbol[idx], report=report)

    def only(self, classes: Sequence[str] = ("N", "S", "V", "F")) -> BeatSet:
        """The beats of ``classes``, with ``y`` re-indexed into that tuple; the dropped are counted by class in
        ``report["only"]``.

        Raises:
            DataError: a class is not one of ``self.classes``.
        """
        classes = tuple(classes)
        unknown = [c for c in classes if c not in self.classes]
        if unknown:
            raise DataError(f"unknown beat class(es) {', '.join(unknown)}; this set has {', '.join(self.classes)}")
        old = np.array([self.classes.index(c) for c in classes])
        keep = np.isin(self.y, old)
        lookup = np.full(len(self.classes), -1, dtype=np.int64)
        lookup[old] = np.arange(len(classes))
        dropped = {c: n for c, n in self.counts().items() if c not in classes}
        out = self.subset(np.flatnonzero(keep))
        report = {k: v for k, v in out.report.items() if k != "subset"}
        report["only"] = {"classes": list(classes), "dropped": dropped}
        return replace(out, y=lookup[out.y], classes=classes, report=report)

    def save_npz(self, path: str | os.PathLike) -> Path:
        """Write the set to an uncompressed NPZ file atomically (no pickled objects)."""
        from robustlab.common.io import atomic_write

        meta = {"fs": self.fs, "before": self.before, "after": self.after, "lead": self.lead,
                "classes": list(self.classes), "report": self.report, "version": _CACHE_VERSION}
        arrays = {"x": self.x, "y": self.y, "rr": self.rr, "record": self.record, "sample": self.sample,
                  "symbol": self.symbol, "meta": np.array(json.dumps(meta))}
        return atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> BeatSet:
        """Read a set written by :meth:`save_npz`.

        Raises:
            DataError: the file is missing, not such an NPZ archive, or its fields disagree in length.
        """
        from robustlab.common.io import read_npz

        d = read_npz(path, required=("x", "y", "rr", "record", "sample", "symbol", "meta"), what="beat set")
        try:
            meta = json.loads(str(d["meta"]))
        except ValueError as e:
            raise DataError(f"beat set {path}: its 'meta' field is not JSON: {e}") from None
        n = len(d["y"])
        if any(len(d[k]) != n for k in ("x", "rr", "record", "sample", "symbol")):
            raise DataError(f"beat set {path}: its fields have different lengths")
        return cls(x=d["x"], y=d["y"], rr=d["rr"], record=d["record"], sample=d["sample"], symbol=d["symbol"],
                   fs=float(meta["fs"]), before=int(meta["before"]), after=int(meta["after"]), lead=meta["lead"],
                   classes=tuple(meta["classes"]), report=meta["report"])


def beat_windows(signal: np.ndarray, sample: np.ndarray, fs: float, *, before: int, after: int, record: str,
                 baseline: bool = True, baseline_widths_s: tuple[float, ...] = (0.2, 0.6)):
    """The beat windows of one lead: what :func:`extract_beats` and ``ecg predict`` both cut, the same way.

    Invalid (NaN) samples are filled by linear interpolation for filtering, then every window that touches one is
    left out; the baseline is removed on the whole lead (:func:`robustlab.ecg.preprocessing.remove_baseline`); the
    RR features are computed over all beats before any is left out; windows running past the edges are left out.

    Args:
        signal: ``(L,)`` the lead in mV (NaN where invalid).
        sample: ``(M,)`` sorted R-peak positions, ``M >= 2``.
        fs: sampling rate (Hz).
        before, after: samples before the R peak and from it on.
        record: the record's name, for messages.
        baseline: remove the baseline.
        baseline_widths_s: the widths of :class:`~robustlab.ecg.preprocessing.BaselineRemoval`'s averages.

    Returns:
        ``(windows (K, before + after) float32, rr (K, 8), keep (K,) indices into sample, the filtered lead (L,),
        {"edge": n, "invalid_samples": n})``.

    Raises:
        DataError: the lead is shorter than one window or holds no valid sample (naming the record).
    """
    from robustlab.ecg.preprocessing import remove_baseline

    x = np.asarray(signal, dtype=np.float32)
    cut_windows(x, np.zeros(0, dtype=np.int64), before, after, record=record)  # a record shorter than a window
    invalid = np.isnan(x)
    if invalid.any():  # fill for filtering (NaN would spread through the moving averages); such windows are dropped
        good = np.flatnonzero(~invalid)
        if not len(good):
            raise DataError(f"record {record}: the lead holds no valid sample")
        x = np.interp(np.arange(len(x)), good, x[good]).astype(np.float32)
    if baseline:
        x = remove_baseline(x, fs, tuple(baseline_widths_s))
    sample = np.asarray(sample, dtype=np.int64)
    rr = rr_features(sample, fs)  # over all beats, before any is dropped
    windows, kept = cut_windows(x, sample, before, after, record=record)
    bad = np.zeros(len(windows), dtype=bool)
    if invalid.any():
        c = np.concatenate([[0], np.cumsum(invalid)])
        s = sample[kept]
        bad = (c[s + after] - c[s - before]) > 0
    keep = np.flatnonzero(kept)[~bad]
    return (np.ascontiguousarray(windows[~bad]), rr[keep], keep, x,
            {"edge": int((~kept).sum()), "invalid_samples": int(bad.sum())})


def _extract_record(path: Path, *, before: int, after: int, lead: str, baseline: bool, check: bool):
    """The beats of one record: (x, y, rr, sample, symbol, report entry)."""
    name = path.name
    rec = read_record(path, leads=[lead])
    x, _ = rec.lead(lead)
    cut_windows(x, np.zeros(0, dtype=np.int64), before, after, record=name)  # a record shorter than a window
    ann = read_annotations(path)
    if not np.isfinite(x).any():
        raise DataError(f"record {name}: lead {lead} of {rec.path} holds no valid sample")
    is_beat = np.isin(ann.symbol, list(SYMBOL_TO_CLASS))
    sample, symbol = ann.sample[is_beat], ann.symbol[is_beat]
    order = np.argsort(sample, kind="stable")
    sample, symbol = sample[order], symbol[order]
    non_beat = dict(sorted(Counter(ann.symbol[~is_beat].tolist()).items()))
    if len(sample) < 2:
        raise DataError(f"record {name}: annotation file {ann.path} has {len(sample)} beat annotation(s); RR "
                        "features need at least 2")
    windows, rr, keep, filtered, dropped = beat_windows(x, sample, rec.fs, before=before, after=after, record=name,
                                                        baseline=baseline)
    if check:
        ratio = _check_alignment(filtered, sample, rec.fs, record=name, path=ann.path)
    else:
        ratio = alignment_ratio(filtered, sample, rec.fs)
    y = _SYMBOL_CLASS[np.searchsorted(_SYMBOLS_SORTED, symbol[keep])]
    entry = {"beats": int(len(sample)), "kept": int(len(keep)), "dropped": dropped, "non_beat": non_beat,
             "alignment": round(ratio, 3)}
    return windows, y.astype(np.int64), rr, sample[keep], symbol[keep], entry


def extract_beats(root: str | os.PathLike, records: Sequence[str], *, before: int = BEFORE, after: int = AFTER,
                  lead: str = "MLII", baseline: bool = True, check_alignment: bool = True,
                  progress: bool = False) -> BeatSet:
    """Cut the beat windows of ``records`` (no cache; see :func:`load_beats`).

    Per record: read ``lead`` only (by name), fill invalid (NaN) samples by interpolation for filtering, remove the
    baseline on the whole record (``remove_baseline``), take the beat annotations (symbols of
    :data:`AAMI_SYMBOLS`), compute their RR features over all of them, then cut the windows; a window running
    past the record's edges or over an invalid sample is dropped and counted.

    Args:
        root: the folder of the records.
        records: record names.
        before: samples before the R peak.
        after: samples from the R peak on.
        lead: the lead, by name.
        baseline: remove the baseline (False keeps the raw signal).
        check_alignment: check that the beat labels sit on QRS complexes
            (:func:`~robustlab.ecg.data.records.check_alignment`).
        progress: show a progress bar over the records.

    Returns:
        A :class:`BeatSet` in record order, then time order.

    Raises:
        DataError: a record's files are missing or disagree (see :func:`read_record`, :func:`read_annotations`),
            it has no lead ``lead`` (the leads present are listed), it is shorter than one window, its
            annotations are another record's. The message names the record.
    """
    from robustlab.common.progress import progress as progress_bar

    root = Path(root)
    records = [str(r) for r in records]
    if not records:
        raise DataError("extract_beats needs at least one record")
    parts = []
    report: dict = {"records": {}, "lead": lead, "before": before, "after": after, "baseline": baseline}
    fs = None
    with progress_bar(total=len(records), desc="MIT-BIH beats", enabled=progress, leave=False) as bar:
        for name in records:
            header = read_header(root / name)
            if fs is None:
                fs = float(header.fs)
            elif not np.isclose(header.fs, fs):
                raise DataError(f"record {name} is at {header.fs} Hz, the records before it at {fs} Hz")
            *arrays, entry = _extract_record(root / name, before=before, after=after, lead=lead,
                                             baseline=baseline, check=check_alignment)
            parts.append(arrays)
            report["records"][name] = entry
            bar.update(1)
    x, y, rr, sample, symbol = (np.concatenate(a) for a in zip(*parts))
    record = np.repeat(np.array(records), [len(p[1]) for p in parts])
    report["totals"] = {
        "beats": sum(e["beats"] for e in report["records"].values()),
        "kept": len(y),
        "dropped": {k: sum(e["dropped"][k] for e in report["records"].values()) for k in ("edge", "invalid_samples")},
        "non_beat": sum(sum(e["non_beat"].values()) for e in report["records"].values()),
    }
    return BeatSet(x=np.ascontiguousarray(x, dtype=np.float32), y=y, rr=rr, record=record,
                   sample=sample.astype(np.int64), symbol=symbol.astype("<U1"), fs=fs, before=before, after=after,
                   lead=lead, classes=AAMI_CLASSES, report=report)


def _cache_key(root: Path, records: Sequence[str], params: dict) -> str:
    from robustlab.common.data.cache import fingerprint  # lazily: importing this module loads NumPy only

    return fingerprint(root, [f"{r}.{ext}" for r in records for ext in _EXTENSIONS], version=_CACHE_VERSION,
                       records=list(records), params=params)


def load_beats(split: str | Sequence[str] = "DS1", *, root: str | os.PathLike | None = None, before: int = BEFORE,
               after: int = AFTER, lead: str = "MLII", baseline: bool = True, cache: bool = True,
               cache_dir: str | os.PathLike | None = None, download: bool = True,
               progress: bool = False) -> BeatSet:
    """The beats of a split, from the cache when it holds them, else extracted (:func:`extract_beats`) and cached.

    The cache is an uncompressed NPZ file (:meth:`BeatSet.save_npz`, written atomically) named by a hash of the
    records, the parameters and each record file's size and modification time: a changed parameter or file misses
    it. A cache file that does not read is warned about and rebuilt.

    Args:
        split: ``"DS1"``, ``"DS2"``, ``"all"`` (DS1 + DS2) or a list of record names (see :func:`split_records`).
        root: the records' folder; None: the download cache (:func:`mitdb_path`).
        before, after, lead, baseline: as in :func:`extract_beats`.
        cache: read and write the cache.
        cache_dir: the cache folder; default ``data_dir("ecg", "beats")``.
        download: download missing records into the default ``root`` (:func:`mitdb_path`).
        progress: show progress.

    Returns:
        A :class:`BeatSet` (all five AAMI classes; see :meth:`BeatSet.only`).

    Raises:
        DataError: see :func:`split_records`, :func:`mitdb_path`, :func:`extract_beats`.
    """
    from robustlab.common.data import data_dir

    records = split_records(split)
    root = mitdb_path(root, records=records, download=download, progress=progress)
    params = {"before": int(before), "after": int(after), "lead": lead, "baseline": bool(baseline)}
    path = None
    if cache:
        label = split if isinstance(split, str) else f"{len(records)}records"
        path = Path(cache_dir) if cache_dir is not None else data_dir("ecg", "beats")
        path = path / f"mitdb-{label}-{_cache_key(root, records, params)}.npz"
    from robustlab.common.data.cache import load_or_build

    return load_or_build(path, load=BeatSet.load_npz, build=lambda: extract_beats(root, records, progress=progress,
                                                                                    **params),
                         save=lambda beats, p: beats.save_npz(p), what="beat set")
