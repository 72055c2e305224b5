"""WFDB records and annotations (``wfdb.rdrecord``, ``wfdb.rdann``) with the checks that name the record at fault.

The readers are separate from the training sets built on them (:mod:`robustlab.ecg.data.mitdb`,
:mod:`robustlab.ecg.data.cinc2021`). Before WFDB reads a signal file, :func:`read_record` checks that each
signal file exists and that its size agrees with the header (a truncated ``.dat`` would otherwise be read as
garbage or fail deep inside NumPy); :func:`read_annotations` checks that the annotation file belongs to the
record (WFDB's record name, the samples fall inside the record, the sampling frequency agrees), and
:func:`check_alignment` that its beat labels sit on QRS complexes of the signal (an annotation file copied from
another record of the same length passes the other checks). Every failure is a
:class:`~robustlab.common.errors.DataError` naming the record and the file.

Importing this module loads NumPy only; ``wfdb`` loads when a record is read.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robustlab.common.errors import DataError

__all__ = [
    "ALIGNMENT_MIN_RATIO",
    "Annotations",
    "Record",
    "alignment_ratio",
    "check_alignment",
    "cut_windows",
    "find_records",
    "read_annotations",
    "read_header",
    "read_record",
    "record_base",
]

# Bits per sample of the WFDB storage formats whose size follows from the sample count (FLAC formats 508/516/524
# are compressed: their size is not checked).
_FORMAT_BITS = {"8": 8, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16, "212": 12, "310": 32 / 3,
                "311": 32 / 3}
ALIGNMENT_MIN_RATIO = 1.8
"""Lowest accepted :func:`alignment_ratio`. On the 48 MIT-BIH records (lead 0, baseline removed) their own
annotations score 2.7 (record 107) to 30; another record's annotations score at most 1.33."""


@dataclass(frozen=True, eq=False)
class Record:
    """A WFDB record's signals in physical units.

    Attributes:
        name: the record name (``"100"``).
        path: the header file.
        fs: sampling frequency (Hz).
        signal: ``(L, C)`` float32 in the units of ``units`` (mV for ECG); WFDB's invalid samples are NaN.
        leads: the ``C`` signal names, in column order.
        units: the ``C`` physical units.
        comments: the header's comment lines (without ``#``).
    """

    name: str
    path: Path
    fs: float
    signal: np.ndarray
    leads: tuple[str, ...]
    units: tuple[str, ...]
    comments: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.signal)

    def lead(self, name: str, fallback: tuple[str, ...] | list[str] = ()) -> tuple[np.ndarray, str]:
        """The signal of the lead called ``name`` (chosen by name, not position), or of the first fallback present.

        Args:
            name: the lead wanted (``"MLII"``).
            fallback: leads to use, in this order, when ``name`` is absent.

        Returns:
            ``(signal (L,) float32, the name of the lead used)``.

        Raises:
            DataError: none of the names is a lead of the record; the message lists the leads present.
        """
        for candidate in (name, *fallback):
            if candidate in self.leads:
                return self.signal[:, self.leads.index(candidate)], candidate
        wanted = " or ".join(repr(n) for n in (name, *fallback))
        raise DataError(f"record {self.name} ({self.path}) has no lead {wanted}; its leads are "
                        f"{', '.join(self.leads)}")


@dataclass(frozen=True, eq=False)
class Annotations:
    """A WFDB annotation file.

    Attributes:
        record: the record name.
        path: the annotation file.
        fs: sampling frequency of ``sample`` (Hz).
        sample: ``(M,)`` int64 annotation positions (samples from the record's start).
        symbol: ``(M,)`` str annotation symbols (``"N"``, ``"V"``, ``"+"``, ...).
        aux: the ``M`` auxiliary notes (``"(AFIB"`` for rhythm changes, ``""`` for most).
    """

    record: str
    path: Path
    fs: float
    sample: np.ndarray
    symbol: np.ndarray
    aux: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sample)


def record_base(path: str | os.PathLike) -> Path:
    """The WFDB record path without extension: ``folder/100`` for ``folder/100``, ``folder/100.hea`` or ``.dat``."""
    path = Path(path)
    if path.suffix in (".hea", ".dat", ".mat", ".atr"):
        path = path.with_suffix("")
    return path


