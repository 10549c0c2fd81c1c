"""A webhook receiver on a real socket for the notification tests: records every request and
answers 500 to the first try of each delivery (``X-Rotator-Delivery``), 200 to the rest."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Hit:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int


@dataclass
class Receiver:
    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            delivery = headers.get("x-rotator-delivery", "")
            seen = any(h.headers.get("x-rotator-delivery") == delivery for h in self.hits)
            status = 200 if seen else 500
            self.hits.append(Hit(path, headers, body, status))
            return status

    def delivered(self) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.status == 200]


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = state.handle(self.path, headers, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
