"""Transcription-factor motifs: a small ``Motif`` record, readers for JASPAR and MEME files, and JASPAR releases.

Three sources, one type:

- :func:`read_motifs` reads a JASPAR (``>ID NAME`` headers and ``A [ ... ]`` rows, or bare 4-row ``pfm``) or a
  MEME (minimal) motif file; its errors name the file, the line and the motif;
- :func:`jaspar_motifs` reads a release from the SQLite databases that ship inside ``pyjaspar`` (no download);
- :func:`fetch_jaspar` downloads a release's CORE vertebrates non-redundant PFM file into the data folder
  (``data_dir("jaspar")``) and reads it.

Reference:
    Mathelier et al., "JASPAR 2016: a major expansion and update of the open-access database of transcription
    factor binding profiles", Nucleic Acids Research 44 (2016).
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustlab.common.errors import DataError

__all__ = [
    "JASPAR_URLS",
    "KOO2019_CORE_MOTIFS",
    "KOO_EDDY2019_MOTIFS",
    "Motif",
    "fetch_jaspar",
    "jaspar_motifs",
    "read_motifs",
]

KOO2019_CORE_MOTIFS = ("SP1", "Gabpa", "CEBPB", "MAX", "YY1")
"""The five positive-class motifs of Koo et al. (2019), as named in JASPAR 2016."""

KOO_EDDY2019_MOTIFS = (
    "Arid3a", "CEBPB", "FOSL1", "Gabpa", "MAFK", "MAX", "MEF2A", "NFYB", "SP1", "SRF", "STAT1", "YY1",
)
"""The twelve motifs of the multi-task data set of Koo & Eddy (2019), as named in JASPAR 2016."""

JASPAR_URLS = {
    2016: "http://jaspar2016.genereg.net/html/DOWNLOAD/JASPAR_CORE/pfm/nonredundant/pfm_vertebrates.txt",
    2018: "https://jaspar2018.genereg.net/download/CORE/JASPAR2018_CORE_vertebrates_non-redundant_pfms_jaspar.txt",
    2020: "https://jaspar2020.genereg.net/download/data/2020/CORE/"
          "JASPAR2020_CORE_vertebrates_non-redundant_pfms_jaspar.txt",
    2022: "https://jaspar2022.genereg.net/download/data/2022/CORE/"
          "JASPAR2022_CORE_vertebrates_non-redundant_pfms_jaspar.txt",
    2024: "https://jaspar.elixir.no/download/data/2024/CORE/JASPAR2024_CORE_vertebrates_non-redundant_pfms_jaspar.txt",
    2026: "https://jaspar.elixir.no/download/data/2026/CORE/JASPAR2026_CORE_vertebrates_non-redundant_pfms_jaspar.txt",
}
"""Official download addresses of each release's CORE vertebrates non-redundant PFMs (JASPAR format)."""

_ALPHABET = "ACGT"


