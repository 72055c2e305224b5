"""Verified downloads: stream to a temporary file next to the target, check the SHA-256, then rename into place.

A file at the target path is therefore always complete: an interrupted, truncated or corrupt download never
replaces it. Transient network errors are retried with exponential backoff.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from robustlab.common.errors import DownloadError
from robustlab.common.io import atomic_write

__all__ = ["download", "sha256sum"]

_CHUNK = 1 << 20
_SCHEMES = ("http", "https", "file")
_RETRY_HTTP_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class _TransientError(Exception):
    """A failed attempt worth retrying (the body was cut short, or the server answered 5xx)."""


def sha256sum(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's content, as 64 lowercase hex digits.

    Args:
        path: the file to hash (read in 1 MiB chunks).

    Returns:
        The hex digest.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(
    url: str,
    path: str | os.PathLike,
    *,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 60,
    progress: bool = True,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``path`` unless a valid copy is already there; return ``path``.

    If ``path`` exists (and, when ``sha256`` is given, its content has that hash) nothing is fetched. Otherwise
    the body is streamed into a temporary file in the folder of ``path``, its length is checked against the
    ``Content-Length`` header and its hash against ``sha256``, and only then is it renamed over ``path``
    (``os.replace``). Connection errors, timeouts, truncated bodies and HTTP 408/429/5xx answers are retried;
    other HTTP errors (404, 403, ...), a missing ``file://`` source and a checksum mismatch are not.

    Args:
        url: an ``http://``, ``https://`` or ``file://`` URL (for a local path use ``Path(p).resolve().as_uri()``).
        path: where the file goes; missing parent folders are created.
        sha256: the expected SHA-256 (hex, any case); None skips verification.
        retries: further attempts after the first one fails with a transient error.
        timeout: seconds to wait for the connection and for each read.
        progress: show a tqdm progress bar.
        backoff: seconds before the first retry, doubled before each further one (0 in tests).

    Returns:
        ``Path(path)``.

    Raises:
        DownloadError: every attempt failed (the message names the URL and the last error), the server refused
            the request, or the content's hash differs from ``sha256`` (the message names the URL and both
            hashes). In every case nothing is left at ``path`` that was not there before.
        ValueError: the URL scheme is not supported, or ``sha256`` is not 64 hex digits.
    """
    path = Path(path)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(f"download supports {', '.join(s + '://' for s in _SCHEMES)} URLs, got {url!r}")
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if path.is_file() and (sha256 is None or sha256sum(path) == sha256):
        return path

    last: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            atomic_write(path, lambda f: _fetch(url, f, sha256=sha256, timeout=timeout, progress=progress))
            return path
        except urllib.error.HTTPError as e:
            e.close()
            if e.code not in _RETRY_HTTP_STATUS:
                raise DownloadError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
            last = e
        except urllib.error.URLError as e:
            if isinstance(e.reason, OSError) and scheme == "file":  # a missing or unreadable local source
                raise DownloadError(f"download of {url} failed: {e.reason}") from e
            last = e
        except (_TransientError, TimeoutError, ConnectionError, ssl.SSLError, http.client.HTTPException) as e:
            last = e
    raise DownloadError(
        f"download of {url} failed after {retries + 1} attempt{'s' if retries else ''}: "
        f"{type(last).__name__}: {last}"
    ) from last


def _fetch(url: str, f: BinaryIO, *, sha256: str | None, timeout: float, progress: bool) -> None:
    """Stream ``url`` into ``f``; raise on a short body or a hash mismatch (the caller discards ``f``)."""
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "robustlab"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        h = hashlib.sha256()
        received = 0
        name = Path(urllib.parse.urlsplit(url).path).name or url
        with tqdm(total=expected, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                  disable=not progress, leave=False, dynamic_ncols=True) as bar:
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                h.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received != expected:
        raise _TransientError(f"received {received} of {expected} bytes (Content-Length)")
    actual = h.hexdigest()
    if sha256 is not None and actual != sha256:
        raise DownloadError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}")
