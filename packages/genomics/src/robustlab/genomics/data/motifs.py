"""Transcription-factor motifs: a small ``Motif`` record, readers for JASPAR and MEME files, and JASPAR releases.

Three sources, one type:

- :func:`read_motifs` reads a JASPAR (``>ID NAME`` headers and ``A [ ... ]`` rows, or bare 4-row ``pfm``) or a
  MEME (minimal) motif file with Biopython's ``Bio.motifs``;
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
import io
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
    MEME (minimal), one starting with ``>`` is JASPAR (``>ID NAME`` then four rows, bracketed ``A [ ... ]`` or
    bare), and four rows of numbers alone are a single JASPAR ``pfm`` motif named after the file. For MEME files
    the name is the ``MOTIF`` line's second word (its first is the ID), and counts are the file's
    probabilities times ``nsites`` (not rounded to whole counts as Biopython's reader does, so that ``pwm()``
    gives back the file's probabilities).

    Args:
        path: the motif file.
        format: ``"jaspar"``, ``"pfm"`` or ``"meme"`` to skip the detection.

    Returns:
        The motifs in file order.

    Raises:
        DataError: the file is missing, unreadable, empty, or not in the format (the message names the file).
    """
    from Bio import motifs as bio_motifs

    path = Path(path)
    if not path.is_file():
        raise DataError(f"motif file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"motif file {path} cannot be read: {e}") from e
    fmt = format.lower() if format is not None else _detect_format(text)
    if fmt not in ("jaspar", "pfm", "meme"):
        raise DataError(f"motif file {path}: unknown format {fmt!r}; expected 'jaspar', 'pfm' or 'meme'")

    try:
        if fmt == "meme":
            record = bio_motifs.parse(io.StringIO(text), "minimal")
            names = re.findall(r"^MOTIF[ \t]+(\S+)(?:[ \t]+(\S+))?", text, flags=re.MULTILINE)
            probs = _meme_probabilities(text)
            if not len(names) == len(probs) == len(record):
                raise ValueError(f"{len(names)} MOTIF lines and {len(probs)} letter-probability matrices, but "
                                 f"{len(record)} motifs could be parsed")
            motifs = []
            for m, (mid, alt), p in zip(record, names, probs):
                if p.shape[1] != m.length:
                    raise ValueError(f"motif {mid}: {p.shape[1]} matrix rows but w= {m.length}")
                # Biopython rounds probability x nsites to whole counts; keep the file's probabilities instead.
                motifs.append(Motif(mid, alt or mid, p * m.num_occurrences))
        elif fmt == "jaspar":
            record = bio_motifs.parse(io.StringIO(text), "jaspar")
            headers = len(re.findall(r"^\s*>", text, flags=re.MULTILINE))
            if headers != len(record):
                raise ValueError(f"{headers} '>' headers but {len(record)} complete motifs (four rows each)")
            motifs = [_from_bio(m, m.matrix_id, m.name) for m in record]
        else:
            m = bio_motifs.read(io.StringIO(text), "pfm")
            motifs = [_from_bio(m, path.stem, path.stem)]
    except DataError as e:
        raise DataError(f"motif file {path}: {e}") from e
    except Exception as e:  # Biopython raises ValueError, KeyError, IndexError... on malformed input
        raise DataError(f"motif file {path} cannot be read as {fmt!r} motifs: {type(e).__name__}: {e}") from e
    if not motifs:
        raise DataError(f"motif file {path} holds no motifs (read as {fmt!r})")
    return motifs


def _meme_probabilities(text: str) -> list[np.ndarray]:
    """The letter-probability matrices of a MEME file, each ``(4, w)``, in file order."""
    out = []
    lines = iter(text.splitlines())
    for line in lines:
        if not line.startswith("letter-probability matrix"):
            continue
        rows = []
        for row in lines:
            words = row.split()
            if len(words) != 4:
                break
            rows.append([float(v) for v in words])
        out.append(np.array(rows, dtype=np.float64).reshape(-1, 4).T)
    return out


def _detect_format(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("MEME version"):
        return "meme"
    if first.startswith(">"):
        return "jaspar"
    return "pfm"


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
    through :func:`robustlab.common.data.download` (atomic, retried); a copy already there is reused (and
    re-checked when ``sha256`` is given). JASPAR publishes no checksums, so pass ``sha256`` to pin the content.

    Args:
        release: the JASPAR year; :data:`JASPAR_URLS` holds the official addresses of 2016 to 2026.
        url: another address (a mirror, or ``file://`` for a local copy); required for other releases.
        sha256: the expected SHA-256 of the file.

    Returns:
        The motifs of the file, as :func:`read_motifs` gives them.

    Raises:
        DataError: no address is known for the release, or the file is not a JASPAR motif file.
        DownloadError: the download failed or the checksum differs.
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
    download(url, path, sha256=sha256, progress=False)
    return read_motifs(path, format="jaspar")