@dataclass(frozen=True, eq=False)
class Motif:
    """A position frequency matrix with its JASPAR identity.

    Args:
        matrix_id: the stable ID with version (``"MA0079.3"``), or the file's ID for other sources.
        name: the factor's name (``"SP1"``; JASPAR names are case-sensitive: ``"Gabpa"``).
        counts: non-negative counts (or frequencies) with rows A, C, G, T; stored as a read-only float64 copy.

    Shape:
        counts: ``(4, K)`` for a motif of width ``K``.
    """

    matrix_id: str
    name: str
    counts: np.ndarray

    def __post_init__(self) -> None:
        counts = np.array(self.counts, dtype=np.float64)  # a copy, so the caller's array stays theirs
        if counts.ndim != 2 or counts.shape[0] != 4 or counts.shape[1] < 1:
            raise DataError(
                f"motif {self.matrix_id} {self.name}: counts must have shape (4, K), got {counts.shape}"
            )
        if not np.isfinite(counts).all() or (counts < 0).any():
            raise DataError(f"motif {self.matrix_id} {self.name}: counts must be finite and non-negative")
        empty = np.flatnonzero(counts.sum(axis=0) <= 0)
        if empty.size:
            raise DataError(f"motif {self.matrix_id} {self.name}: column {empty[0]} has no counts")
        counts.flags.writeable = False
        object.__setattr__(self, "counts", counts)

    @property
    def length(self) -> int:
        """The motif's width ``K``."""
        return self.counts.shape[1]

    @property
    def consensus(self) -> str:
        """The most frequent base of each column."""
        return "".join(_ALPHABET[i] for i in self.counts.argmax(axis=0))

    def pwm(self, *, pseudocount: float = 0.0) -> np.ndarray:
        """Position probability matrix: ``(counts + pseudocount) / column total``.

        Args:
            pseudocount: added to every count before normalising (0 keeps zero probabilities).

        Shape:
            output: ``(4, K)`` float64, columns summing to 1.
        """
        if pseudocount < 0:
            raise ValueError(f"pseudocount must be >= 0, got {pseudocount}")
        c = self.counts + pseudocount
        return c / c.sum(axis=0, keepdims=True)

    def reverse_complement(self) -> Motif:
        """The motif on the opposite strand: columns reversed and A<->T, C<->G swapped (same ID and name)."""
        return Motif(self.matrix_id, self.name, self.counts[::-1, ::-1])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Motif):
            return NotImplemented
        return (self.matrix_id, self.name) == (other.matrix_id, other.name) and np.array_equal(
            self.counts, other.counts
        )

    def __hash__(self) -> int:
        return hash((self.matrix_id, self.name, self.counts.tobytes()))

    def __repr__(self) -> str:
        return f"Motif({self.matrix_id!r}, {self.name!r}, length={self.length}, consensus={self.consensus!r})"


# -- files ----------------------------------------------------------------------------------------------------


