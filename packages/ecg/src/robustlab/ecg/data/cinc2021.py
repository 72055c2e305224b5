"""PhysioNet/CinC Challenge 2021: 12-lead records with SNOMED-CT diagnoses as a record-level multi-label task.

Each record is a WFDB header plus a MATLAB v4 signal file (``.hea`` + ``.mat``); its diagnoses are the SNOMED-CT
codes of the header comment ``# Dx: code,code,...``. They map to the scored classes of ``dx_mapping_scored.csv``
(columns ``Dx``, ``SNOMEDCTCode``, ``Abbreviation``, ...), with the equivalent pairs the Challenge scores as one
class merged into the first code of each pair (:data:`EQUIVALENT_CLASSES`, plus any pair the CSV's ``Notes``
column states). Signals are resampled to a common rate (``scipy.signal.resample_poly``) and cropped (from the
start) or zero-padded to a fixed length; the report counts every crop, pad, resampling, unscored code and record
without a scored class.

Reference:
    Reyna et al. (2021), Will two do? Varying dimensions in electrocardiography: the PhysioNet/Computing in
    Cardiology Challenge 2021, CinC 48. Data: https://physionet.org/content/challenge-2021/1.0.3/ (CC BY 4.0).

Importing this module loads NumPy only; wfdb and SciPy load when records are read.
"""

from __future__ import annotations

import csv
import os
import re
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from robustlab.common.errors import DataError, DownloadError
from robustlab.ecg.data.records import find_records, read_header, read_record

__all__ = [
    "ENV_VAR",
    "CINC2021_URL",
    "DX_MAPPING_URL",
    "EQUIVALENT_CLASSES",
    "STANDARD_LEADS",
    "MultiLabelSet",
    "cinc2021_path",
    "equivalent_classes",
    "load_cinc2021",
    "read_dx_codes",
    "read_dx_mapping",
]

ENV_VAR = "ROBUSTLAB_CINC2021"
"""Names a local folder of Challenge 2021 records that :func:`cinc2021_path` reads instead of the cache."""
STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
EQUIVALENT_CLASSES = (("713427006", "59118001"), ("284470004", "63593006"), ("427172004", "17338001"))
"""The pairs the Challenge scores as one diagnosis (CRBBB/RBBB, PAC/SVPB, PVC/VPB); the first code stands for both.
:func:`equivalent_classes` adds the pairs stated in the mapping CSV's ``Notes`` (the 2021 file also pairs
CLBBB 733534002 with LBBB 164909002)."""
CINC2021_URL = "https://physionet.org/files/challenge-2021/1.0.3/"
DX_MAPPING_URL = ("https://raw.githubusercontent.com/physionetchallenges/evaluation-2021/"
                  "09de852841a9fa497fb9efb80734dafd13e4ec1f/dx_mapping_scored.csv")
_MAPPING_FILE = "dx_mapping_scored.csv"
_UNITS_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}
_NOTE_PAIR = re.compile(r"score\s+(\d+)\s+and\s+(\d+)\s+as the same", re.IGNORECASE)


