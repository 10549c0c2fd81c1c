"""``rotator api``: the HTTP API (``rotator.httpapi``) under uvicorn.

Its server (starlette, uvicorn) is the optional extra ``rotator[api]``, imported only inside
this command, so the rest of the command line works without it.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from rotator.cli.common import fail
from rotator.errors import ConfigError

MISSING_EXTRA = "the HTTP API needs the optional extra: pip install 'rotator[api]'"
_SERVER_PACKAGES = {"starlette", "uvicorn"}


def api(
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", min=1, max=65535, help="Port to listen on.")
    ] = 8080,
) -> None:
    """Serve the HTTP API (tokens from ROTATOR_API_TOKENS; see the README's "HTTP API")."""
    try:
        server = importlib.import_module("rotator.httpapi.server")
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in _SERVER_PACKAGES:
            raise
        fail(MISSING_EXTRA)
    try:
        server.serve(host, port)
    except ConfigError as exc:
        fail(str(exc))