def read_motifs(path: str | os.PathLike, *, format: str | None = None) -> list[Motif]:
    """Read every motif of a JASPAR or MEME motif file.

    The format is taken from the content when not given: a file whose first line starts with ``MEME version`` is
    MEME (minimal), one starting with ``>`` is JASPAR (``>ID NAME`` then four rows A, C, G, T, bracketed
    ``A [ ... ]`` or bare), and four rows of numbers alone are a single JASPAR ``pfm`` motif named after the
    file. For MEME files the name is the ``MOTIF`` line's second word (its first is the ID), and counts are the
    file's probabilities times ``nsites`` (20 when not given; not rounded to whole counts as Biopython's reader
    does, so that ``pwm()`` gives back the file's probabilities).

    Args:
        path: the motif file.
        format: ``"jaspar"``, ``"pfm"`` or ``"meme"`` to skip the detection.

    Returns:
        The motifs in file order.

    Raises:
        DataError: the file is missing, unreadable, empty, an HTML page, or not in the format; a motif is
            truncated (rows missing, rows of different widths, fewer matrix rows than MEME's ``w=``), holds a
            value that is not a finite non-negative number, or repeats an earlier motif's ID. The message names
            the file, the line and the motif (ID and name).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"motif file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"motif file {path} cannot be read: {e}") from e
    fmt = format.lower() if format is not None else _detect_format(text)
    if fmt not in ("jaspar", "pfm", "meme"):
        raise DataError(f"motif file {path}: unknown format {fmt!r}; expected 'jaspar', 'pfm' or 'meme'")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("<"):
        raise DataError(f"motif file {path} is an HTML or XML page, not motifs (a failed download?): {first[:60]!r}")
    lines = list(enumerate(text.splitlines(), start=1))
    try:
        if fmt == "meme":
            motifs = _parse_meme(lines)
        elif fmt == "jaspar":
            motifs = _parse_jaspar(lines)
        else:
            motifs = _parse_pfm(lines, path.stem)
    except DataError as e:
        how = "" if format is not None or fmt != "pfm" else (
            " (read as a single 'pfm' motif: the first line starts with neither '>' nor 'MEME version')")
        raise DataError(f"motif file {path}, {e}{how}") from None
    if not motifs:
        raise DataError(f"motif file {path} holds no motifs (read as {fmt!r})")
    return motifs


def _detect_format(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("MEME version"):
        return "meme"
    if first.startswith(">"):
        return "jaspar"
    return "pfm"


_TRUNCATED = "the file is truncated or a row was lost"


def _parse_jaspar(lines: list[tuple[int, str]]) -> list[Motif]:
    """Motifs of a JASPAR file: ``>ID NAME`` headers, each followed by four rows (A, C, G, T)."""
    motifs: list[Motif] = []
    seen: dict[str, int] = {}
    current: tuple[int, str, str] | None = None  # (header line, ID, name)
    rows: dict[str, tuple[int, list[float]]] = {}
    headers = sum(1 for _, raw in lines if raw.lstrip().startswith(">"))

    def finish() -> Motif:
        try:
            return _finish(current, rows)
        except DataError as e:
            if _TRUNCATED not in str(e):
                raise
            done = len(motifs)
            raise DataError(f"{e} ({headers} '>' headers but {done} complete motif{'s' if done != 1 else ''} "
                            "before it)") from None

    for lineno, raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line.startswith(">"):
            if current is not None:
                motifs.append(finish())
            words = line[1:].split()
            if not words:
                raise DataError(f"line {lineno}: a '>' header without a motif ID")
            if words[0] in seen:
                raise DataError(f"line {lineno}: motif ID {words[0]!r} repeats that of line {seen[words[0]]}; "
                                "IDs must be unique")
            seen[words[0]] = lineno
            current, rows = (lineno, words[0], words[1] if len(words) > 1 else words[0]), {}
            continue
        if current is None:
            raise DataError(f"line {lineno}: {line[:40]!r} comes before the first '>ID NAME' header")
        _add_row(rows, lineno, line, f"motif {current[1]} {current[2]} (header on line {current[0]})")
    if current is not None:
        motifs.append(finish())
    return motifs


def _parse_pfm(lines: list[tuple[int, str]], name: str) -> list[Motif]:
    """The one motif of a JASPAR ``pfm`` file: four rows (A, C, G, T), named after the file."""
    rows: dict[str, tuple[int, list[float]]] = {}
    for lineno, raw in lines:
        if raw.strip():
            _add_row(rows, lineno, raw.strip(), f"motif {name}")
    return [_finish((0, name, name), rows)] if rows else []  # 0: no header line


def _add_row(rows: dict[str, tuple[int, list[float]]], lineno: int, line: str, motif: str) -> None:
    """Parse ``A [ 1 2 3 ]``, ``A 1 2 3`` or ``1 2 3`` (the next letter) into ``rows``; errors name the line."""
    words = line.replace("[", " [ ").replace("]", " ] ").split()
    letter = words[0].upper() if len(words[0]) == 1 and words[0].upper() in _ALPHABET else None
    if letter is None:
        if len(rows) == 4:
            raise DataError(f"line {lineno}: {motif} has a fifth row; a motif has four (A, C, G, T)")
        letter = _ALPHABET[len(rows)]
    else:
        words = words[1:]
    if len(rows) == 4 or letter in rows:
        what = "a fifth row" if len(rows) == 4 else f"row {letter} twice (first on line {rows[letter][0]})"
        raise DataError(f"line {lineno}: {motif} has {what}; a motif has four rows (A, C, G, T)")
    values = []
    for w in words:
        if w in ("[", "]"):
            continue
        try:
            values.append(float(w))
        except ValueError:
            raise DataError(f"line {lineno}: {motif}, row {letter}: {w[:40]!r} is not a number") from None
    if not values:
        raise DataError(f"line {lineno}: {motif}, row {letter} holds no values")
    for other, (at, vals) in rows.items():
        if len(vals) != len(values):
            raise DataError(f"line {lineno}: {motif}, row {letter} has {len(values)} values but row {other} "
                            f"(line {at}) has {len(vals)}: a truncated or damaged row")
    rows[letter] = (lineno, values)


def _finish(header: tuple[int, str, str], rows: dict[str, tuple[int, list[float]]]) -> Motif:
    """The Motif of a header and its rows: four of them, or an error naming the motif and its last line.

    ``header`` is (header line, ID, name), with line 0 for a ``pfm`` file's motif, which has no header.
    """
    lineno, matrix_id, name = header
    if not rows:
        raise DataError(f"line {lineno}: motif {matrix_id} {name} has no rows: {_TRUNCATED}")
    where = f" (header on line {lineno})" if lineno else ""
    if len(rows) < 4:
        last = max(at for at, _ in rows.values())
        have = ", ".join(b for b in _ALPHABET if b in rows)
        lack = ", ".join(b for b in _ALPHABET if b not in rows)
        raise DataError(f"line {last}: motif {matrix_id} {name}{where} ends with {len(rows)} of its 4 rows "
                        f"({have}; {lack} missing): {_TRUNCATED}")
    try:
        return Motif(matrix_id, name, [rows[b][1] for b in _ALPHABET])
    except DataError as e:
        raise DataError(f"line {lineno or min(at for at, _ in rows.values())}: {e}") from None


def _parse_meme(lines: list[tuple[int, str]]) -> list[Motif]:
    """Motifs of a MEME (minimal) file: ``MOTIF ID [NAME]``, then ``letter-probability matrix: ... w= W``
    and ``W`` rows of four probabilities (A, C, G, T); counts are the probabilities times ``nsites``."""
    motifs: list[Motif] = []
    seen: dict[str, int] = {}
    version = False
    current: tuple[int, str, str] | None = None  # (MOTIF line, ID, name) of a motif still without its matrix
    it = iter(lines)
    for lineno, raw in it:
        line = raw.strip()
        if not line:
            continue
        words = line.split()
        if line.startswith("<"):
            raise DataError(f"line {lineno}: {line[:40]!r} looks like HTML or XML, not MEME motifs")
        if line.startswith("MEME version"):
            version = True
        elif not version:
            raise DataError(f"line {lineno}: a MEME file starts with 'MEME version', got {line[:40]!r}")
        elif words[0].startswith("ALPHABET"):
            alphabet = line.partition("=")[2].strip()
            if not line.startswith("ALPHABET=") or alphabet.upper() not in ("ACGT", "ACGU"):
                raise DataError(f"line {lineno}: {line[:60]!r}: only DNA (ALPHABET= ACGT) or RNA (ACGU) motifs "
                                "are read")
        elif words[0] == "MOTIF":
            if current is not None:
                raise DataError(f"line {current[0]}: motif {current[1]} {current[2]} has no letter-probability "
                                "matrix")
            if len(words) < 2:
                raise DataError(f"line {lineno}: a MOTIF line without a motif ID")
            if words[1] in seen:
                raise DataError(f"line {lineno}: motif ID {words[1]!r} repeats that of line {seen[words[1]]}; "
                                "IDs must be unique")
            seen[words[1]] = lineno
            current = (lineno, words[1], words[2] if len(words) > 2 else words[1])
        elif line.startswith("letter-probability matrix"):
            if current is None:
                raise DataError(f"line {lineno}: a letter-probability matrix outside a MOTIF")
            motifs.append(_meme_matrix(current, lineno, line, it))
            current = None
    if current is not None:
        raise DataError(f"line {current[0]}: motif {current[1]} {current[2]} has no letter-probability matrix: "
                        "the file is truncated")
    return motifs


def _meme_matrix(motif: tuple[int, str, str], lineno: int, line: str, it) -> Motif:
    """Read the rows after a ``letter-probability matrix:`` line from ``it`` (the file's numbered lines)."""
    at, matrix_id, name = motif
    who = f"motif {matrix_id} {name} (MOTIF line {at})"
    keys = dict(re.findall(r"(\w+)\s*=\s*(\S+)", line.partition(":")[2]))
    try:
        width = int(keys["w"]) if "w" in keys else None
        nsites = float(keys.get("nsites", 20))
        alength = int(keys.get("alength", 4))
    except ValueError:
        raise DataError(f"line {lineno}: {who}: w=, nsites= and alength= must be numbers, got {line!r}") from None
    if alength != 4 or (width is not None and width < 1) or not (np.isfinite(nsites) and nsites > 0):
        raise DataError(f"line {lineno}: {who}: needs alength= 4, w= >= 1 and a positive nsites=, got {line!r}")
    rows: list[list[float]] = []
    last = lineno
    while width is None or len(rows) < width:
        row_line, raw = next(it, (None, ""))
        values = raw.split()
        if row_line is None or not values:
            if width is None and rows:
                break
            got = f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
            raise DataError(f"line {last}: {who} ends with {got} but w= {width or '?'}: {_TRUNCATED}")
        if len(values) != 4:
            if width is None and rows:
                break
            raise DataError(f"line {row_line}: {who}: a matrix row has {len(values)} values; expected 4 "
                            "(A, C, G, T)")
        try:
            rows.append([float(v) for v in values])
        except ValueError:
            raise DataError(f"line {row_line}: {who}: {raw.strip()[:60]!r} is not four numbers") from None
        last = row_line
    try:
        return Motif(matrix_id, name, np.array(rows, dtype=np.float64).T * nsites)
    except DataError as e:
        raise DataError(f"line {at}: {e}") from None


def _from_bio(m, matrix_id: str, name: str) -> Motif:
    """A Motif from a Biopython motif (any of its readers)."""
    counts = np.array([list(m.counts[b]) for b in _ALPHABET], dtype=np.float64)
    return Motif(str(matrix_id), str(name), counts)


# -- JASPAR releases ------------------------------------------------------------------------------------------


def jaspar_motifs(
    *,
    release: int = 2016,
    collection: str = "CORE",
    tax_group: str | None = "vertebrates",
    names: Sequence[str] | None = None,
) -> list[Motif]:
    """Motifs of a JASPAR release from the SQLite databases packaged with ``pyjaspar`` (nothing is downloaded).

    The latest version of each matrix in the collection and taxonomic group is returned, as on JASPAR's
    non-redundant download pages (JASPAR 2016 CORE vertebrates: 519 motifs).

    Args:
        release: the JASPAR year; pyjaspar 4 ships 2014, 2016, 2018, 2020, 2022, 2024 and 2026.
        collection: the JASPAR collection (``"CORE"``, ``"UNVALIDATED"``, ...).
        tax_group: the taxonomic group (``"vertebrates"``, ``"insects"``, ...); None for all.
        names: keep only these factor names (case-sensitive JASPAR names such as ``"Gabpa"``), in this order;
            a name held by several matrices gives all of them.

    Returns:
        The motifs, sorted by matrix ID unless ``names`` orders them.

    Raises:
        DataError: the release is not packaged, or a name is not in the selection (the message lists close
            matches).
    """
    motifs = _jaspar_release(int(release), collection, tax_group)
    if names is None:
        return list(motifs)
    if isinstance(names, str):
        names = [names]
    by_name: dict[str, list[Motif]] = {}
    for m in motifs:
        by_name.setdefault(m.name, []).append(m)
    out: list[Motif] = []
    for name in names:
        if name not in by_name:
            close = difflib.get_close_matches(name, by_name, n=5, cutoff=0.6)
            close += [n for n in by_name if n.lower() == name.lower() and n not in close]
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise DataError(
                f"no motif named {name!r} in JASPAR {release} {collection} {tax_group or 'all groups'} "
                f"(names are case-sensitive){hint}"
            )
        out.extend(by_name[name])
    return out


@functools.lru_cache(maxsize=8)
def _jaspar_release(release: int, collection: str, tax_group: str | None) -> tuple[Motif, ...]:
    import sqlite3

    import pyjaspar

    key = f"JASPAR{release}"
    available = sorted(int(k.removeprefix("JASPAR")) for k in pyjaspar.jaspar_releases)
    if key not in pyjaspar.jaspar_releases:
        raise DataError(
            f"JASPAR release {release} is not packaged with pyjaspar {pyjaspar.__version__}; available: "
            f"{', '.join(map(str, available))} (or use fetch_jaspar(release, url=...))"
        )
    db = pyjaspar.jaspardb(release=key)
    try:
        record = db.fetch_motifs(collection=collection, tax_group=tax_group)
        motifs = [_from_bio(m, m.matrix_id, m.name) for m in record]
    except sqlite3.Error as e:
        raise DataError(f"the pyjaspar database of JASPAR {release} cannot be read: {e}") from e
    finally:
        db.conn.close()
    if not motifs:
        raise DataError(f"JASPAR {release} has no motifs in collection {collection!r} and tax group {tax_group!r}")
    return tuple(sorted(motifs, key=lambda m: _id_key(m.matrix_id)))


def _id_key(matrix_id: str) -> tuple:
    base, _, version = matrix_id.partition(".")
    return (base, int(version) if version.isdigit() else 0)


def fetch_jaspar(release: int, *, url: str | None = None, sha256: str | None = None) -> list[Motif]:
    """Download a JASPAR release's CORE vertebrates non-redundant PFMs into the data folder and read them.

    The file goes to ``data_dir("jaspar") / f"JASPAR{release}_CORE_vertebrates_non-redundant_pfms_jaspar.txt"``
    through :func:`robustlab.common.data.download` (atomic, retried). The download is kept only when it parses as
    a JASPAR file with at least one motif, so an error page or a truncated file is never cached. A copy already
    there is reused when it parses (and, when ``sha256`` is given, has that hash); one that does not parse is
    moved aside (``<name>.bad-<time>``, with a ``RuntimeWarning`` naming both paths) and downloaded again. JASPAR
    publishes no checksums, so pass ``sha256`` to pin the content.

    Args:
        release: the JASPAR year; :data:`JASPAR_URLS` holds the official addresses of 2016 to 2026.
        url: another address (a mirror, or ``file://`` for a local copy); required for other releases.
        sha256: the expected SHA-256 of the file.

    Returns:
        The motifs of the file, as :func:`read_motifs` gives them.

    Raises:
        DataError: no address is known for the release.
        DownloadError: the download failed, the checksum differs, or the file is not a JASPAR motif file (an
            HTML page, a truncated file: the message names the URL and the file, with the parse error).
    """
    from robustlab.common.data import data_dir, download

    release = int(release)
    if url is None:
        if release not in JASPAR_URLS:
            raise DataError(
                f"no download address is known for JASPAR {release} (known: {', '.join(map(str, JASPAR_URLS))}); "
                "pass url=..."
            )
        url = JASPAR_URLS[release]
    path = data_dir("jaspar") / f"JASPAR{release}_CORE_vertebrates_non-redundant_pfms_jaspar.txt"
    parsed: list[list[Motif]] = []

    def parse(file: Path) -> None:  # download's check of the new file (or of the copy already at path)
        motifs = read_motifs(file, format="jaspar")
        if not motifs:
            raise DataError(f"motif file {file} holds no JASPAR motifs")
        parsed.append(motifs)

    download(url, path, sha256=sha256, progress=False, validate=parse)
    return parsed[-1]
