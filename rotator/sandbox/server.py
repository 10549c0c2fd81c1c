"""Running the sandbox: in a background thread (tests, demo) or in the foreground (CLI).

Both use uvicorn with :class:`SandboxH11Protocol`, an h11 protocol that hands each request's
TCP transport to the app (``scope[TRANSPORT_KEY]``) so the ``reset`` and ``drop_response``
faults can abort the connection without a response.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from rotator.config import TargetsConfig
from rotator.sandbox.app import create_app
from rotator.sandbox.faults import TRANSPORT_KEY


class SandboxH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, exposing the connection's transport in the ASGI scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        inner = self.app

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            scope[TRANSPORT_KEY] = transport
            await inner(scope, receive, send)

        self.app = app


def _config(
    app: Starlette, host: str, port: int, quiet: bool, access_log: bool = False
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=SandboxH11Protocol,
        ws="none",
        lifespan="off",
        # Embedded servers leave the host process's logging configuration alone.
        log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
        log_level="warning" if quiet else "info",
        access_log=access_log,
        server_header=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
    )


class SandboxServer:
    """The sandbox on 127.0.0.1 in a background thread::

    with SandboxServer(port=0) as sb:
        httpx.get(sb.url + "/_sandbox/stats")
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        seed: int | None = None,
        app: Starlette | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.app = app if app is not None else create_app(seed=seed)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("SandboxServer is not started")
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> SandboxServer:
        """Start serving; returns once the port accepts connections."""
        if self._thread is not None:
            return self
        # proto must be IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on accepted sockets
        # whose proto says TCP, and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(_config(self.app, self.host, self.port, quiet=True))
        self._server = server
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"rotator-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox server did not start on port {self.port}")
            time.sleep(0.01)
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    break
            except OSError as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"sandbox port {self.port} does not accept connections"
                    ) from exc
                time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._server, self._thread
        interrupt = getattr(self.app, "interrupt_waits", None)
        if interrupt is not None:
            interrupt()
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout / 2)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout / 2)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _banner(url: str) -> list[str]:
    """Where each adapter points and how to drive the sandbox: its admin API."""
    from rotator.sandbox import defaults

    lines = [f"rotator sandbox listening on {url}"]
    lines += [f"  {provider:<20} {base}" for provider, base in defaults.base_urls(url).items()]
    lines += [
        "admin API (see rotator/sandbox/app.py):",
        f"  PUT|GET  {url}/_sandbox/<provider>/resources/<id>   create/read a resource",
        f"  POST     {url}/_sandbox/<provider>/resources/<id>/oob   edit it out of band",
        f"  PUT|DEL  {url}/_sandbox/faults   inject faults;  GET {url}/_sandbox/stats",
        f"  POST     {url}/_sandbox/reset   back to the seeded defaults",
    ]
    return lines


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    seed: int | None = None,
    *,
    access_log: bool = False,
) -> None:
    """Run the sandbox in the foreground until interrupted. The access log (off by default,
    it costs throughput) shows method, path and status only: never headers or bodies."""
    url = f"http://{host}:{port}"
    print("\n".join(_banner(url)), file=sys.stderr)
    config: Any = _config(create_app(seed=seed), host, port, quiet=False, access_log=access_log)
    uvicorn.Server(config).run()


def serve_seeded(
    targets: TargetsConfig,
    host: str = "127.0.0.1",
    port: int = 8765,
    seed: int | None = None,
    env_file: Path | None = None,
) -> None:
    """Serve in a background thread, seed a resource per target of ``targets``, print (or
    write to ``env_file``) the environment the file expects, then wait for SIGINT/SIGTERM."""
    import httpx

    from rotator.sandbox.seeding import seed_targets

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with SandboxServer(port=port, host=host, seed=seed) as server:
        with httpx.Client(base_url=server.url, timeout=10) as admin:
            report = seed_targets(admin, targets, server.url)
        lines = _banner(server.url)
        lines.append(f"seeded from {targets.path}:")
        lines += [f"  {line}" for line in report.seeded]
        lines += [f"note: {note}" for note in report.notes]
        print("\n".join(lines), file=sys.stderr, flush=True)
        if env_file is not None:
            env_file.write_text("\n".join(report.env_lines()) + "\n")
            env_file.chmod(0o600)
            print(
                f"environment written to {env_file}: set -a; . {env_file}; set +a", file=sys.stderr
            )
        else:
            print(
                "# the environment your targets file expects (sandbox-only values):",
                file=sys.stderr,
            )
            print("\n".join(f"export {line}" for line in report.env_lines()), flush=True)
        print("ready (Ctrl-C stops)", file=sys.stderr, flush=True)
        stop.wait()
