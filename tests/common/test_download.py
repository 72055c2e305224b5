"""Verified downloads against a local HTTP server (offline): retries, truncation, checksums, file:// URLs,
content checks (HTML pages, empty bodies, magic numbers, validators), poisoned caches and bad destinations."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from robustlab.common.data import download
from robustlab.common.data.download import sha256sum
from robustlab.common.errors import DownloadError

CONTENT = bytes(range(256)) * 3000  # 768 kB
SHA = hashlib.sha256(CONTENT).hexdigest()
FAST = {"backoff": 0.0, "timeout": 5, "progress": False}
HTML_PAGE = (b"\xef\xbb\xbf\n  <!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>"
             b"<body>Please try again later</body></html>\n")
PLAIN_TEXT = b"chr1\t100\t200\n"


class _Handler(BaseHTTPRequestHandler):
    """Answers each GET with the next behaviour in ``server.plan`` ("ok" once the plan is used up)."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        srv = self.server
        with srv.lock:
            srv.requests += 1
            mode = srv.plan.pop(0) if srv.plan else "ok"
        if mode == "close":  # hang up without an answer
            return
        if mode in ("500", "404"):
            self.send_error(int(mode))
            return
        if mode == "slow":
            time.sleep(1.0)
        body, kind = CONTENT, "application/octet-stream"
        if mode == "html":  # an error page answered with 200, as some mirrors and captive portals do
            body, kind = HTML_PAGE, "text/html; charset=utf-8"
        elif mode == "html-as-binary":  # the same page, mislabelled
            body = HTML_PAGE
        elif mode == "text-as-html":  # a plain file a server labels text/html
            body, kind = PLAIN_TEXT, "text/html"
        elif mode == "empty":
            body = b""
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body) + (1000 if mode == "truncate" else 0)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode == "truncate" else body)

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that timed out: nothing to report
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.plan, httpd.requests, httpd.lock = [], 0, threading.Lock()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/data/corpus.bin"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_download_and_verify(server, tmp_path):
    dest = tmp_path / "sub" / "corpus.bin"
    out = download(server.url, dest, sha256=SHA.upper(), backoff=0.0, progress=True)
    assert out == dest and dest.read_bytes() == CONTENT
    assert sha256sum(dest) == SHA
    assert server.requests == 1
    assert _leftovers(dest.parent) == ["corpus.bin"]


@pytest.mark.parametrize("failures", [["500"], ["close", "close"], ["500", "close", "truncate"], ["slow"]])
def test_transient_failures_are_retried(server, tmp_path, failures):
    server.plan = list(failures)
    dest = tmp_path / "corpus.bin"
    options = {**FAST, "timeout": 0.3} if "slow" in failures else FAST
    download(server.url, dest, sha256=SHA, retries=3, **options)
    assert dest.read_bytes() == CONTENT
    assert server.requests == len(failures) + 1
    assert _leftovers(tmp_path) == ["corpus.bin"]


def test_retries_exhausted_name_the_url_and_last_error(server, tmp_path):
    server.plan = ["truncate"] * 3
    dest = tmp_path / "corpus.bin"
    with pytest.raises(DownloadError, match="after 3 attempts") as info:
        download(server.url, dest, retries=2, **FAST)
    assert server.url in str(info.value)
    assert f"received {len(CONTENT) // 2} of {len(CONTENT) + 1000} bytes" in str(info.value)
    assert server.requests == 3
    assert _leftovers(tmp_path) == [], "no partial file may be left"


def test_connection_refused_is_retried_then_reported(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/corpus.bin"
    with pytest.raises(DownloadError, match="after 2 attempts: URLError") as info:
        download(url, tmp_path / "corpus.bin", retries=1, **FAST)
    assert url in str(info.value)
    assert _leftovers(tmp_path) == []


def test_http_404_is_not_retried(server, tmp_path):
    server.plan = ["404"]
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url, tmp_path / "corpus.bin", retries=3, **FAST)
    assert server.requests == 1
    assert _leftovers(tmp_path) == []


