"""``rotator exporter``: the deployment's gauges from Redis (``rotator.exporter``) on their own
port, with ``/healthz`` and ``/readyz``. Run one per deployment, next to the workers."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from rotator.cli.common import err, fail
from rotator.config import load_settings
from rotator.errors import ConfigError


def exporter(
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "0.0.0.0",  # noqa: S104 - an exporter is scraped from other hosts
    port: Annotated[
        int,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            envvar="ROTATOR_EXPORTER_PORT",
            metavar="PORT",
            help="Port to serve /metrics, /healthz and /readyz on.",
        ),
    ] = 9810,
) -> None:
    """Serve credential age, due queue, dead letters, audit spool, last dispatch (Prometheus)."""
    from rotator.exporter import exporter_registry
    from rotator.health import MonitorServer, readiness_checks, render_registry

    try:
        settings = load_settings()
        registry = exporter_registry(settings)
        checks = readiness_checks(settings)
    except ConfigError as exc:
        fail(str(exc))
    try:
        server = MonitorServer(port, render_registry(lambda: registry), checks, host=host)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    server.start()
    err.print(f"rotator exporter listening on http://{host}:{server.port}/metrics", highlight=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.stop()
