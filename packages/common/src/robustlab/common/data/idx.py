"""Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed)."""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from robustlab.common.errors import DataError

__all__ = ["read_idx"]

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` is decompressed) into an array of its declared type and shape.

    Raises:
        DataError: the file is missing, not IDX, or shorter than its header declares (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # a missing or bad gzip stream: BadGzipFile, EOFError, zlib.error
        raise DataError(f"IDX file {path} cannot be read: {type(e).__name__}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        html = " (it looks like an HTML page: a failed download?)" if raw.lstrip()[:1] == b"<" else ""
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'none: empty file'}){html}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated or corrupt: its magic number declares {ndim} dimensions "
                        f"({header} header bytes) but the file holds {len(raw)} bytes")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = math.prod(shape) * dtype.itemsize  # Python integers: a corrupt shape must not overflow
    if len(raw) - header != expected:
        raise DataError(
            f"IDX file {path} holds {len(raw) - header} data bytes but its header declares shape {shape} "
            f"({expected} bytes): the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
