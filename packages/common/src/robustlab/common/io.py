"""Atomic file writes: a temporary file in the target folder, flushed, then renamed over the target."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_path", "atomic_write", "atomic_write_text", "atomic_write_json", "read_npz", "unwritable_reason"]


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path next to ``path`` for the block to write; renamed over ``path`` when the block succeeds.

    For writers that take a path rather than a file object (``fig.savefig(tmp)``). If the block raises, the
    temporary file is removed and ``path`` keeps its previous content.

    Args:
        path: the final file.
        suffix: the temporary file's suffix; writers that infer the format from it need the real one (".png").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are ordinary files
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(f)`` on a temporary file next to ``path``, then rename it to ``path``.

    A reader never sees a half-written file and a crash leaves the previous content intact.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def unwritable_reason(path: str | os.PathLike, *, folder: bool) -> str | None:
    """Why ``path`` cannot be written (None when it can), without creating anything.

    Args:
        path: a folder to create or fill (``folder=True``), or a file to create or replace.
        folder: what ``path`` is meant to be.

    Returns:
        A message naming the path and what is wrong: an existing file where a folder is meant (or the reverse), a
        file among its parents, or a folder this process may not write into.
    """
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            return f"{path} is a file; expected a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder; expected a file"
    target = path if folder else path.parent
    probe = target
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{path} cannot be created: {probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{path} cannot be written: the folder {probe} is not writable"
    return None


def read_npz(path: str | os.PathLike, *, required: tuple[str, ...] = (), what: str = "NPZ file") -> dict[str, Any]:
    """Every array of an NPZ file, read without unpickling (``allow_pickle=False``).

    Args:
        path: the file.
        required: fields that must be present.
        what: what the file should be, for messages ("attributions file").

    Raises:
        DataError: the file is missing, not an NPZ archive (an HTML page, another format, truncated), holds
            pickled objects, or lacks a required field. The message names the file and the field.
    """
    import zipfile

    import numpy as np

    from robustlab.common.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise DataError(f"{path} is a single .npy array, not an {what} (an NPZ archive of named arrays)")
            data = {k: z[k] for k in z.files}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, TypeError, RuntimeError) as e:
        with open(path, "rb") as f:
            head = f.read(16)
        kind = "empty" if not head else f"not an NPZ archive (it starts with {head!r})"
        if head.startswith(b"PK"):
            kind = "a damaged NPZ archive"
        if "pickle" in str(e).lower():
            kind = "an NPZ archive holding pickled objects, which robustlab does not load"
        raise DataError(f"{what} {path} is {kind}: {type(e).__name__}: {e}") from None
    missing = [k for k in required if k not in data]
    if missing:
        raise DataError(f"{what} {path} lacks the field{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(repr, missing))} (it holds {', '.join(map(repr, data)) or 'nothing'})")
    return data
