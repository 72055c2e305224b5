"""Verified downloads: stream to a temporary file next to the target, check it, then rename it into place.

A file at the target path is therefore always complete and checked: an interrupted, truncated or corrupt
download never replaces it. The checks are the SHA-256 when one is given; without one, the content must not be
empty or an HTML page (the error or login page a mirror answers with); a ``magic`` prefix and a ``validate``
callable check the content further. A copy already at the target is reused only when it passes the same checks;
one that fails is moved aside (``<name>.bad-<time>``, with a warning naming both paths) and fetched again.
Transient network errors are retried with exponential backoff; refused content is not.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from robustlab.common.errors import DownloadError
from robustlab.common.io import atomic_path, unwritable_reason

__all__ = ["download", "sha256sum"]

_CHUNK = 1 << 20
_SCHEMES = ("http", "https", "file")
_RETRY_HTTP_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_HEAD = 4096  # bytes read to recognise an HTML page
_HTML_START = re.compile(
    rb"(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!doctype\s+html|<html|<head|<body|<title)(?:[\s>/]|$)",
    re.IGNORECASE | re.DOTALL,
)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_BOMS = ((b"\xef\xbb\xbf", None), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


class _TransientError(Exception):
    """A failed attempt worth retrying (the body was cut short, or the server answered 5xx)."""


class _Refused(Exception):
    """The content arrived but fails a check (not retried); the message says why and shows what was received."""


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
    magic: bytes | tuple[bytes, ...] | None = None,
    validate: Callable[[Path], Any] | None = None,
    allow_html: bool = False,
) -> Path:
    """Download ``url`` to ``path`` unless a valid copy is already there; return ``path``.

    The body is streamed into a temporary file in the folder of ``path`` (with the same suffix), its length is
    checked against the ``Content-Length`` header, then its content (below), and only then is it renamed over
    ``path`` (``os.replace``). Connection errors, timeouts, truncated bodies and HTTP 408/429/5xx answers are
    retried; other HTTP errors (404, 403, ...), a missing ``file://`` source and refused content are not.

    The content checks, on a fresh download and on a copy already at ``path`` alike:

    - ``sha256`` given: the hash must match. Without it, the content must not be empty, must not be an HTML page
      (it starts, after whitespace and a byte-order mark, with ``<!DOCTYPE html``, ``<html``, ``<head``, ...)
      and, when neither ``magic`` nor ``validate`` is given, must not be served as ``Content-Type: text/html``;
      ``allow_html=True`` lifts the HTML checks.
    - ``magic`` given: the content starts with that prefix (or one of those prefixes).
    - ``validate`` given: ``validate(file)`` returns without raising.

    A copy already at ``path`` that passes is reused without any request. One whose hash differs is replaced
    (kept if the download fails); one that fails another check is moved aside to ``<name>.bad-<time>`` with a
    ``RuntimeWarning`` naming both paths, then downloaded again.

    Args:
        url: an ``http://``, ``https://`` or ``file://`` URL (for a local path use ``Path(p).resolve().as_uri()``).
        path: the file to write (not a folder); missing parent folders are created.
        sha256: the expected SHA-256 (hex, any case); None checks the content as described above instead.
        retries: further attempts after the first one fails with a transient error.
        timeout: seconds to wait for the connection and for each read.
        progress: show progress (a bar on a terminal, a few lines in a log: :mod:`robustlab.common.progress`).
        backoff: seconds before the first retry, doubled before each further one (0 in tests).
        magic: the bytes the file must start with (``b"\\x1f\\x8b"`` for gzip), or a tuple of accepted prefixes.
        validate: called with the path of the complete temporary file (or of the copy already at ``path``);
            it raises, with any exception, when the file does not parse. Its return value is ignored.
        allow_html: an HTML page is the expected content.

    Returns:
        ``Path(path)``.

    Raises:
        DownloadError: every attempt failed (the message names the URL and the last error); the server refused
            the request; the content's hash differs from ``sha256`` (the message names the URL and both hashes);
            the content is refused (empty, HTML, wrong magic number, or ``validate`` raised: the message names
            the URL, ``path``, what was expected and the first bytes received, with ``validate``'s exception as
            ``__cause__``); or ``path`` cannot be written (an existing folder, a parent that is a file, a folder
            without write permission: the message names it). In every case nothing is left at ``path`` that was
            not there before, except that a copy failing the content checks has been moved aside.
        ValueError: the URL scheme is not supported, ``sha256`` is not 64 hex digits, or ``magic`` is not non-empty bytes.
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
    if magic is not None:
        magic = (magic,) if isinstance(magic, (bytes, bytearray)) else tuple(magic)
        if not magic or not all(isinstance(m, (bytes, bytearray)) and m for m in magic):
            raise ValueError(f"magic must be non-empty bytes or a tuple of them, got {magic!r}")
    checks = {"sha256": sha256, "magic": magic, "validate": validate, "allow_html": allow_html}

    if path.is_dir():
        raise DownloadError(
            f"cannot download {url} to {path}: it is an existing folder; expected the path of a file "
            f"(such as {path / (Path(urllib.parse.urlsplit(url).path).name or 'file')})"
        )
    moved: Path | None = None
    if path.is_file() and (sha256 is None or sha256sum(path) == sha256):
        try:
            _check(path, **checks)
            return path
        except _Refused as e:
            moved = _move_aside(path)
            if moved is not None:
                warnings.warn(
                    f"the cached file {path} fails its check ({e}); moved it to {moved} and downloading {url} "
                    "again", RuntimeWarning, stacklevel=2,
                )
    try:
        _prepare_folder(url, path)
        _download(url, path, scheme=scheme, retries=retries, timeout=timeout, progress=progress,
                  backoff=backoff, checks=checks)
    except DownloadError as e:
        if moved is None:
            raise
        raise DownloadError(
            f"{e}; the copy cached before (which failed its check as well) was moved to {moved}"
        ) from e
    return path


