"""A small, local, bounded hostile HTTP peer: it answers every request the same bad way.

``trickle``: a 200 with a 4,000-byte body sent 4 bytes a second, so no single read ever waits
long (httpx's per-read timeout never fires) while the call as a whole lasts for minutes. It
gives up after ``max_seconds`` so a test of unfixed code fails instead of hanging.

``gzip-bomb``: a 200 whose ~51 KB gzip body inflates to 52 MB of JSON-ish zeros.
"""

from __future__ import annotations

import gzip
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

BOMB_DECODED = 52 * 1000 * 1000


@cache
def gzip_bomb() -> bytes:
    return gzip.compress(b"0" * BOMB_DECODED, compresslevel=9)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(10)
        try:
            if not _read_request(sock):
                return
            self.server.requests += 1
            if self.server.mode == "trickle":
                self._trickle(sock)
            else:
                self._bomb(sock)
        except OSError:
            return  # the client gave up: that is the point

    def _trickle(self, sock: socket.socket) -> None:
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: 4000\r\nConnection: close\r\n\r\n"
        )
        stop = time.monotonic() + self.server.max_seconds
        while time.monotonic() < stop and not self.server.closing.is_set():
            sock.sendall(b"    ")
            self.server.trickled += 4
            time.sleep(1.0)

    def _bomb(self, sock: socket.socket) -> None:
        body = gzip_bomb()
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )


def _read_request(sock: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return True


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str, max_seconds: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.max_seconds = max_seconds
        self.requests = 0
        self.trickled = 0
        self.closing = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


@contextmanager
def hostile_server(mode: str, max_seconds: float = 90.0) -> Iterator[_Server]:
    assert mode in ("trickle", "gzip-bomb")
    server = _Server(mode, max_seconds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