def find_records(folder: str | os.PathLike) -> list[Path]:
    """The header files (``*.hea``) in ``folder`` and its subfolders, sorted by record name then path.

    Raises:
        DataError: ``folder`` is not a folder, or holds no header file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"record folder {folder} does not exist" + (" (it is a file)" if folder.exists() else ""))
    found = sorted(folder.rglob("*.hea"), key=lambda p: (p.stem, str(p)))
    if not found:
        raise DataError(f"record folder {folder} holds no WFDB header file (*.hea)")
    return found


def read_header(path: str | os.PathLike):
    """``wfdb.rdheader`` of a record, with a DataError naming the record when the header is missing or malformed."""
    import wfdb

    base = record_base(path)
    header = base.with_suffix(".hea")
    if not header.is_file():
        raise DataError(f"record {base.name}: header file {header} does not exist")
    try:
        return wfdb.rdheader(str(base))
    except Exception as e:  # wfdb raises bare Exception / ValueError on bad headers
        raise DataError(f"record {base.name}: header file {header} cannot be parsed: {type(e).__name__}: {e}") \
            from e


def _check_signal_files(header, base: Path, channels: list[int]) -> None:
    """Each signal file of ``channels`` exists and its size holds exactly the header's ``sig_len`` frames."""
    files: dict[str, list[int]] = {}
    for i, name in enumerate(header.file_name):
        files.setdefault(name, []).append(i)
    wanted = {header.file_name[c] for c in channels}
    for name, sigs in files.items():
        if name not in wanted:
            continue
        path = base.parent / name
        if not path.is_file():
            raise DataError(f"record {base.name}: signal file {path} (named in {base}.hea) does not exist")
        if not header.sig_len:
            continue  # length not stated in the header: nothing to compare
        fmts = [str(header.fmt[i]) for i in sigs]
        if any(f not in _FORMAT_BITS for f in fmts):
            continue
        spf = [int(header.samps_per_frame[i] or 1) for i in sigs]
        frame_bits = sum(_FORMAT_BITS[f] * s for f, s in zip(fmts, spf))
        offset = int(header.byte_offset[sigs[0]] or 0)
        expected = offset + math.ceil(header.sig_len * frame_bits / 8)
        size = path.stat().st_size
        if not expected <= size <= expected + 3:  # formats 212/310/311 may pad the last group
            holds = max(0, int((size - offset) * 8 // frame_bits))
            raise DataError(
                f"record {base.name}: signal file {path} has {size} bytes, which hold {holds} samples per signal; "
                f"its header {base}.hea says {header.sig_len} samples of {len(sigs)} signal(s) in format "
                f"{'/'.join(sorted(set(fmts)))} ({expected} bytes{f' with a {offset}-byte offset' if offset else ''})"
                f": {'truncated' if size < expected else 'longer than its header says'}"
            )


def read_record(path: str | os.PathLike, *, leads: list[str] | tuple[str, ...] | None = None) -> Record:
    """Read a WFDB record (``wfdb.rdrecord``) in physical units, after checking its files.

    Args:
        path: the record (``folder/100``), or its header file.
        leads: the signal names to read, in this order (only their signal files are read); None reads all.

    Returns:
        A :class:`Record`.

    Raises:
        DataError: the header is missing or malformed; a lead is not in the record (the message lists the leads
            present); a signal file is missing; a signal file's size disagrees with the header's sample count
            (truncated or too long); WFDB fails to read it. The message names the record and the file.
    """
    import wfdb

    base = record_base(path)
    header = read_header(base)
    names = list(header.sig_name or [])
    if leads is None:
        channels = list(range(header.n_sig))
    else:
        missing = [n for n in leads if n not in names]
        if missing:
            raise DataError(f"record {base.name} ({base}.hea) has no lead {', '.join(map(repr, missing))}; its "
                            f"leads are {', '.join(names) or 'none'}")
        channels = [names.index(n) for n in leads]
    _check_signal_files(header, base, channels)
    try:
        rec = wfdb.rdrecord(str(base), channels=channels, return_res=32)
    except Exception as e:
        raise DataError(f"record {base.name}: WFDB cannot read {base}: {type(e).__name__}: {e}") from e
    signal = np.asarray(rec.p_signal, dtype=np.float32)
    if signal.ndim != 2 or (header.sig_len and len(signal) != header.sig_len):
        raise DataError(f"record {base.name}: read {signal.shape} samples from {base}, expected "
                        f"({header.sig_len}, {len(channels)}) from its header")
    return Record(name=base.name, path=base.with_suffix(".hea"), fs=float(rec.fs), signal=signal,
                  leads=tuple(rec.sig_name), units=tuple(rec.units), comments=tuple(rec.comments or ()))


def read_annotations(path: str | os.PathLike, extension: str = "atr") -> Annotations:
    """Read a WFDB annotation file (``wfdb.rdann``) and check that it belongs to its record.

    Args:
        path: the record (``folder/100``), its header, or the annotation file itself.
        extension: the annotator (``"atr"``: the reference beat labels of MIT-BIH).

    Returns:
        :class:`Annotations`.

    Raises:
        DataError: the file is missing or unreadable; WFDB's record name differs from the file's; the record's
            header (when present) has another sampling frequency, or fewer samples than the last annotation
            (an annotation file of another, longer record). The message names the record and the file.
    """
    import wfdb

    base = record_base(path)
    file = base.with_suffix(f".{extension}")
    if not file.is_file():
        raise DataError(f"record {base.name}: annotation file {file} does not exist")
    try:
        ann = wfdb.rdann(str(base), extension)
    except Exception as e:
        raise DataError(f"record {base.name}: annotation file {file} cannot be read: {type(e).__name__}: {e}") \
            from e
    if ann.record_name != base.name:
        raise DataError(f"annotation file {file} is for record {ann.record_name!r}, not record {base.name!r}")
    sample = np.asarray(ann.sample, dtype=np.int64)
    fs = float(ann.fs) if ann.fs else float("nan")
    if base.with_suffix(".hea").is_file():
        header = read_header(base)
        if ann.fs and header.fs and not math.isclose(float(ann.fs), float(header.fs)):
            raise DataError(f"record {base.name}: annotation file {file} is at {ann.fs} Hz, its header at "
                            f"{header.fs} Hz")
        fs = float(header.fs)
        if header.sig_len and len(sample) and (sample.max() >= header.sig_len or sample.min() < 0):
            raise DataError(
                f"record {base.name}: annotation file {file} has annotations at samples {sample.min()}..."
                f"{sample.max()}, outside the record's {header.sig_len} samples: is it the annotation file of "
                "another record?")
    return Annotations(record=base.name, path=file, fs=fs, sample=sample,
                       symbol=np.asarray(ann.symbol, dtype="<U2"), aux=list(ann.aux_note or []))


def alignment_ratio(signal: np.ndarray, sample: np.ndarray, fs: float, *, half_width_s: float = 0.05) -> float:
    """How well beat annotations sit on QRS complexes: the median peak ``|signal|`` within ``half_width_s`` of
    each beat, divided by the same midway between consecutive beats.

    ``signal`` should have its baseline removed. A record's own beat labels give a ratio well above 1 (2.7 to 30
    on MIT-BIH); labels of another record fall anywhere and give about 1.

    Args:
        signal: ``(L,)`` the lead the beats are labelled on.
        sample: ``(M,)`` sorted beat positions.
        fs: sampling frequency (Hz).
        half_width_s: half width of the windows compared (s).

    Returns:
        The ratio (NaN with fewer than 3 beats inside the signal).
    """
    h = max(1, int(round(half_width_s * fs)))
    x = np.nan_to_num(np.asarray(signal, dtype=np.float32))
    s = np.asarray(sample, dtype=np.int64)
    s = s[(s >= h) & (s < len(x) - h)]
    if len(s) < 3:
        return float("nan")
    mid = (s[:-1] + s[1:]) // 2
    offsets = np.arange(-h, h + 1)
    at_beats = np.abs(x[s[:, None] + offsets]).max(axis=1)
    between = np.abs(x[mid[:, None] + offsets]).max(axis=1)
    return float(np.median(at_beats) / max(float(np.median(between)), 1e-6))


def check_alignment(signal: np.ndarray, sample: np.ndarray, fs: float, *, record: str, path: str | os.PathLike,
                    min_ratio: float = ALIGNMENT_MIN_RATIO) -> float:
    """Raise unless the beat annotations sit on the QRS complexes of ``signal`` (:func:`alignment_ratio`).

    Returns:
        The ratio.

    Raises:
        DataError: the ratio is below ``min_ratio``; the message names the record and the annotation file.
    """
    ratio = alignment_ratio(signal, sample, fs)
    if ratio < min_ratio:
        raise DataError(
            f"record {record}: the beat annotations of {path} do not sit on the QRS complexes of its signal "
            f"(alignment ratio {ratio:.2f}, expected >= {min_ratio}; a record's own labels score 2.7 or more on "
            "MIT-BIH): is it the annotation file of another record?")
    return ratio


def cut_windows(signal: np.ndarray, centres: np.ndarray, before: int, after: int, *, record: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``signal[c - before : c + after]`` around each centre, for the centres whose window fits.

    Vectorised (``sliding_window_view`` plus fancy indexing). The window's sample ``before`` is the centre.

    Args:
        signal: ``(L,)``.
        centres: ``(M,)`` int sample positions.
        before: samples before the centre.
        after: samples from the centre on (the centre included).
        record: the record name, for messages.

    Returns:
        ``(windows (K, before + after) of signal's dtype, kept (M,) bool)``: ``kept`` marks the centres whose
        window lies inside the signal; the others are left out (count them).

    Raises:
        DataError: the record is shorter than one window (the message names it and both lengths).
    """
    width = before + after
    if before < 0 or after < 1:
        raise ValueError(f"before must be >= 0 and after >= 1, got before={before}, after={after}")
    if len(signal) < width:
        raise DataError(f"record {record} has {len(signal)} samples, shorter than one window of {width} samples "
                        f"({before} before and {after} from the beat on)")
    centres = np.asarray(centres, dtype=np.int64)
    kept = (centres - before >= 0) & (centres + after <= len(signal))
    view = np.lib.stride_tricks.sliding_window_view(signal, width)
    return view[centres[kept] - before], kept