def read_dx_mapping(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """The scored classes of a ``dx_mapping_scored.csv``: ``(SNOMED-CT code, abbreviation, name)`` per row.

    Raises:
        DataError: the file is missing, lacks the columns ``Dx``, ``SNOMEDCTCode`` or ``Abbreviation`` (the
            columns present are listed), or a code is not a number (the row is named).
    """
    rows, _ = _read_mapping(path)
    return rows


def _read_mapping(path: str | os.PathLike) -> tuple[list[tuple[str, str, str]], list[str]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"diagnosis mapping {path} does not exist; expected the Challenge's dx_mapping_scored.csv")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        need = ("Dx", "SNOMEDCTCode", "Abbreviation")
        missing = [c for c in need if c not in columns]
        if missing:
            raise DataError(f"diagnosis mapping {path} lacks the column(s) {', '.join(missing)}; its columns are "
                            f"{', '.join(columns) or 'none'}")
        rows, notes = [], []
        for i, row in enumerate(reader, start=2):
            code = (row["SNOMEDCTCode"] or "").strip()
            if not code.isdigit():
                raise DataError(f"diagnosis mapping {path}, line {i}: SNOMEDCTCode {code!r} is not a number")
            rows.append((code, (row["Abbreviation"] or "").strip(), (row["Dx"] or "").strip()))
            notes.append(row.get("Notes") or "")
    if not rows:
        raise DataError(f"diagnosis mapping {path} has no rows")
    return rows, notes


def equivalent_classes(path: str | os.PathLike | None = None) -> dict[str, str]:
    """Each merged code -> the code that stands for it: :data:`EQUIVALENT_CLASSES` plus the pairs that the
    mapping CSV's ``Notes`` column states ("We score A and B as the same diagnosis"), A standing for B."""
    pairs = list(EQUIVALENT_CLASSES)
    if path is not None:
        _, notes = _read_mapping(path)
        pairs += [m.groups() for note in notes for m in [_NOTE_PAIR.search(note)] if m]
    merged: dict[str, str] = {}
    for first, second in pairs:
        if first not in merged and second not in merged:
            merged[second] = first
    return merged


def read_dx_codes(comments: Sequence[str], *, record: str = "?") -> list[str]:
    """The SNOMED-CT codes of a header's ``Dx:`` comment (``["426783006", ...]``).

    Raises:
        DataError: no ``Dx:`` comment, or a code that is not a number; the message names the record.
    """
    for line in comments:
        key, sep, value = line.strip().lstrip("#").strip().partition(":")
        if sep and key.strip().lower() == "dx":
            codes = [c.strip() for c in value.split(",") if c.strip()]
            bad = [c for c in codes if not c.isdigit()]
            if bad or not codes:
                raise DataError(f"record {record}: its '# Dx:' comment {value.strip()!r} is not a list of "
                                "SNOMED-CT codes")
            return codes
    raise DataError(f"record {record}: its header has no '# Dx:' comment (the SNOMED-CT diagnoses)")


@dataclass(frozen=True, eq=False)
class MultiLabelSet:
    """Fixed-length multi-lead records with multi-hot diagnoses.

    Shape:
        x: ``(N, C, L)`` float32 mV (``C = len(leads)``, ``L = round(seconds * fs)``); y: ``(N, K)`` float32 0/1
        (``K = len(classes)``); record: ``(N,)`` str.

    Attributes:
        classes: the SNOMED-CT codes of ``y``'s columns; names/abbreviations: theirs, from the mapping.
        report: ``records``, ``resampled`` (``{source Hz: n}``), ``cropped``, ``padded`` (records, with
            ``padded_samples``), ``no_scored_label`` (records kept with all-zero ``y``), ``unscored_codes``
            (``{code: n}``), ``merged`` (``{code: code it was merged into}``), ``absent_classes`` (requested
            classes no record has), ``invalid_samples`` (records with NaN samples set to 0).
    """

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    names: tuple[str, ...]
    abbreviations: tuple[str, ...]
    record: np.ndarray
    fs: float
    leads: tuple[str, ...]
    report: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def counts(self) -> dict[str, int]:
        """Records with each class, by SNOMED-CT code."""
        return {c: int(n) for c, n in zip(self.classes, self.y.sum(axis=0))}

    def subset(self, idx) -> MultiLabelSet:
        """The records at ``idx`` (indices or a boolean mask)."""
        idx = np.asarray(idx)
        return replace(self, x=self.x[idx], y=self.y[idx], record=self.record[idx])


def _fit_length(signal: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """``(C, L')`` cropped from the start or zero-padded at the end to ``length``; returns it and the pad size."""
    n = signal.shape[1]
    if n >= length:
        return signal[:, :length], 0
    return np.pad(signal, ((0, 0), (0, length - n))), length - n


def load_cinc2021(root: str | os.PathLike | None = None, *, fs: float = 500, seconds: float = 10.0,
                  classes: Sequence[str] | None = None, leads: Sequence[str] = STANDARD_LEADS,
                  mapping: str | os.PathLike | None = None, download: bool = True, sources: Sequence[str] = (),
                  progress: bool = False) -> MultiLabelSet:
    """Read Challenge 2021 records into a fixed-length multi-label set.

    Args:
        root: a folder holding ``*.hea`` + ``*.mat`` records (in subfolders too) and ``dx_mapping_scored.csv``;
            None: the download cache (:func:`cinc2021_path`).
        fs: the common sampling frequency (Hz); other records are resampled with ``resample_poly``.
        seconds: the length of each record: longer ones are cropped from the start, shorter ones zero-padded at
            the end (both counted).
        classes: SNOMED-CT codes of the output columns (a merged code is replaced by the code standing for it);
            None: the scored classes present in the records, in the mapping's order.
        leads: the leads, by name, in this order.
        mapping: the ``dx_mapping_scored.csv``; default ``root/dx_mapping_scored.csv``.
        download: with ``root=None``, download what is missing (:func:`cinc2021_path`).
        sources: with ``root=None``, the Challenge sources to download (see :func:`cinc2021_path`).
        progress: show progress.

    Returns:
        A :class:`MultiLabelSet`, records sorted by name.

    Raises:
        DataError: no records or mapping; a record lacks a lead (the leads present are listed), its ``# Dx:``
            comment, or has bad files (see :func:`~robustlab.ecg.data.records.read_record`); a requested class is
            not scored. The message names the record or file.
    """
    from scipy.signal import resample_poly

    from robustlab.common.progress import progress as progress_bar

    root = cinc2021_path(root, download=download, sources=sources, progress=progress)
    mapping = Path(mapping) if mapping is not None else root / _MAPPING_FILE
    rows = read_dx_mapping(mapping)
    merged = equivalent_classes(mapping)
    info = {code: (abbr, name) for code, abbr, name in rows}
    scored = [code for code, _, _ in rows if code not in merged]
    length = int(round(seconds * fs))
    leads = tuple(leads)
    headers = find_records(root)
    report: dict = {"records": len(headers), "resampled": {}, "cropped": 0, "padded": 0, "padded_samples": 0,
                    "no_scored_label": 0, "unscored_codes": {}, "invalid_samples": 0,
                    "merged": {k: v for k, v in merged.items() if k in info}}
    xs, codes, names = [], [], []
    unscored: Counter = Counter()
    with progress_bar(total=len(headers), desc="CinC 2021 records", enabled=progress, leave=False) as bar:
        for header_path in headers:
            header = read_header(header_path)
            name = header_path.stem
            dx = {merged.get(c, c) for c in read_dx_codes(header.comments or (), record=name)}
            unscored.update(c for c in dx if c not in info)
            rec = read_record(header_path, leads=leads)
            scale = np.array([_UNITS_TO_MV.get((u or "mV").strip().lower(), np.nan) for u in rec.units])
            if np.isnan(scale).any():
                raise DataError(f"record {name}: units {', '.join(rec.units)} in {header_path}; expected mV, uV or V")
            signal = (rec.signal * scale.astype(np.float32)).T  # (C, L)
            if np.isnan(signal).any():
                report["invalid_samples"] += 1
                signal = np.nan_to_num(signal)
            if not np.isclose(rec.fs, fs):
                ratio = Fraction(fs / rec.fs).limit_denominator(1000)
                signal = resample_poly(signal, ratio.numerator, ratio.denominator, axis=1)
                key = f"{rec.fs:g}"
                report["resampled"][key] = report["resampled"].get(key, 0) + 1
            if signal.shape[1] > length:
                report["cropped"] += 1
            signal, pad = _fit_length(signal, length)
            if pad:
                report["padded"] += 1
                report["padded_samples"] += pad
            xs.append(signal.astype(np.float32))
            codes.append(dx)
            names.append(name)
            bar.update(1)
    if classes is None:
        present = set().union(*codes)
        classes = [c for c in scored if c in present]
    else:
        classes = [merged.get(str(c), str(c)) for c in classes]
        unknown = [c for c in classes if c not in info]
        if unknown:
            raise DataError(f"class(es) {', '.join(unknown)} are not scored classes of {mapping}")
        classes = list(dict.fromkeys(classes))
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(codes), len(classes)), dtype=np.float32)
    for i, dx in enumerate(codes):
        for c in dx:
            if c in index:
                y[i, index[c]] = 1.0
    report["no_scored_label"] = int((y.sum(axis=1) == 0).sum())
    report["unscored_codes"] = dict(sorted(unscored.items()))
    report["absent_classes"] = [c for c, n in zip(classes, y.sum(axis=0)) if n == 0]
    return MultiLabelSet(x=np.stack(xs), y=y, classes=tuple(classes), names=tuple(info[c][1] for c in classes),
                         abbreviations=tuple(info[c][0] for c in classes), record=np.array(names), fs=float(fs),
                         leads=leads, report=report)