def test_checksum_mismatch_names_both_hashes_and_leaves_nothing(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        download(server.url, tmp_path / "corpus.bin", sha256=wrong, **FAST)
    message = str(info.value)
    assert server.url in message and wrong in message and SHA in message
    assert server.requests == 1, "a checksum mismatch is not retried"
    assert _leftovers(tmp_path) == []


def test_existing_valid_file_is_not_downloaded_again(server, tmp_path):
    dest = tmp_path / "corpus.bin"
    dest.write_bytes(CONTENT)
    assert download(server.url, dest, sha256=SHA, **FAST) == dest
    assert download(server.url, dest, **FAST) == dest  # without a checksum, existing is enough
    assert server.requests == 0


def test_existing_corrupt_file_is_replaced(server, tmp_path):
    dest = tmp_path / "corpus.bin"
    dest.write_bytes(b"stale")
    download(server.url, dest, sha256=SHA, **FAST)
    assert dest.read_bytes() == CONTENT and server.requests == 1


def test_failed_download_keeps_the_previous_file(server, tmp_path):
    dest = tmp_path / "corpus.bin"
    dest.write_bytes(b"stale")
    server.plan = ["500"] * 2
    with pytest.raises(DownloadError, match="HTTP Error 500"):
        download(server.url, dest, sha256=SHA, retries=1, **FAST)
    assert dest.read_bytes() == b"stale"
    assert _leftovers(tmp_path) == ["corpus.bin"]


def test_file_url(tmp_path):
    src = tmp_path / "src" / "corpus.bin"
    src.parent.mkdir()
    src.write_bytes(CONTENT)
    dest = tmp_path / "dest" / "corpus.bin"
    assert download(src.as_uri(), dest, sha256=SHA, **FAST).read_bytes() == CONTENT


def test_missing_file_url_is_a_clear_error(tmp_path):
    src = tmp_path / "missing.bin"
    start = time.perf_counter()
    with pytest.raises(DownloadError, match="missing.bin") as info:
        download(src.as_uri(), tmp_path / "out.bin", retries=3, progress=False, backoff=10.0)
    assert time.perf_counter() - start < 5, "a missing local file is not retried"
    assert src.as_uri() in str(info.value)
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize(
    "url, sha, match",
    [
        ("ftp://example.org/x", None, "supports http://"),
        ("/tmp/x", None, "supports http://"),
        ("http://127.0.0.1/x", "abc", "64 hex digits"),
    ],
)
def test_bad_arguments(tmp_path, url, sha, match):
    with pytest.raises(ValueError, match=match):
        download(url, tmp_path / "x", sha256=sha, **FAST)


def test_sha256sum(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256sum(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# -- content checks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["html", "html-as-binary"])
def test_html_error_page_is_refused_without_a_checksum(server, tmp_path, mode):
    server.plan = [mode]
    dest = tmp_path / "corpus.bin"
    with pytest.raises(DownloadError, match="HTML") as info:
        download(server.url, dest, retries=3, **FAST)
    message = str(info.value)
    assert server.url in message and str(dest) in message
    assert "503 Service Unavailable" in message, "the message shows what was received"
    assert server.requests == 1, "a refused content is not retried"
    assert _leftovers(tmp_path) == []


def test_text_html_content_type_is_refused_unless_expected_or_validated(server, tmp_path):
    server.plan = ["text-as-html"] * 3
    dest = tmp_path / "regions.bed"
    with pytest.raises(DownloadError, match="text/html") as info:
        download(server.url, dest, **FAST)
    assert server.url in str(info.value) and str(dest) in str(info.value)
    assert _leftovers(tmp_path) == []
    download(server.url, dest, allow_html=True, **FAST)
    assert dest.read_bytes() == PLAIN_TEXT
    dest.unlink()
    download(server.url, dest, validate=lambda p: p.read_text().split("\t"), **FAST)  # the content decides
    assert dest.read_bytes() == PLAIN_TEXT


def test_html_is_accepted_when_expected(server, tmp_path):
    server.plan = ["html"]
    dest = tmp_path / "index.html"
    download(server.url, dest, allow_html=True, **FAST)
    assert dest.read_bytes() == HTML_PAGE
    assert download(server.url, dest, allow_html=True, **FAST) == dest and server.requests == 1


def test_empty_body_is_refused(server, tmp_path):
    server.plan = ["empty"]
    dest = tmp_path / "corpus.bin"
    with pytest.raises(DownloadError, match="empty") as info:
        download(server.url, dest, **FAST)
    assert server.url in str(info.value) and str(dest) in str(info.value)
    assert server.requests == 1
    assert _leftovers(tmp_path) == []


def test_magic_number(server, tmp_path):
    dest = tmp_path / "corpus.bin"
    with pytest.raises(DownloadError, match="magic") as info:
        download(server.url, dest, magic=b"\x1f\x8b", retries=3, **FAST)
    message = str(info.value)
    assert server.url in message and str(dest) in message
    assert r"\x1f\x8b" in message and r"\x00\x01\x02" in message, "expected and received bytes, printable"
    assert server.requests == 1
    assert _leftovers(tmp_path) == []
    assert download(server.url, dest, magic=(b"\x1f\x8b", b"\x00\x01\x02"), **FAST).read_bytes() == CONTENT
    with pytest.raises(ValueError, match="magic"):
        download(server.url, tmp_path / "x", magic=b"", **FAST)


def test_validate_rejects_an_unparsable_file_and_keeps_nothing(server, tmp_path):
    seen = []

    def validate(tmp):
        seen.append(tmp)
        assert tmp.parent == dest.parent and tmp.suffix == ".bin" and tmp.read_bytes() == CONTENT
        raise ValueError("not a corpus: bad header")

    dest = tmp_path / "corpus.bin"
    with pytest.raises(DownloadError, match="not a corpus: bad header") as info:
        download(server.url, dest, validate=validate, retries=3, **FAST)
    message = str(info.value)
    assert server.url in message and str(dest) in message and "ValueError" in message
    assert isinstance(info.value.__cause__, ValueError)
    assert len(seen) == 1 and server.requests == 1, "a validation failure is not retried"
    assert _leftovers(tmp_path) == []

    assert download(server.url, dest, validate=lambda p: None, **FAST).read_bytes() == CONTENT


def test_poisoned_cache_is_moved_aside_and_fetched_again(server, tmp_path):
    dest = tmp_path / "corpus.bin"
    dest.write_bytes(HTML_PAGE)  # left by an earlier version that cached an error page
    with pytest.warns(RuntimeWarning) as record:
        assert download(server.url, dest, **FAST) == dest
    assert dest.read_bytes() == CONTENT and server.requests == 1
    aside = [p for p in tmp_path.iterdir() if p != dest]
    assert len(aside) == 1 and aside[0].name.startswith("corpus.bin.bad-")
    assert aside[0].read_bytes() == HTML_PAGE
    message = str(record[0].message)
    assert str(dest) in message and str(aside[0]) in message and server.url in message


def test_cached_file_failing_validate_is_replaced(server, tmp_path):
    dest = tmp_path / "corpus.bin"
    dest.write_bytes(b"\x00\x01 truncated")

    def validate(p):
        if p.stat().st_size != len(CONTENT):
            raise ValueError(f"{p.stat().st_size} bytes")

    with pytest.warns(RuntimeWarning, match="corpus.bin"):
        download(server.url, dest, validate=validate, **FAST)
    assert dest.read_bytes() == CONTENT and len(_leftovers(tmp_path)) == 2


def test_poisoned_cache_and_bad_fresh_copy(server, tmp_path):
    dest = tmp_path / "corpus.bin"
    dest.write_bytes(HTML_PAGE)
    server.plan = ["html"]
    with pytest.warns(RuntimeWarning), pytest.raises(DownloadError, match="HTML") as info:
        download(server.url, dest, **FAST)
    message = str(info.value)
    assert server.url in message and str(dest) in message and ".bad-" in message
    assert not dest.exists()
    assert [p.name.startswith("corpus.bin.bad-") for p in tmp_path.iterdir()] == [True]


def test_empty_cached_file_is_fetched_again(server, tmp_path):
    dest = tmp_path / "corpus.bin"
    dest.touch()
    with pytest.warns(RuntimeWarning, match="empty"):
        download(server.url, dest, **FAST)
    assert dest.read_bytes() == CONTENT


def test_file_url_to_an_html_page(tmp_path):
    src = tmp_path / "page.html"
    src.write_bytes(HTML_PAGE)
    dest = tmp_path / "out" / "corpus.bin"
    with pytest.raises(DownloadError, match="HTML") as info:
        download(src.as_uri(), dest, **FAST)
    assert src.as_uri() in str(info.value) and str(dest) in str(info.value)
    assert not dest.exists()


# -- destinations ---------------------------------------------------------------------------------------------


def test_directory_as_destination(server, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    with pytest.raises(DownloadError, match="folder") as info:
        download(server.url, folder, **FAST)
    assert str(folder) in str(info.value) and server.url in str(info.value)
    assert server.requests == 0


def test_parent_is_a_file(server, tmp_path):
    (tmp_path / "data").write_bytes(b"x")
    dest = tmp_path / "data" / "sub" / "corpus.bin"
    with pytest.raises(DownloadError, match="not a folder") as info:
        download(server.url, dest, **FAST)
    assert str(tmp_path / "data") in str(info.value) and str(dest) in str(info.value)
    assert server.requests == 0


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
@pytest.mark.parametrize("sub", [False, True])
def test_unwritable_folder(server, tmp_path, sub):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        dest = folder / "sub" / "corpus.bin" if sub else folder / "corpus.bin"
        with pytest.raises(DownloadError, match="writable|cannot create") as info:
            download(server.url, dest, **FAST)
        assert str(dest) in str(info.value) and server.url in str(info.value)
        assert server.requests == 0
    finally:
        folder.chmod(0o700)


def test_unwritable_folder_simulated(server, tmp_path, monkeypatch):
    """The same error where the folder refuses new files (also when running as root)."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    dest = tmp_path / "corpus.bin"
    with pytest.raises(DownloadError, match="not writable") as info:
        download(server.url, dest, **FAST)
    assert str(dest) in str(info.value) and "Permission denied" in str(info.value)
