"""Fuzzing file readers with Hypothesis: bad input gives a result or a robustlab error that names the file.

The contract every robustlab reader keeps: whatever bytes lie in its file, it returns a valid result or raises
one of the project's errors (:class:`~robustlab.common.errors.RobustlabError` subclasses) whose message names
the file. A ``KeyError`` from deep inside a parser, a ``UnicodeDecodeError``, a zlib error or an error message
that does not say which file is at fault breaks it. This module holds the pieces a test needs to check that:

- :func:`mutations`: a strategy of bad files derived from a valid one: truncated at any point, a flipped byte,
  wrong magic (first bytes replaced), a line deleted, duplicated or replaced, a record (block of lines)
  duplicated, the header line replaced, NaN, infinities or out-of-range values written over a number, CRLF line
  ends, and every case of :func:`garbage`; optionally ``None`` for a missing file (a companion file);
- :func:`garbage`: files that are no format at all: empty, blank, an HTML error page (what a failed download
  often leaves behind), random bytes, a gzip or zip magic number followed by junk;
- :func:`array_mutations`: for readers of arrays (NPZ, signals, images): NaN or infinite values, a flat
  signal, an empty or truncated array, a field dropped, a wrong dtype or shape, indices beyond the end;
- :func:`check_reader`: calls the reader and fails, with the input shown, when anything else escapes or the
  error does not name the file; :func:`write_input` writes (or removes) the file under test;
- :func:`fuzz_settings`: Hypothesis settings for reader fuzzing (no deadline, no example database; Hypothesis
  still keeps a cache of its own under ``$HYPOTHESIS_STORAGE_DIRECTORY``, which robustlab's test suite points
  at a temporary folder).

Hypothesis is imported when a strategy is built, not when this module is imported.

A domain package fuzzes its readers with the same pieces; each class of bad input has its strategy:

==========================================  ==========================================================
bad input                                   strategy
==========================================  ==========================================================
corrupt or foreign header                   ``mutations(valid)`` (header line replaced, bytes changed)
truncated or missing companion file         ``mutations(companion, missing=True)`` on the companion
an HTML page instead of data                ``garbage()`` / ``HTML_ERROR_PAGE`` (also in ``mutations``)
wrong magic number                          ``mutations(valid)`` (first bytes replaced), ``garbage()``
NaN or flat signals                         ``array_mutations(arrays)``; NaN over numbers in text files
annotations beyond the signal's end         ``array_mutations`` (``2**40``, negative); 99999999999 in text
duplicated records or ids                   ``mutations(valid)`` (a line or block of lines written twice)
==========================================  ==========================================================

For instance a WFDB record (``100.hea`` and its signal file ``100.dat``) is fuzzed one file at a time, each
test naming the file it breaks; the reader must say which of the two is at fault::

    @fuzz_settings(max_examples=60)
    @given(data=mutations(VALID_HEA))
    def test_wfdb_header_fuzzed(folder, data):  # folder: a module-scoped tmp_path_factory.mktemp(...)
        write_input(folder / "100.dat", VALID_DAT)
        check_reader(read_wfdb, write_input(folder / "100.hea", data))

    @fuzz_settings(max_examples=60)
    @given(data=mutations(VALID_DAT, missing=True))
    def test_wfdb_signal_fuzzed(folder, data):
        write_input(folder / "100.hea", VALID_HEA)
        check_reader(lambda dat: read_wfdb(folder / "100.hea"), write_input(folder / "100.dat", data))

A miniSEED or image reader starts the same way from a small valid file written by the test; a reader of arrays
gets ``array_mutations`` written back in its format (``npz_bytes`` for NPZ). The example below fuzzes a toy text
format and runs as a doctest.

Examples::

    >>> import math, tempfile
    >>> from pathlib import Path
    >>> from hypothesis import given
    >>> from robustlab.common.errors import DataError
    >>> from robustlab.common.testing.fuzz import check_reader, fuzz_settings, mutations, write_input
    >>> def read_signal(path):  # header "rate=<Hz>" then one sample a line
    ...     try:
    ...         head, *rows = Path(path).read_text(encoding="ascii").splitlines()
    ...         rate, values = float(head.removeprefix("rate=")), [float(r) for r in rows]
    ...     except (OSError, UnicodeDecodeError, ValueError) as e:
    ...         raise DataError(f"signal file {path} cannot be read: {e}") from None
    ...     if not head.startswith("rate=") or not rate > 0 or not values:
    ...         raise DataError(f"signal file {path}: bad header {head!r} or no samples")
    ...     if not all(map(math.isfinite, values)):
    ...         raise DataError(f"signal file {path}: NaN or infinite samples")
    ...     return rate, values
    >>> folder = Path(tempfile.mkdtemp())
    >>> @fuzz_settings(max_examples=30)
    ... @given(data=mutations(b"rate=360\\n0.5\\n-1.25\\n", missing=True))
    ... def test_read_signal(data):
    ...     write_input(folder / "rec.txt", data)
    ...     check_reader(read_signal, folder / "rec.txt")
    >>> test_read_signal()
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "HTML_ERROR_PAGE",
    "array_mutations",
    "check_reader",
    "fuzz_settings",
    "garbage",
    "mutations",
    "npz_bytes",
    "write_input",
]

HTML_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
    b"<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>\n"
)
"""What a failed download often saves in place of the data."""

# Written over a number of a text file: not a number, infinities, overflow, negative, zero, out of range.
_BAD_NUMBERS = (b"nan", b"NaN", b"inf", b"-inf", b"1e999", b"-1", b"0", b"-0.0", b"99999999999", b"1.5", b"",
                b"1,5", b"0x10")
_NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_PREVIEW = 300  # how many bytes of the input an assertion message shows


def fuzz_settings(max_examples: int = 50, **kwargs: Any):
    """Hypothesis ``settings`` for reader fuzzing: no deadline (file I/O is slow on a shared machine), no example
    database (failing examples are not replayed from disk), failing examples printed with a reproduction blob. ``kwargs`` override or add settings."""
    from hypothesis import HealthCheck, settings

    options = {"max_examples": max_examples, "deadline": None, "database": None, "print_blob": True,
               "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
    return settings(**{**options, **kwargs})


def garbage():
    """A strategy of files that are no format at all: empty, blank, an HTML error page, UTF-8 text, random
    bytes, NUL bytes, a byte-order mark alone, a gzip or zip magic number followed by junk."""
    from hypothesis import strategies as st

    return st.one_of(
        st.sampled_from([b"", b"\n", b" \t\r\n\n", HTML_ERROR_PAGE, b"\x00" * 64, b"\xef\xbb\xbf",
                         b"\xff\xfe\x00\x00"]),
        st.binary(max_size=512),
        st.text(max_size=200).map(lambda s: s.encode("utf-8")),
        st.binary(max_size=64).map(lambda b: b"\x1f\x8b\x08\x00" + b),  # gzip magic, no valid stream
        st.binary(max_size=64).map(lambda b: b"PK\x03\x04" + b),  # zip magic (NPZ, torch checkpoints)
    )


def mutations(valid: bytes, *, missing: bool = False):
    """A strategy of bad files derived from the valid file ``valid``: one mutation each (see the module's list).

    Args:
        valid: the bytes of a small valid file.
        missing: also draw ``None``, a missing file (pass the draw to :func:`write_input`).
    """
    from hypothesis import strategies as st

    n = len(valid)
    lines = valid.splitlines(keepends=True)
    nl = len(lines)
    strategies = [
        st.integers(0, max(n - 1, 0)).map(lambda k: valid[:k]),  # truncated
        st.binary(min_size=1, max_size=8).map(lambda b: b + valid[len(b):]),  # wrong magic / first bytes
        garbage(),
    ]
    if n:
        strategies.append(st.tuples(st.integers(0, n - 1), st.integers(0, 255)).map(  # one byte changed
            lambda t: valid[: t[0]] + bytes([t[1]]) + valid[t[0] + 1:]))
    if nl:
        line = st.integers(0, nl - 1)
        junk_line = st.one_of(st.sampled_from([b"\n", b"#\n", HTML_ERROR_PAGE]),
                              st.text(max_size=40).map(lambda s: s.encode("utf-8") + b"\n"))
        strategies += [
            line.map(lambda i: b"".join(lines[:i] + lines[i + 1:])),  # a line deleted
            line.map(lambda i: b"".join(lines[: i + 1] + lines[i:])),  # a line duplicated
            st.tuples(line, junk_line).map(lambda t: b"".join(lines[: t[0]] + [t[1]] + lines[t[0]:])),  # inserted
            junk_line.map(lambda j: b"".join([j] + lines[1:])),  # header line replaced
            st.tuples(line, line).map(lambda t: _duplicate_block(lines, *sorted(t))),  # a record duplicated
            st.just(valid.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")),  # CRLF line ends
        ]
    spans = [m.span() for m in _NUMBER.finditer(valid)]
    if spans:
        strategies.append(st.tuples(st.sampled_from(spans), st.sampled_from(_BAD_NUMBERS)).map(
            lambda t: valid[: t[0][0]] + t[1] + valid[t[0][1]:]))  # NaN, inf, overflow... over a number
    out = st.one_of(*strategies)
    return st.one_of(st.none(), out) if missing else out


def _duplicate_block(lines: list[bytes], i: int, j: int) -> bytes:
    """Lines ``i..j`` written twice in a row (a duplicated record: a FASTA entry, a motif, an annotation)."""
    block = lines[i: j + 1]
    if block and not block[-1].endswith(b"\n"):
        block = block[:-1] + [block[-1] + b"\n"]
    return b"".join(lines[: j + 1] + ([b"\n"] if not lines[j].endswith(b"\n") else []) + block + lines[j + 1:])


def array_mutations(arrays: Mapping[str, Any]):
    """A strategy of bad array sets derived from valid arrays (``{name: numpy array}``), one field changed:
    NaN or infinite values, a flat (constant) array, emptied or truncated along its first axis, dropped, cast to
    strings or to another numeric dtype, flattened, or (integer fields, e.g. annotation sample indices) a value
    beyond any signal's end or negative."""
    import numpy as np
    from hypothesis import strategies as st

    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    names = sorted(arrays)

    def mutate(args):
        name, how, where = args
        a = arrays[name]
        out = dict(arrays)
        flat = a.reshape(-1)
        pos = where % flat.size if flat.size else 0
        numeric = a.dtype.kind in "biufc" and flat.size > 0
        if how == "drop":
            del out[name]
        elif how in ("empty", "truncate"):
            rows = a if a.ndim else flat
            out[name] = rows[: 0 if how == "empty" else max(len(rows) - 1, 0)]
        elif how == "flatten":
            out[name] = flat
        elif how == "strings":
            out[name] = a.astype(str)
        elif how == "flat" and flat.size:
            out[name] = np.full_like(a, flat[0])
        elif how in ("nan", "inf", "-inf") and numeric:
            b = flat.astype(a.dtype if a.dtype.kind in "fc" else np.float64)
            b[pos] = float(how)
            out[name] = b.reshape(a.shape)
        elif how in ("beyond", "negative") and numeric and a.dtype.kind != "c":
            b = flat.astype(np.int64 if a.dtype.kind in "biu" else a.dtype)
            b[pos] = 2**40 if how == "beyond" else -(2**40)
            out[name] = b.reshape(a.shape)
        elif how == "float16" and numeric:
            out[name] = a.astype(np.float16)
        else:
            out[name] = a.reshape(1, *a.shape)  # an extra axis
        return out

    hows = ["drop", "empty", "truncate", "flatten", "strings", "flat", "nan", "inf", "-inf", "beyond", "negative",
            "float16", "extra axis"]
    return st.tuples(st.sampled_from(names), st.sampled_from(hows), st.integers(0, 2**31)).map(mutate)


def npz_bytes(arrays: Mapping[str, Any], *, compressed: bool = True) -> bytes:
    """The bytes of an NPZ file of ``arrays`` (to feed :func:`array_mutations` to an NPZ reader)."""
    import numpy as np

    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def write_input(path: str | os.PathLike, data: bytes | None) -> Path:
    """Write ``data`` to ``path`` (replacing what is there); ``None`` removes the file (a missing file)."""
    path = Path(path)
    if data is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(data)
    return path


def check_reader(
    read: Callable[[Path], Any],
    path: str | os.PathLike,
    *,
    errors: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    names: tuple[str, ...] | None = None,
) -> Any:
    """Call ``read(path)``; it must return, or raise one of ``errors`` whose message names the file.

    Args:
        read: the reader, called with ``path`` (wrap other arguments in a lambda; to fuzz a companion file,
            pass the companion's path and let the lambda call the reader with the main file).
        path: the file under test.
        errors: the errors allowed to escape; default :class:`~robustlab.common.errors.RobustlabError`.
        names: strings of which the message must hold one; default the path and the file name.

    Returns:
        The reader's result, or None when it raised an allowed error.

    Raises:
        AssertionError: another exception escaped, or the message does not name the file; the message shows
            the start of the input, and the original exception is chained (``from``) so that Hypothesis tells
            distinct failures apart and shrinks each.
    """
    if errors is None:
        from robustlab.common.errors import RobustlabError

        errors = RobustlabError
    path = Path(path)
    names = names if names is not None else (str(path), path.name)
    who = getattr(read, "__qualname__", repr(read))
    try:
        return read(path)
    except errors as e:
        msg = str(e)
        if not any(name in msg for name in names):
            raise AssertionError(f"{who} raised {type(e).__name__} without naming {path.name}: {msg}\n"
                                 f"{_describe(path)}") from e
        return None
    except Exception as e:
        raise AssertionError(f"{who} let {type(e).__name__} escape on {path.name}: {e}\n{_describe(path)}") from e


def _describe(path: Path) -> str:
    """The input, shortened, for an assertion message."""
    if not path.exists():
        return "input: (missing file)"
    if not path.is_file():
        return f"input: {path} (not a plain file)"
    data = path.read_bytes()
    more = f" ... ({len(data)} bytes)" if len(data) > _PREVIEW else ""
    return f"input: {data[:_PREVIEW]!r}{more}"