def cinc2021_path(root: str | os.PathLike | None = None, *, download: bool = True, sources: Sequence[str] = (),
                  base_url: str = CINC2021_URL, mapping_url: str = DX_MAPPING_URL, progress: bool = True) -> Path:
    """The folder of the Challenge 2021 training records, downloaded into the cache when missing there.

    The download reads the project's ``SHA256SUMS.txt`` from ``base_url`` (PhysioNet's challenge-2021 1.0.3),
    then fetches each ``training/<source>/<group>/<record>.hea`` and ``.mat`` listed there (of the ``sources``
    given, e.g. ``("georgia",)``; all 88,253 records when empty) with :func:`robustlab.common.data.download`,
    checked against its SHA-256, into the same layout under the cache; files already there and matching are
    kept. ``dx_mapping_scored.csv`` comes from ``mapping_url`` (the Challenge's evaluation repository).

    Args:
        root: a folder holding the records and ``dx_mapping_scored.csv``; checked, never downloaded into. None:
            the folder named by ``$ROBUSTLAB_CINC2021`` (:data:`ENV_VAR`) when set (a local copy), else
            ``robustlab.common.data.data_dir("ecg", "cinc2021")``.
        download: download into the cache when it holds no record or no mapping.
        sources: the source folders under ``training/`` to download (``"georgia"``), or groups of a source
            (``"georgia/g8"``); empty for all.
        base_url: the project's files (``file://`` URLs work: tests use them).
        mapping_url: the diagnosis mapping.
        progress: show download progress.

    Returns:
        The folder.

    Raises:
        DataError: ``root`` holds no record or no mapping; the cache lacks them and ``download`` is False.
        DownloadError: a download failed, a file's hash differs, or no file of ``sources`` is listed.
    """
    from robustlab.common.data import data_dir

    if root is None and os.environ.get(ENV_VAR):
        root = os.environ[ENV_VAR]
    if root is not None:
        root = Path(root)
        find_records(root)
        if not (root / _MAPPING_FILE).is_file():
            raise DataError(f"CinC 2021 folder {root} has no {_MAPPING_FILE} (the scored classes); download it from "
                            f"{DX_MAPPING_URL}")
        return root
    folder = data_dir("ecg", "cinc2021")
    have = folder.is_dir() and any(folder.rglob("*.hea")) and (folder / _MAPPING_FILE).is_file()
    if have and not sources:
        return folder
    if not download:
        if have:
            return folder
        raise DataError(f"the CinC 2021 cache {folder} holds no records or no {_MAPPING_FILE}; call with "
                        "download=True or pass root= a folder holding them")
    _download_cinc2021(folder, sources=sources, base_url=base_url, mapping_url=mapping_url, progress=progress)
    return folder


def _download_cinc2021(folder: Path, *, sources: Sequence[str], base_url: str, mapping_url: str,
                       progress: bool) -> None:
    from robustlab.common.data import download

    base_url = base_url if base_url.endswith("/") else base_url + "/"
    sums = download(urllib.parse.urljoin(base_url, "SHA256SUMS.txt"), folder / "SHA256SUMS.txt",
                    progress=progress)
    wanted = []
    for line in sums.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            continue
        digest, rel = parts
        segments = rel.split("/")
        if segments[0] != "training" or not rel.endswith((".hea", ".mat")):
            continue
        if sources and (len(segments) < 3 or (segments[1] not in sources and "/".join(segments[1:3]) not in sources)):
            continue
        wanted.append((rel, digest))
    if not wanted:
        raise DownloadError(f"{base_url}SHA256SUMS.txt lists no training record"
                            f"{' of the sources ' + ', '.join(sources) if sources else ''}")
    download(mapping_url, folder / _MAPPING_FILE, progress=progress)
    for rel, digest in sorted(wanted, key=lambda w: (not w[0].endswith(".mat"), w[0])):  # signals before headers
        download(urllib.parse.urljoin(base_url, rel), folder / rel, sha256=digest, progress=False)
