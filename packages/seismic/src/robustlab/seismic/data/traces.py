"""A folder of miniSEED/SAC files plus a labels CSV: an index frame (one row per file) and one merged trace per file.

:func:`index_folder` reads headers only (ObsPy ``read(headonly=True)``) and lists files that do not read in
``frame.attrs["skipped"]`` (never raised); :func:`read_trace` reads one trace id of a file and merges its segments
when every gap is at most ``max_gap`` seconds (``Stream.merge(method=1, fill_value="interpolate")``), else raises
:class:`~robustlab.seismic.preprocessing.SkipTrace` naming the file and the gap.

Importing this module loads nothing heavy; ObsPy and pandas load when files are read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from robustlab.common.errors import DataError
from robustlab.seismic.preprocessing import SkipTrace

__all__ = ["PATTERNS", "index_folder", "read_stream", "read_trace"]

PATTERNS = ("*.mseed", "*.MSEED", "*.miniseed", "*.msd", "*.sac", "*.SAC")
"""The file names :func:`index_folder` looks for by default (recursively)."""

_FORMATS = {".mseed": "MSEED", ".miniseed": "MSEED", ".msd": "MSEED", ".sac": "SAC"}
INDEX_COLUMNS = ("file", "trace_id", "network", "station", "location", "channel", "sampling_rate", "starttime",
                 "endtime", "npts", "n_traces", "trace_ids")


def read_stream(path: str | os.PathLike, *, headonly: bool = False):
    """Read a miniSEED or SAC file with ObsPy (the format from the suffix; other suffixes are detected).

    Raises:
        SkipTrace: (kind ``"unreadable"``) the file is missing, empty, or not miniSEED/SAC; the message names it.
    """
    import obspy

    path = Path(path)
    if not path.is_file():
        raise SkipTrace("missing file" if not path.exists() else "not a file", "unreadable", path)
    if path.stat().st_size == 0:
        raise SkipTrace("unreadable: empty file (0 bytes)", "unreadable", path)
    fmt = _FORMATS.get(path.suffix.lower())
    errors = []
    for f in ([fmt, None] if fmt else [None]):
        try:
            return obspy.read(str(path), format=f, headonly=headonly)
        except Exception as e:  # ObsPy raises TypeError, ValueError, InternalMSEEDError, SacIOError, ...
            errors.append(f"{type(e).__name__}: {e}")
    raise SkipTrace(f"unreadable: not miniSEED/SAC ({errors[-1][:160]})", "unreadable", path)


def _pick(stream, trace_id: str | None, path) -> tuple[str, list]:
    ids = list(dict.fromkeys(tr.id for tr in stream))
    if not ids:
        raise SkipTrace("empty trace (the file holds no trace)", "empty", path)
    tid = trace_id or ids[0]
    segments = [tr for tr in stream if tr.id == tid]
    if not segments:
        raise SkipTrace(f"no trace {tid} in the file (it holds {', '.join(ids)})", "missing trace", path)
    return tid, segments


def read_trace(path: str | os.PathLike, trace_id: str | None = None, max_gap: float = 1.0):
    """One trace of a file, its segments merged when every gap is at most ``max_gap`` seconds.

    Args:
        path: a miniSEED or SAC file.
        trace_id: ``NET.STA.LOC.CHA``; None: the file's first trace id.
        max_gap: the largest gap (s) filled by linear interpolation (``Stream.merge(method=1,
            fill_value="interpolate")``); overlaps are merged the same way.

    Returns:
        An ``obspy.Trace``.

    Raises:
        SkipTrace: a :class:`DataError` naming the file: unreadable, the trace id absent, a gap above ``max_gap``
            (``"gap of 3.20 s > 1.0 s"``), segments at different rates.
    """
    from obspy import Stream

    stream = read_stream(path)
    tid, segments = _pick(stream, trace_id, path)
    if len(segments) == 1:
        return segments[0]
    segments.sort(key=lambda tr: tr.stats.starttime)
    rates = {float(tr.stats.sampling_rate) for tr in segments}
    if len(rates) > 1:
        raise SkipTrace(f"segments of {tid} at different rates ({', '.join(f'{r:g}' for r in sorted(rates))} Hz)",
                        "gap", path)
    dt = 1.0 / rates.pop()
    gap = max(float(b.stats.starttime - a.stats.endtime) - dt for a, b in zip(segments, segments[1:]))
    if gap > max_gap:
        raise SkipTrace(f"gap of {gap:.2f} s > {float(max_gap)} s", "gap", path)
    st = Stream(segments).merge(method=1, fill_value="interpolate")
    if len(st) != 1:
        raise SkipTrace(f"segments of {tid} do not merge into one trace", "gap", path)
    return st[0]


def index_folder(folder: str | os.PathLike, labels=None, *, pattern: Sequence[str] = PATTERNS):
    """One row per file of ``folder`` (recursively), from the headers only.

    Args:
        folder: the folder.
        labels: a labels CSV (path) or frame with a ``file`` column, joined on the file's path relative to
            ``folder`` (or, where that does not match, on its name); its other columns are added (a ``trace_id`` of
            the labels replaces the header's first trace id, whose value stays in ``first_trace_id``).
        pattern: glob patterns of the files.

    Returns:
        A pandas frame: file (relative, POSIX), trace_id (the first trace id), network, station, location,
        channel, sampling_rate, starttime, endtime (ISO; over that id's segments), npts (summed over them),
        n_traces (all traces of the file), trace_ids (the distinct ids, ``;``-joined), then the labels' columns.
        Files that do not read are in ``frame.attrs["skipped"]``: a list of ``{"file", "reason"}``.

    Raises:
        DataError: ``folder`` is not a folder; the labels lack a ``file`` column (naming the CSV).
    """
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder of miniSEED/SAC files")
    files = sorted({p for pat in pattern for p in folder.rglob(pat) if p.is_file()})
    rows, skipped = [], []
    for p in files:
        rel = p.relative_to(folder).as_posix()
        try:
            st = read_stream(p, headonly=True)
            tid, segments = _pick(st, None, p)
        except SkipTrace as e:
            skipped.append({"file": rel, "reason": e.reason})
            continue
        s = segments[0].stats
        rows.append({"file": rel, "trace_id": tid, "network": s.network, "station": s.station,
                     "location": s.location, "channel": s.channel, "sampling_rate": float(s.sampling_rate),
                     "starttime": str(min(tr.stats.starttime for tr in segments)),
                     "endtime": str(max(tr.stats.endtime for tr in segments)),
                     "npts": int(sum(tr.stats.npts for tr in segments)), "n_traces": len(st),
                     "trace_ids": ";".join(dict.fromkeys(tr.id for tr in st))})
    frame = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    if labels is not None:
        frame = _join_labels(frame, labels)
    frame.attrs["skipped"] = skipped
    return frame


def _join_labels(frame, labels):
    import pandas as pd

    source = labels if isinstance(labels, pd.DataFrame) else None
    if source is None:
        try:
            source = pd.read_csv(labels, keep_default_na=False, na_values=[""])
        except (OSError, ValueError) as e:
            raise DataError(f"labels CSV {labels} does not read: {type(e).__name__}: {e}") from None
    if "file" not in source.columns:
        raise DataError(f"labels {labels if not isinstance(labels, pd.DataFrame) else 'frame'} lack the column "
                        f"'file' (they have {', '.join(map(str, source.columns))})")
    source = source.copy()
    source["file"] = source["file"].astype(str)
    names = set(frame["file"])
    if not source["file"].isin(names).any():  # paths relative to another folder: join on the name
        source["file"] = [Path(f).name for f in source["file"]]
        key = frame["file"].map(lambda f: Path(f).name)
    else:
        key = frame["file"]
    if "trace_id" in source.columns:
        frame = frame.rename(columns={"trace_id": "first_trace_id"})
    extra = [c for c in source.columns if c not in frame.columns or c == "file"]
    merged = frame.assign(_key=key.to_numpy()).merge(
        source[extra].rename(columns={"file": "_key"}).drop_duplicates("_key"), on="_key", how="left")
    if "trace_id" in merged.columns:
        merged["trace_id"] = merged["trace_id"].where(merged["trace_id"].notna(), merged["first_trace_id"])
    return merged.drop(columns="_key")
