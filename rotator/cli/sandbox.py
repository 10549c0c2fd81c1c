"""``rotator sandbox`` and ``rotator demo``: the local imitation of the provider APIs.

Its server (starlette, uvicorn) is the optional extra ``rotator[sandbox]``, so the sandbox is
imported only inside these commands: the rest of the command line works without it.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from rotator.cli.common import fail

MISSING_EXTRA = "the sandbox needs the optional extra: pip install 'rotator[sandbox]'"
_SERVER_PACKAGES = {"starlette", "uvicorn"}


def _require_extra() -> None:
    """Exit with one line naming the extra to install when the sandbox server cannot load."""
    try:
        importlib.import_module("rotator.sandbox.server")
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in _SERVER_PACKAGES:
            raise
        fail(MISSING_EXTRA)


def sandbox(
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port to listen on.")] = 8765,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    seed: Annotated[
        int | None, typer.Option("--seed", metavar="N", help="Random seed for faults.")
    ] = None,
) -> None:
    """Serve the local imitation of all provider APIs (with fault injection)."""
    _require_extra()
    from rotator.sandbox.server import serve

    serve(host=host, port=port, seed=seed)


def demo() -> None:
    """Embedded Redis + sandbox + worker + beat: rotations, a conflict, a retried fault."""
    _require_extra()  # before the demo creates anything
    from rotator.demo import run_demo

    raise typer.Exit(run_demo())
