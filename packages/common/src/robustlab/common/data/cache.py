"""Caches of preprocessed data sets: a key from the source files and the parameters, and load-or-build.

A domain loader (MIT-BIH beats, PNW traces, ...) keys its cached arrays by the files they were built from (name,
size, modification time) and the parameters of the build, so that a changed file or parameter builds a new entry,
and reads an entry back only when it is whole (the domain's ``load`` raises
:class:`~robustlab.common.errors.DataError` otherwise; the entry is then built again).

Examples::

    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "a.dat").write_bytes(b"123")
    >>> key = fingerprint(root, ["a.dat"], version=1, params={"rate": 20})
    >>> len(key), key == fingerprint(root, ["a.dat"], version=1, params={"rate": 40})
    (20, False)
    >>> built = []
    >>> def build():
    ...     built.append(1)
    ...     return "data"
    >>> path = root / f"set-{key}.txt"
    >>> for _ in range(2):
    ...     value = load_or_build(path, load=lambda p: p.read_text(), build=build,
    ...                           save=lambda v, p: p.write_text(v), what="toy set")
    >>> value, len(built)
    ('data', 1)
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from robustlab.common.errors import DataError

__all__ = ["fingerprint", "load_or_build"]

T = TypeVar("T")


def fingerprint(root: str | os.PathLike, names: Iterable[str], **extra: Any) -> str:
    """A 20-character hash of the files ``root / name`` (name, size, modification time in ns) and of ``extra``
    (JSON-serialisable values, e.g. a cache version and the build parameters).

    Raises:
        FileNotFoundError: a file is missing.
    """
    files = []
    for name in names:
        st = (Path(root) / name).stat()
        files.append([str(name), st.st_size, st.st_mtime_ns])
    blob = json.dumps({**extra, "files": files}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_or_build(path: str | os.PathLike | None, *, load: Callable[[Path], T], build: Callable[[], T],
                  save: Callable[[T, Path], Any], what: str) -> T:
    """``load(path)`` when the cache entry is there and reads; otherwise ``build()``, saved with ``save(value,
    path)`` (which should write atomically) unless ``path`` is None.

    An entry that does not read (``load`` raises :class:`~robustlab.common.errors.DataError`) is built again, with a
    ``RuntimeWarning`` naming it.
    """
    if path is not None:
        path = Path(path)
        if path.is_file():
            try:
                return load(path)
            except DataError as e:
                warnings.warn(f"the cached {what} {path} does not read ({e}); building it again", RuntimeWarning,
                              stacklevel=3)
    value = build()
    if path is not None:
        save(value, path)
    return value
