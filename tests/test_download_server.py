"""A local HTTP server for download tests (127.0.0.1, Range support, switchable failures), and its own checks.

Other test files import the server, ``make_checkpoint_bytes``, ``FAST`` and ``clear_network_env`` from here.
"""

from __future__ import annotations

import http.server
import io
import socket
import struct
import threading
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import torch

# Short timeouts and chunks: a fault shows within a test's second, not a user's minute.
FAST = {"timeout": 2.0, "chunk_size": 8192, "retry_delay": 0.01}

# The developer's proxy, offline switch or cache must not reach a download test.
NETWORK_ENV = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
               "no_proxy", "NO_PROXY", "GLIDE_STUDIO_OFFLINE", "GLIDE_STUDIO_CACHE")


def clear_network_env(monkeypatch) -> None:
    for var in NETWORK_ENV:
        monkeypatch.delenv(var, raising=False)


def make_checkpoint_bytes(seed: int = 0, rows: int = 96) -> bytes:
    """A small real torch.save'd state dict (about 100 KB): loads with weights_only=True."""
    gen = torch.Generator().manual_seed(seed)
    state = {
        "input_blocks.0.0.weight": torch.randn(rows, 3, 3, 3, generator=gen),
        "input_blocks.0.0.bias": torch.randn(rows, generator=gen),
        "out.2.weight": torch.randn(6, rows, 3, 3, generator=gen),
        "token_embedding.weight": torch.randn(rows, 128, generator=gen),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@dataclass
class Behaviour:
    """How the server misbehaves. ``fail_requests`` counts how many requests misbehave before it behaves."""

    mode: str = "ok"  # ok | cut | reset | 404 | 503 | stall_body | stall_headers | ignore_range | trickle
    cut_at: int = 0
    fail_requests: int = 1_000_000
    send_content_length: bool = True
    ignore_range: bool = False  # with any mode: always answer 200 with the whole file
    range_shift: int = 0  # a 206 whose Content-Range starts this many bytes after the asked offset
    extra_length: int = 0  # a Content-Length this many bytes longer than the body sent
    content_type: str = "application/octet-stream"
    trickle_interval: float = 0.05  # trickle: one byte per interval, until released
    stall_seconds: float = 10.0  # how long a stalled answer waits unless released
    requests: list[dict] = field(default_factory=list)


class FakeCheckpointServer:
    """Serves ``files`` ({url path: bytes}); a context manager that always shuts its threads down."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.behaviour = Behaviour()
        self.release = threading.Event()  # wakes stalled handlers
        self._handler_threads: list[threading.Thread] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                server._handler_threads.append(threading.current_thread())
                server._serve(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-ckpt-server"
        )

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def __enter__(self) -> FakeCheckpointServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
        for thread in self._handler_threads:
            thread.join(5)
        assert not self.thread.is_alive()
        assert not any(t.is_alive() for t in self._handler_threads), "a request handler is still running"

    def set(self, mode: str, *, cut_at: int = 0, fail_requests: int = 1_000_000) -> None:
        self.behaviour.mode = mode
        self.behaviour.cut_at = cut_at
        self.behaviour.fail_requests = fail_requests

    @property
    def requests(self) -> list[dict]:
        return self.behaviour.requests

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        b = self.behaviour
        range_header = handler.headers.get("Range")
        b.requests.append({"raw_path": handler.path, "range": range_header})
        failing = len(b.requests) <= b.fail_requests
        mode = b.mode if failing else "ok"
        # A proxy receives the absolute URL in the request line.
        data = self.files.get(urlsplit(handler.path).path)
        if data is None or mode == "404":
            handler.send_error(404, "Not Found")
            return
        if mode == "503":
            handler.send_error(503, "Service Unavailable")
            return
        if mode == "stall_headers":
            self.release.wait(b.stall_seconds)
            return
        start = 0
        status = 200
        if range_header and mode != "ignore_range" and not b.ignore_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            status = 206
        if b.range_shift:
            status = 206  # a broken cache: partial answers even to a plain request
        body = data[start:]
        handler.send_response(status)
        if status == 206:
            shown = start + b.range_shift
            handler.send_header("Content-Range", f"bytes {shown}-{len(data) - 1}/{len(data)}")
        if b.send_content_length:
            handler.send_header("Content-Length", str(len(body) + b.extra_length))
        handler.send_header("Content-Type", b.content_type)
        handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        if mode in ("cut", "reset", "stall_body"):
            handler.wfile.write(body[: b.cut_at])
            handler.wfile.flush()
            if mode == "stall_body":
                self.release.wait(b.stall_seconds)
            elif mode == "reset":
                # SO_LINGER 0: close with RST instead of FIN, so the client sees a connection reset.
                handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                handler.connection.close()
            return
        if mode == "trickle":
            for index in range(len(body)):
                if self.release.wait(b.trickle_interval):
                    return
                try:
                    handler.wfile.write(body[index: index + 1])
                    handler.wfile.flush()
                except OSError:  # the client hung up
                    return
            return
        handler.wfile.write(body)


@pytest.fixture(scope="module")
def payload() -> bytes:
    return make_checkpoint_bytes()


def test_server_serves_ranges_and_shuts_down(payload):
    with FakeCheckpointServer({"/ckpt.pt": payload}) as server:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(server.url("/ckpt.pt"), timeout=5) as response:
            assert response.status == 200
            assert response.read() == payload
        request = urllib.request.Request(server.url("/ckpt.pt"), headers={"Range": "bytes=100-"})
        with opener.open(request, timeout=5) as response:
            assert response.status == 206
            assert response.read() == payload[100:]
    assert not server.thread.is_alive()


def test_fake_checkpoint_is_a_weights_only_state_dict(payload):
    state = torch.load(io.BytesIO(payload), weights_only=True)
    assert set(state) >= {"input_blocks.0.0.weight", "out.2.weight"}
    assert 50_000 < len(payload) < 300_000
