"""Real sequences as one-hot data sets: a FASTA file plus a label table, or BED intervals on a genome FASTA.

Both readers check what usually goes wrong with such inputs and say which file and record are at fault: ids
present in one file but not the other, duplicated ids, records without a sequence, sequences of different lengths
without ``pad_to``, characters outside the one-hot policy (:func:`robustlab.genomics.data.onehot.one_hot`),
intervals outside their chromosome, an HTML page or a binary file in place of the data. Files ending in ``.gz``
are decompressed on the fly.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustlab.common.errors import DataError
from robustlab.genomics.data.onehot import one_hot

__all__ = ["SequenceDataset", "read_bed_dataset", "read_fasta_dataset"]

_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}
_BED_FIELDS = {"name": 3, "score": 4}
_COMPLEMENT = str.maketrans("ACGTRYSWKMBDHVNacgtryswkmbdhvn", "TGCAYRSWMKVHDBNtgcayrswmkvhdbn")
_SHOW = 5  # how many offending ids an error message lists


@dataclass(frozen=True, eq=False)
class SequenceDataset:
    """One-hot sequences with their labels and record ids, in the order of the sequence file.

    Shape:
        x: ``(N, 4, L)`` float32 (channels A, C, G, T); y: ``(N, T)`` float32 with ``T = len(label_names)``
        (``T`` may be 0 when no labels were given).
    """

    x: np.ndarray
    y: np.ndarray
    ids: tuple[str, ...]
    label_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.x)

    def to_dataset(self):
        """A :class:`robustlab.common.data.ArrayDataset` of ``x`` and ``y``."""
        from robustlab.common.data import ArrayDataset

        return ArrayDataset(self.x, self.y)


def read_fasta_dataset(
    fasta: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    *,
    id_column: str = "id",
    label_columns: Sequence[str] | None = None,
    pad_to: int | None = None,
    ambiguity: str = "uniform",
) -> SequenceDataset:
    """Read a FASTA file (Biopython ``SeqIO``) and a label table into one-hot sequences and targets.

    The table is CSV (``.csv``) or tab-separated (``.tsv``, ``.tab``, ``.txt``) with a header row; its
    ``id_column`` holds the FASTA record ids (the first word of each ``>`` line) and must list every record
    exactly once. Rows keep the FASTA order.

    Args:
        fasta: the sequences.
        labels: the label table; None for unlabelled sequences (``y`` then has 0 columns).
        id_column: the table's id column.
        label_columns: the numeric columns that form ``y``, in this order; default all columns but the id.
        pad_to: pad shorter sequences to this length with zero columns (see ``one_hot``); default all sequences
            must have the same length.
        ambiguity: the one-hot policy for IUPAC codes, ``"uniform"`` or ``"error"`` (see ``one_hot``).

    Returns:
        A :class:`SequenceDataset`.

    Raises:
        DataError: the file is not FASTA text (an HTML page, a binary or non-UTF-8 file, text before the first
            ``>`` header), a record without an id or a sequence, duplicated ids (named), ids in the table but not
            in the FASTA file or the other way round (named, saying which), ragged lengths without ``pad_to``
            (the first record whose length differs and both lengths), an invalid character (record id, position,
            character), a missing or non-numeric label column. The message names the file.
    """
    fasta = Path(fasta)
    ids, seqs = _read_fasta(fasta, "FASTA file")
    _check_unique(ids, f"FASTA file {fasta}")
    if labels is None:
        if label_columns:
            raise ValueError("label_columns needs a labels table")
        y, names = np.zeros((len(ids), 0), dtype=np.float32), ()
    else:
        y, names = _labels_for(ids, Path(labels), id_column, label_columns, f"FASTA file {fasta}")
    return SequenceDataset(_encode(seqs, ids, str(fasta), pad_to, ambiguity, "read_fasta_dataset"), y, tuple(ids),
                           names)


def read_bed_dataset(
    bed: str | os.PathLike,
    genome_fasta: str | os.PathLike,
    *,
    labels: str | os.PathLike | None = None,
    id_column: str = "id",
    label_columns: Sequence[str | int] | None = None,
    pad_to: int | None = None,
    ambiguity: str = "uniform",
) -> SequenceDataset:
    """Cut BED intervals out of a genome FASTA and one-hot encode them, with labels from the BED or a table.

    BED lines are ``chrom start end [name [score [strand ...]]]`` (0-based, end exclusive; ``track``,
    ``browser`` and ``#`` lines are skipped). An interval on strand ``-`` is reverse-complemented. A record's id
    is its name (4th column) when there is one other than ``.`` and it is not a label column, else
    ``chrom:start-end``.

    Labels come from, in this order of precedence: a ``labels`` table keyed by those ids (as in
    :func:`read_fasta_dataset`); BED columns named in ``label_columns`` (``"name"``, ``"score"``, or 0-based
    column numbers such as 6 for the first column after strand); by default the score column when every line
    has one, else none.

    Args:
        bed: the intervals.
        genome_fasta: the genome, one record per chromosome (read lazily, one chromosome at a time, when not
            compressed).
        labels: an optional label table (CSV/TSV) keyed by record id.
        id_column: the table's id column.
        label_columns: table columns, or BED columns when there is no table.
        pad_to: pad shorter intervals with zero columns (see ``one_hot``).
        ambiguity: the one-hot policy for IUPAC codes (see ``one_hot``).

    Returns:
        A :class:`SequenceDataset` in BED order.

    Raises:
        DataError: a malformed BED line, an unknown chromosome, an interval outside its chromosome (the message
            names the BED line, the interval and the chromosome length), and every error of
            :func:`read_fasta_dataset`.
    """
    bed, genome_fasta = Path(bed), Path(genome_fasta)
    rows = _read_bed(bed)
    if not rows:
        raise DataError(f"BED file {bed} holds no intervals")
    if labels is None and label_columns is None:
        label_columns = ["score"] if all(len(r[1]) > 4 for r in rows) else []
    use_name = labels is None and "name" in (label_columns or ())
    ids = []
    for _, f in rows:
        name = f[3] if len(f) > 3 and f[3] != "." and not use_name else None
        ids.append(name or f"{f[0]}:{f[1]}-{f[2]}")
    _check_unique(ids, f"BED file {bed}")

    seqs = _cut(bed, rows, genome_fasta)
    if labels is not None:
        y, names = _labels_for(ids, Path(labels), id_column, label_columns, f"BED file {bed}")
    else:
        y, names = _bed_labels(bed, rows, label_columns)
    where = f"{bed} (sequences cut from genome FASTA {genome_fasta})"
    return SequenceDataset(_encode(seqs, ids, where, pad_to, ambiguity, "read_bed_dataset"), y, tuple(ids), names)


# -- helpers --------------------------------------------------------------------------------------------------


def _open_text(path: Path):
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # -sig: tables saved by spreadsheets start with a BOM


@contextlib.contextmanager
def _decoding(path: Path, what: str):
    """Bytes that are not UTF-8 text or not a gzip stream become a DataError naming the file."""
    try:
        yield
    except UnicodeDecodeError as e:
        raise DataError(f"{what} {path} cannot be read: it is not UTF-8 text ({e.reason}: "
                        f"{e.object[e.start:e.start + 1]!r})") from None
    except (OSError, EOFError, zlib.error) as e:  # a bad gzip stream: BadGzipFile, EOFError, zlib.error
        raise DataError(f"{what} {path} cannot be read: {type(e).__name__}: {e}") from None


def _first_header(lines, path: Path, what: str) -> None:
    """Check that the first non-blank line of ``lines`` is a ``>`` header (Biopython would skip anything before it).

    Raises DataError for an empty file, an HTML page, or text before the first header.
    """
    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if line.startswith(">"):
            return
        if text.startswith("<"):
            raise DataError(f"{what} {path} is an HTML or XML page, not sequences (a failed download?): "
                            f"{text[:60]!r}")
        raise DataError(f"{what} {path}, line {lineno}: {text[:60]!r} comes before the first '>' header (each "
                        "record starts with a '>id' line); the file is not FASTA or lost its first header")
    raise DataError(f"{what} {path} holds no records (no line starts with '>')")


def _read_fasta(path: Path, what: str, *, allow_empty: bool = False) -> tuple[list[str], list[str]]:
    """Ids (first word of each ``>`` line) and sequences of a FASTA file, read with Biopython's parser.

    ``allow_empty`` lets records without a sequence through.
    """
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    with _decoding(path, what):
        with _open_text(path) as handle:
            _first_header(handle, path, what)
        with _open_text(path) as handle:  # streamed: a genome is not held twice
            records = [(title.split(None, 1)[0] if title.strip() else "", seq.replace("\t", ""))  # as SeqIO.parse
                       for title, seq in SimpleFastaParser(handle)]
    if not records:
        raise DataError(f"{what} {path} holds no records (no line starts with '>')")
    nameless = [n for n, (i, _) in enumerate(records) if not i]
    if nameless:
        raise DataError(f"{what} {path}: record {nameless[0]} (0-based) has a '>' header without an id")
    empty = [i for i, seq in records if not seq]
    if empty and not allow_empty:
        one = len(empty) == 1
        raise DataError(f"{what} {path}: record{'' if one else 's'} {_list(empty)} {'has an' if one else 'have'} "
                        f"empty sequence{'' if one else 's'} (a '>' header with no sequence lines after it: a "
                        "truncated file?)")
    return [r[0] for r in records], [r[1] for r in records]


def _check_unique(ids: Sequence[str], where: str) -> None:
    seen: set[str] = set()
    dups: list[str] = []
    for i in ids:
        if i in seen and i not in dups:
            dups.append(i)
        seen.add(i)
    if dups:
        raise DataError(f"{where} has duplicated ids: {_list(dups)}")


def _list(items: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in items[:_SHOW])
    return shown + (f" and {len(items) - _SHOW} more" if len(items) > _SHOW else "")


def _encode(seqs: list[str], ids: list[str], where: str, pad_to: int | None, ambiguity: str, api: str) -> np.ndarray:
    if pad_to is None and seqs:
        j = next((j for j, seq in enumerate(seqs) if len(seq) != len(seqs[0])), None)
        if j is not None:  # one_hot's own hint names its pad_to; say how readers of this file can fix it
            cli = ("On the command line (robustlab genomics attribute --fasta), which has no padding option, the "
                   "sequences must share one length; in Python" if api == "read_fasta_dataset" else
                   "The intervals must share one length, or in Python")
            raise DataError(
                f"{where}: sequences differ in length: record {ids[j]!r} (index {j}) has length {len(seqs[j])} but "
                f"record {ids[0]!r} (index 0) has length {len(seqs[0])}. {cli}, {api}(..., pad_to=L) pads "
                "shorter ones to length L with zero columns"
            )
    try:
        return one_hot(seqs, ambiguity=ambiguity, pad_to=pad_to, ids=ids)
    except DataError as e:
        raise DataError(f"{where}: {e}") from None


def _read_table(path: Path, id_column: str) -> tuple[list[str], list[dict[str, str]], list[str], int]:
    """A CSV/TSV file's header, rows (as dicts), ids, and the line number of its first row."""
    suffix = path.suffixes[-2] if path.suffix == ".gz" and len(path.suffixes) > 1 else path.suffix
    if suffix.lower() not in _DELIMITERS:
        raise DataError(f"label table {path}: unknown type {suffix!r}; expected one of {', '.join(_DELIMITERS)}")
    try:
        with _open_text(path) as f:
            reader = csv.DictReader(f, delimiter=_DELIMITERS[suffix.lower()])
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (csv.Error, UnicodeDecodeError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"label table {path} cannot be read: {type(e).__name__}: {e}") from e
    if id_column not in header:
        raise DataError(f"label table {path} has no id column {id_column!r}; its columns are {header}")
    return header, rows, [r[id_column] for r in rows], 2  # data starts on line 2, after the header


def _labels_for(
    ids: list[str], path: Path, id_column: str, label_columns, where: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    header, rows, table_ids, first_line = _read_table(path, id_column)
    _check_unique(table_ids, f"label table {path}")
    columns = [c for c in header if c != id_column] if label_columns is None else list(label_columns)
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"label table {path} has no column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(repr, missing))}; its columns are {header}")
    known = set(ids)
    in_table = set(table_ids)
    not_in_seqs = [i for i in table_ids if i not in known]
    if not_in_seqs:
        raise DataError(f"{len(not_in_seqs)} id(s) of label table {path} are not in {where}: {_list(not_in_seqs)}")
    not_in_table = [i for i in ids if i not in in_table]
    if not_in_table:
        raise DataError(
            f"{len(not_in_table)} id(s) of {where} are not in label table {path}: {_list(not_in_table)}"
        )
    line_of = {i: first_line + n for n, i in enumerate(table_ids)}
    by_id = dict(zip(table_ids, rows))
    y = np.empty((len(ids), len(columns)), dtype=np.float32)
    for r, i in enumerate(ids):
        for c, col in enumerate(columns):
            y[r, c] = _number(by_id[i][col], f"label table {path}, line {line_of[i]} (id {i!r}), column {col!r}")
    return y, tuple(columns)


def _number(value: str | None, where: str) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{where}: {value!r} is not a number") from None
    if not np.isfinite(v):
        raise DataError(f"{where}: {value!r} is not a finite number")
    return v


def _read_bed(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each interval line, with start/end checked."""
    rows = []
    lineno = 0
    try:
        with _open_text(path) as f:
            for lineno, line in enumerate(f, start=1):
                rows += _bed_line(path, lineno, line, first=not rows)
    except UnicodeDecodeError as e:
        raise DataError(f"BED file {path} cannot be read after line {lineno}: it is not UTF-8 text ({e.reason}: "
                        f"{e.object[e.start:e.start + 1]!r})") from None
    except (OSError, EOFError, zlib.error) as e:  # a bad gzip stream
        raise DataError(f"BED file {path} cannot be read after line {lineno}: {type(e).__name__}: {e}") from None
    return rows


def _bed_line(path: Path, lineno: int, line: str, first: bool) -> list[tuple[int, list[str]]]:
    """``[(lineno, fields)]`` of one BED line, ``[]`` for a blank, comment, track or browser line."""
    line = line.rstrip("\r\n")
    if not line.strip() or line.startswith(("#", "track", "browser")):
        return []
    if first and line.lstrip().startswith("<"):
        raise DataError(f"BED file {path} is an HTML or XML page, not intervals (a failed download?): "
                        f"{line.strip()[:60]!r}")
    fields = line.split("\t") if "\t" in line else line.split()
    if len(fields) < 3:
        raise DataError(f"BED file {path}, line {lineno}: expected at least 3 columns (chrom start end), "
                        f"got {len(fields)}")
    try:
        start, end = int(fields[1]), int(fields[2])
    except ValueError:
        raise DataError(f"BED file {path}, line {lineno}: start and end must be integers, got "
                        f"{fields[1]!r} and {fields[2]!r}") from None
    if start < 0 or end <= start:
        raise DataError(f"BED file {path}, line {lineno}: interval {fields[0]}:{start}-{end} is empty or "
                        "negative (need 0 <= start < end)")
    if len(fields) > 5 and fields[5] not in ("+", "-", "."):
        raise DataError(
            f"BED file {path}, line {lineno}: strand must be '+', '-' or '.', got {fields[5]!r}"
        )
    return [(lineno, fields)]


def _cut(bed: Path, rows: list[tuple[int, list[str]]], genome: Path) -> list[str]:
    """The sequence of every interval, reading each chromosome once."""
    from Bio import SeqIO

    what = "genome FASTA"
    if not genome.is_file():
        raise DataError(f"{what} {genome} does not exist")
    if genome.suffix == ".gz":
        ids, seqs = _read_fasta(genome, what, allow_empty=True)
        _check_unique(ids, f"{what} {genome}")
        index = dict(zip(ids, seqs))
    else:
        with _decoding(genome, what), _open_text(genome) as handle:
            _first_header(handle, genome, what)
        try:
            index = SeqIO.index(str(genome), "fasta")
        except Exception as e:  # Biopython's ValueError on a duplicated record id, ...
            raise DataError(f"{what} {genome} cannot be read: {type(e).__name__}: {e}") from e
    if not len(index):
        raise DataError(f"{what} {genome} holds no records (no line starts with '>')")
    try:
        out: list[str | None] = [None] * len(rows)
        by_chrom: dict[str, list[int]] = {}
        for n, (_, f) in enumerate(rows):
            by_chrom.setdefault(f[0], []).append(n)
        names = list(index)  # iterating SeqIO.index parses nothing; `chrom in index` would parse the record
        known = set(names)
        for chrom, members in by_chrom.items():
            if chrom not in known:
                lineno = rows[members[0]][0]
                raise DataError(
                    f"BED file {bed}, line {lineno}: chromosome {chrom!r} is not in genome FASTA {genome} "
                    f"(it has {_list(names)})"
                )
            try:  # SeqIO.index parses a record when it is asked for
                seq = index[chrom]
                seq = seq if isinstance(seq, str) else str(seq.seq)
            except Exception as e:  # bytes that are not UTF-8, ...
                raise DataError(f"{what} {genome} cannot be read at chromosome {chrom!r}: "
                                f"{type(e).__name__}: {e}") from e
            for n in members:
                lineno, f = rows[n]
                start, end = int(f[1]), int(f[2])
                if end > len(seq):
                    raise DataError(f"BED file {bed}, line {lineno}: interval {chrom}:{start}-{end} lies outside "
                                    f"chromosome {chrom!r} of length {len(seq)} in {genome}")
                s = seq[start:end]
                out[n] = s.translate(_COMPLEMENT)[::-1] if len(f) > 5 and f[5] == "-" else s
    finally:
        if hasattr(index, "close"):
            index.close()
    return out  # type: ignore[return-value]


def _bed_labels(bed: Path, rows, label_columns) -> tuple[np.ndarray, tuple[str, ...]]:
    columns = list(label_columns or [])
    positions = []
    for c in columns:
        if isinstance(c, int) and not isinstance(c, bool):
            if c < 3:
                raise DataError(f"BED column {c} is chrom/start/end, not a label column")
            positions.append(c)
        elif c in _BED_FIELDS:
            positions.append(_BED_FIELDS[c])
        else:
            raise DataError(f"unknown BED label column {c!r}; use 'name', 'score' or a 0-based column number >= 3")
    y = np.empty((len(rows), len(columns)), dtype=np.float32)
    for r, (lineno, f) in enumerate(rows):
        for c, (col, pos) in enumerate(zip(columns, positions)):
            if pos >= len(f):
                raise DataError(f"BED file {bed}, line {lineno}: has {len(f)} columns, no label column {col!r}")
            y[r, c] = _number(f[pos], f"BED file {bed}, line {lineno}, column {col!r}")
    return y, tuple(str(c) for c in columns)
