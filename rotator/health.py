"""The monitoring port: ``/metrics``, ``/healthz`` (liveness) and ``/readyz`` (readiness).

A worker and beat serve it on ``ROTATOR_METRICS_PORT`` from a daemon thread started by Celery's
``worker_ready`` / ``beat_init`` signals (``connect_signals``, called by ``rotator.app``);
``rotator exporter`` serves the same paths on its own port.

Liveness answers 200 while the process can serve a request at all. Readiness answers 200 only
when every check passes, else 503 with one line per failed check:

``redis``     the state store answers PING
``keys``      this process's keys are the store's (``rotator.keycheck``)
``config``    the targets file is valid (a broken reload is reported, though the last good
              configuration keeps being used)
``dispatch``  beat only: a dispatch pass ran within three dispatch intervals
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from rotator.config import Settings

log = structlog.get_logger("rotator.health")

Check = Callable[[], str | None]  # None when fine, else why not (no secret in it)
_STARTED = time.time()


def _redis_client(settings: Settings) -> Any:

    from rotator.connections import sync_redis
    from rotator.embedded import redis_url_for

    return sync_redis(redis_url_for(settings), socket_timeout=3, socket_connect_timeout=3)


def readiness_checks(settings: Settings, *, beat: bool = False) -> list[tuple[str, Check]]:
    """The checks ``/readyz`` runs on every request (cheap: a PING, a hash read, a stat)."""
    from rotator.runtime import ConfigHolder
    from rotator.store.keys import Keys

    keys = Keys(settings.key_prefix)
    holder = ConfigHolder(settings, lenient=True)
    client = _redis_client(settings)

    def redis_ok() -> str | None:
        try:
            client.ping()
        except Exception as exc:  # any failure to answer is "not ready"
            return f"Redis unreachable ({type(exc).__name__})"
        return None

    def keys_ok() -> str | None:

        from rotator.connections import async_redis
        from rotator.embedded import redis_url_for
        from rotator.keycheck import check_keys

        async def check() -> None:
            remote = async_redis(redis_url_for(settings), socket_timeout=3)
            try:
                await check_keys(remote, keys, settings)
            finally:
                await remote.aclose()

        try:
            asyncio.run(check())
        except Exception as exc:  # ConfigError names the mismatch; never a key value
            return f"keys not verified: {type(exc).__name__}: {exc}"
        return None

    def config_ok() -> str | None:
        holder.get()
        if holder.last_error is not None:
            return f"targets file invalid: {len(holder.last_error.issues)} issue(s)"
        return None

    def dispatch_ok() -> str | None:
        stale_after = 3 * settings.dispatch_interval
        try:
            raw = client.get(keys.last_dispatch)
        except Exception as exc:
            return f"last dispatch unknown ({type(exc).__name__})"
        # A beat that just started gets three intervals before its first dispatch counts.
        age = time.time() - max(float(raw) if raw else 0.0, _STARTED)
        if age > stale_after:
            return (
                f"no dispatch for {age:.0f}s (over 3 intervals of {settings.dispatch_interval:g}s)"
            )
        return None

    checks: list[tuple[str, Check]] = [
        ("redis", redis_ok),
        ("keys", keys_ok),
        ("config", config_ok),
    ]
    if beat:
        checks.append(("dispatch", dispatch_ok))
    return checks


class MonitorServer:
    """A tiny HTTP server on a daemon thread; ``port=0`` picks a free one (tests)."""

    def __init__(
        self,
        port: int,
        render_metrics: Callable[[], tuple[bytes, str]],
        checks: list[tuple[str, Check]],
        host: str = "0.0.0.0",  # noqa: S104  (scraped and probed from outside the pod)
    ) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, content_type = render_metrics()
                    self._send(200, body, content_type)
                elif path == "/healthz":
                    self._send(200, b"ok\n", "text/plain")
                elif path == "/readyz":
                    failed = server.failed_checks()
                    text = "".join(f"{name}: {why}\n" for name, why in failed) or "ready\n"
                    self._send(503 if failed else 200, text.encode(), "text/plain")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds are not log lines

        self.checks = checks
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="rotator-monitor", daemon=True
        )

    def failed_checks(self) -> list[tuple[str, str]]:
        failed = []
        for name, check in self.checks:
            try:
                why = check()
            except Exception as exc:  # a check that breaks is a failed check, not a 500
                why = f"check failed ({type(exc).__name__})"
            if why is not None:
                failed.append((name, why))
        return failed

    def start(self) -> MonitorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def render_registry(registry_factory: Callable[[], Any]) -> Callable[[], tuple[bytes, str]]:
    def render() -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(registry_factory()), CONTENT_TYPE_LATEST

    return render


# -- Celery wiring -----------------------------------------------------------------------

_server: MonitorServer | None = None


def _start(beat: bool) -> None:
    global _server
    from rotator import metrics
    from rotator.config import load_settings
    from rotator.runtime import configure_logging

    settings = load_settings()
    if settings.metrics_port is None or _server is not None:
        return
    configure_logging(settings)  # beat never builds a Runtime: its lines need the setup too
    _server = MonitorServer(
        settings.metrics_port,
        render_registry(metrics.registry),
        readiness_checks(settings, beat=beat),
    ).start()
    log.info("monitoring port open", port=_server.port, role="beat" if beat else "worker")


def connect_signals() -> None:
    """Worker: multiprocess metric files under the state dir (set before any metric exists),
    then the port once the worker is ready. Beat: the port, for its readiness."""
    from celery import signals

    from rotator.runtime import quiet_dispatch_chatter

    quiet_dispatch_chatter()

    def on_worker_init(**_: Any) -> None:
        from rotator import metrics
        from rotator.config import load_settings

        settings = load_settings()
        if settings.metrics_port is not None:
            metrics.use_multiprocess_dir(settings.state_dir)

    signals.worker_init.connect(on_worker_init, weak=False)
    signals.worker_ready.connect(lambda **_: _start(beat=False), weak=False)
    signals.beat_init.connect(lambda **_: _start(beat=True), weak=False)
