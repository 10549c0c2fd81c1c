"""``rotator sandbox`` and ``rotator demo``: the local imitation of the provider APIs.

Its server (starlette, uvicorn) is the optional extra ``rotator[sandbox]``, so the sandbox is
imported only inside these commands: the rest of the command line works without it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import httpx
import typer

from rotator.cli.common import fail
from rotator.config import load_settings, load_targets
from rotator.errors import ConfigError
from rotator.providers import provider_names
from rotator.urlpolicy import insecure_entry

MISSING_EXTRA = "the sandbox needs the optional extra: pip install 'rotator[sandbox]'"
_SERVER_PACKAGES = {"starlette", "uvicorn"}
DEFAULT_PORT = 8765


def _require_extra() -> None:
    """Exit with one line naming the extra to install when the sandbox server cannot load."""
    try:
        importlib.import_module("rotator.sandbox.server")
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in _SERVER_PACKAGES:
            raise
        fail(MISSING_EXTRA)


def _file_port(path: Path) -> int | None:
    """The one local port every target's base_url names, so ``--targets`` alone serves where
    the file points (None: no single loopback port)."""
    from rotator import safeyaml

    raw, _ = safeyaml.load_file(path, str(path))
    targets = raw.get("targets") if isinstance(raw, dict) else None
    ports = set()
    for target in (targets or {}).values():
        url = httpx.URL(str(target.get("base_url", ""))) if isinstance(target, dict) else None
        if url is None or url.host not in ("127.0.0.1", "localhost") or url.port is None:
            return None
        ports.add(url.port)
    return ports.pop() if len(ports) == 1 else None


def sandbox(
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            metavar="PORT",
            help="Port to serve on [default: the targets file's, else 8765]",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to bind")
    ] = "127.0.0.1",
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for fault randomness", metavar="INT")
    ] = None,
    targets: Annotated[
        Path | None,
        typer.Option(
            "--targets",
            help="Seed a resource for every target of this file and print the env it expects",
            metavar="FILE",
        ),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file", help="With --targets: write the env here (0600)", metavar="FILE"
        ),
    ] = None,
) -> None:
    """Serve the local imitation of all provider APIs (with fault injection)."""
    _require_extra()
    if targets is None:
        if env_file is not None:
            fail("--env-file goes with --targets")
        from rotator.sandbox.server import serve

        serve(host=host, port=port or DEFAULT_PORT, seed=seed)
        return
    from rotator.sandbox.server import serve_seeded

    port = port or _file_port(targets) or DEFAULT_PORT
    try:
        # The file points at the sandbox over plain http: allow exactly this host:port.
        settings = load_settings(insecure_hosts=insecure_entry(f"http://{host}:{port}"))
        config = load_targets(targets, provider_names(), settings)
    except ConfigError as exc:
        fail("; ".join(str(issue) for issue in exc.issues))
    serve_seeded(config, host=host, port=port, seed=seed, env_file=env_file)


def demo() -> None:
    """Embedded Redis + sandbox + worker + beat: rotations, a conflict, a retried fault."""
    _require_extra()  # before the demo creates anything
    from rotator.demo import run_demo

    raise typer.Exit(run_demo())
