"""Verified downloads against a local HTTP server (offline): retries, truncation, checksums, file:// URLs."""

from __future__ import annotations

import hashlib
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
        body = CONTENT
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
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
