"""Running the API under uvicorn: settings and tokens are checked before the port opens, so a
misconfigured ``rotator api`` exits with one clear line instead of serving 401s."""

from __future__ import annotations

import sys

import uvicorn

from rotator.config import load_settings
from rotator.httpapi.app import create_app
from rotator.httpapi.auth import TokenTable, parse_tokens
from rotator.httpapi.settings import ApiSettings
from rotator.runtime import configure_logging


def serve(host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM. Raises ConfigError for invalid settings or tokens."""
    settings = load_settings()
    settings.validate_runtime()
    api = ApiSettings()
    tokens = TokenTable(parse_tokens(api.tokens.get_secret_value()))
    configure_logging(settings)
    app = create_app(settings, tokens, idempotency_ttl=api.idempotency_ttl, max_body=api.max_body)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        ws="none",
        # Our own log line per request names the route and token, never a header; uvicorn's
        # access log would add the raw path and client address only.
        access_log=False,
        log_config=None,
        server_header=False,
        # X-Forwarded-* is ignored: the client address is not used for any decision.
        proxy_headers=False,
        timeout_keep_alive=15,
        timeout_graceful_shutdown=10,
        # Header section bound (the body bound is ROTATOR_API_MAX_BODY, checked per request).
        h11_max_incomplete_event_size=16_384,
    )
    # One line for operators and for tests that wait on it; uvicorn's own logging is off.
    print(f"rotator api listening on http://{host}:{port}", file=sys.stderr, flush=True)
    uvicorn.Server(config).run()