def _download(url: str, path: Path, *, scheme: str, retries: int, timeout: float, progress: bool,
              backoff: float, checks: dict) -> None:
    """The attempts: fetch into a temporary file, check it, rename it to ``path``; retry transient errors."""
    last: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            with atomic_path(path, suffix=_suffix(path)) as tmp:
                with open(tmp, "wb") as f:
                    content_type = _fetch(url, f, sha256=checks["sha256"], timeout=timeout, progress=progress)
                    f.flush()
                    os.fsync(f.fileno())
                _check(tmp, content_type=content_type, **checks)
            return
        except _Refused as e:
            raise DownloadError(f"download of {url} to {path} was refused: {e}") from e.__cause__
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
        except OSError as e:  # a local failure (disk full, permissions changed): not worth retrying
            raise DownloadError(f"download of {url} to {path} failed: {type(e).__name__}: {e}") from e
    raise DownloadError(
        f"download of {url} failed after {retries + 1} attempt{'s' if retries else ''}: "
        f"{type(last).__name__}: {last}"
    ) from last


def _fetch(url: str, f: BinaryIO, *, sha256: str | None, timeout: float, progress: bool) -> str:
    """Stream ``url`` into ``f``; raise on a short body or a hash mismatch (the caller discards ``f``).

    Returns the answer's ``Content-Type`` (lowercase, without parameters; ``""`` when absent).
    """
    from robustlab.common.progress import progress as progress_display

    request = urllib.request.Request(url, headers={"User-Agent": "robustlab"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        expected = int(length) if length and length.isdigit() else None
        h = hashlib.sha256()
        received = 0
        name = Path(urllib.parse.urlsplit(url).path).name or url
        with progress_display(total=expected, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                              enabled=progress, leave=False, dynamic_ncols=True) as bar:
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
    return content_type


def _check(file: Path, *, sha256: str | None, magic: tuple[bytes, ...] | None,
           validate: Callable[[Path], Any] | None, allow_html: bool, content_type: str = "") -> None:
    """Raise ``_Refused`` when ``file`` fails the content checks of :func:`download` (its hash is checked before).

    ``content_type`` is the server's answer for a fresh download, ``""`` for a copy already in place.
    """
    with open(file, "rb") as f:
        head = f.read(_HEAD)
    if sha256 is None:
        if not head:
            raise _Refused("the content is empty (0 bytes); expected the file's data")
        if not allow_html:
            if _looks_like_html(head):
                raise _Refused(f"the content is an HTML page{_title(head)}, not the expected file "
                               f"(an error or login page?; pass allow_html=True if HTML is expected); "
                               f"received {_received(file, head)}")
            if content_type in _HTML_TYPES and magic is None and validate is None:
                raise _Refused(f"the server sent Content-Type {content_type}, not the expected file (pass "
                               f"allow_html=True if HTML is expected, or magic=/validate= to check the content "
                               f"instead); received {_received(file, head)}")
    if magic is not None and not head.startswith(magic):
        expected = " or ".join(_printable(m) for m in magic)
        raise _Refused(f"the content does not start with the magic number {expected}; received "
                       f"{_received(file, head)}")
    if validate is not None:
        try:
            validate(file)
        except Exception as e:
            refused = _Refused(f"the content does not validate: {type(e).__name__}: {e}; received "
                               f"{_received(file, head)}")
            raise refused from e


def _looks_like_html(head: bytes) -> bool:
    """Whether the first bytes of a file are those of an HTML page (after whitespace and a byte-order mark)."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            head = head[len(bom):]
            if encoding:
                head = head[: len(head) // 2 * 2].decode(encoding, "replace").encode("utf-8", "replace")
            break
    return _HTML_START.match(head.lstrip()) is not None


def _title(head: bytes) -> str:
    m = re.search(rb"<title[^>]*>(.*?)</title", head, re.IGNORECASE | re.DOTALL)
    if not m:
        return ""
    title = " ".join(m.group(1).decode("utf-8", "replace").split())[:100]
    return f" titled {title!r}" if title else ""


def _printable(data: bytes) -> str:
    """``data`` as printable ASCII: other bytes as ``\\xNN``, newlines and tabs as ``\\n``, ``\\t``."""
    return repr(bytes(data))[2:-1]


def _received(file: Path, head: bytes, n: int = 80) -> str:
    size = file.stat().st_size
    if size > n:
        return f"{size} bytes starting b'{_printable(head[:n])}'..."
    return f"{size} bytes: b'{_printable(head)}'"


def _suffix(path: Path) -> str:
    """The temporary file's suffix: the target's own (``.tar.gz``), so validators that go by it see the same."""
    return "".join(path.suffixes[-2:]) if path.suffix else ".tmp"


def _move_aside(path: Path) -> Path | None:
    """Rename ``path`` to ``<name>.bad-<time>`` (unique) and return that; None if it disappeared meanwhile."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for i in range(1000):
        bad = path.with_name(f"{path.name}.bad-{stamp}" + (f"-{i}" if i else ""))
        if bad.exists():
            continue
        try:
            os.replace(path, bad)
        except FileNotFoundError:  # another process moved or replaced it first
            return None
        except OSError as e:
            raise DownloadError(f"the cached file {path} fails its check and cannot be moved aside to {bad}: "
                                f"{e}; delete it") from e
        return bad
    raise DownloadError(f"the cached file {path} fails its check and cannot be moved aside; delete it")


def _prepare_folder(url: str, path: Path) -> None:
    """Create the folder of ``path`` and make sure a file can be created there; DownloadError naming it if not."""
    folder = path.parent
    reason = unwritable_reason(path, folder=False)  # a file among the parents, a folder refusing new files
    if reason:
        raise DownloadError(f"cannot download {url} to {path}: {reason}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot download {url} to {path}: cannot create the folder {folder}: "
                            f"{type(e).__name__}: {e}") from e
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as e:
        raise DownloadError(f"cannot download {url} to {path}: the folder {folder} is not writable: "
                            f"{type(e).__name__}: {e}") from e
    os.close(fd)
    os.unlink(probe)
