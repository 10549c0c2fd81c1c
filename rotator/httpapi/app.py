"""The starlette application: routes, the wrapper every endpoint runs in, JSON errors.

The wrapper (``_endpoint``) authenticates the bearer token, checks the endpoint's scope, runs
the handler, turns every failure into a JSON error (never a traceback), writes the call's
``api.request`` audit event and one log line (method, route, status, token name, request id:
never a header or a body).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rotator.audit import AuditEvent, AuditReader
from rotator.config import Settings
from rotator.errors import ApiError, AuditUnavailable, BadInput
from rotator.httpapi import routes
from rotator.httpapi.auth import ApiToken, TokenTable, bearer
from rotator.httpapi.idempotency import IdempotencyStore
from rotator.httpapi.openapi import document
from rotator.httpapi.queries import JOB_ID, TARGET_NAME
from rotator.httpapi.routes import Noted, reply
from rotator.runtime import ConfigHolder, Runtime

log = structlog.get_logger("rotator.httpapi")

Handler = Callable[[Request, "ApiState", ApiToken, Noted], Awaitable[JSONResponse]]


@dataclass
class ApiState:
    runtime: Runtime
    reader: AuditReader
    tokens: TokenTable
    idempotency: IdempotencyStore
    max_body: int


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return reply(status, {"error": {"code": code, "message": message}}, headers)


def _endpoint(route: str, scope: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        started = time.monotonic()
        request_id = uuid.uuid4().hex[:16]
        state: ApiState = request.app.state.api
        token = state.tokens.find(presented) if (presented := bearer(_auth(request))) else None
        if token is None:
            denied = _error(
                401,
                "unauthorized",
                "a valid bearer token is required",
                {"WWW-Authenticate": 'Bearer realm="rotator"'},
            )
            _log(request, route, denied.status_code, None, request_id, started)
            return _with_id(denied, request_id)
        noted = _noted_from_path(request)
        response: Response
        if scope not in token.scopes:
            response = _error(403, "forbidden", f"this token lacks the {scope!r} scope")
        else:
            response = await _handle(handler, request, state, token, noted)
        try:
            await state.runtime.audit.emit(
                AuditEvent(
                    "api.request",
                    actor=token.actor,
                    target=noted.target,
                    job_id=noted.job_id,
                    detail=f"{request.method} {route} {response.status_code} id={request_id}",
                )
            )
        except AuditUnavailable:
            # Fail closed: a call that cannot be audited is not answered (a stored
            # Idempotency-Key response is replayed, and audited, on retry).
            response = _error(503, "audit_unavailable", "the audit log cannot be written")
        _log(request, route, response.status_code, token, request_id, started)
        return _with_id(response, request_id)

    return run


async def _handle(
    handler: Handler, request: Request, state: ApiState, token: ApiToken, noted: Noted
) -> Response:
    try:
        return await handler(request, state, token, noted)
    except ApiError as exc:
        return _error(exc.status, exc.code, exc.message, exc.headers)
    except BadInput as exc:
        return _error(400, "bad_request", str(exc))
    except AuditUnavailable:
        return _error(503, "audit_unavailable", "the audit log cannot be written")
    except (redis.RedisError, aioredis.RedisError, OSError) as exc:
        log.error("api: Redis unavailable", error_class=type(exc).__name__)
        return _error(
            503, "store_unavailable", "the state store is unreachable", {"Retry-After": "5"}
        )
    except Exception as exc:
        log.error("api: unexpected error", error_class=type(exc).__name__, exc_info=True)
        return _error(500, "internal_error", "unexpected error (logged on the server)")


def _noted_from_path(request: Request) -> Noted:
    """The target or job a call names in its path, if well-formed (so a denied call's audit
    event says what was asked for); handlers refine it."""
    name, job_id = request.path_params.get("name", ""), request.path_params.get("id", "")
    return Noted(
        target=name if TARGET_NAME.match(name) else None,
        job_id=job_id if JOB_ID.match(job_id) else None,
    )


def _auth(request: Request) -> str | None:
    return request.headers.get("authorization")


def _with_id(response: Response, request_id: str) -> Response:
    response.headers["X-Request-Id"] = request_id
    return response


def _log(
    request: Request,
    route: str,
    status: int,
    token: ApiToken | None,
    request_id: str,
    started: float,
) -> None:
    log.info(
        "api request",
        method=request.method,
        route=route,
        status=status,
        token=token.name if token else None,
        request_id=request_id,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )


# (method, path, scope, handler): the whole surface; the OpenAPI document must match it.
ROUTES: tuple[tuple[str, str, str, Handler], ...] = (
    ("POST", "/v1/targets/{name}/rotations", "enqueue", routes.enqueue),
    ("GET", "/v1/jobs/{id}", "read", routes.job),
    ("GET", "/v1/targets", "read", routes.targets),
    ("GET", "/v1/targets/{name}", "read", routes.target),
    ("GET", "/v1/audit", "audit", routes.audit),
)


async def _healthz(request: Request) -> Response:
    """Liveness: the process serves requests (Redis being down is not a reason to restart)."""
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    """Readiness: Redis answers."""
    state: ApiState = request.app.state.api
    try:
        await state.runtime.redis.ping()
    except (aioredis.RedisError, OSError):
        return _error(503, "not_ready", "Redis is unreachable")
    return JSONResponse({"status": "ready"})


async def _openapi(request: Request) -> Response:
    return JSONResponse(document())


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    detail = exc.detail if isinstance(exc, HTTPException) else "unexpected error"
    return _error(status, code, str(detail))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("api: unhandled error", error_class=type(exc).__name__)
    return _error(500, "internal_error", "unexpected error (logged on the server)")


PUBLIC_ROUTES = ("/v1/healthz", "/v1/readyz", "/v1/openapi.json")


def create_app(
    settings: Settings, tokens: TokenTable, *, idempotency_ttl: int, max_body: int
) -> Starlette:
    """The app; its Runtime (Redis pools, audit writer) is built when the server starts, in
    the server's event loop, and closed when it stops."""
    holder = ConfigHolder(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from rotator.connections import sync_redis
        from rotator.embedded import redis_url_for

        runtime = Runtime(settings, holder)
        client = sync_redis(redis_url_for(settings), socket_timeout=30)
        app.state.api = ApiState(
            runtime,
            AuditReader(client, runtime.keys),
            tokens,
            IdempotencyStore(runtime.redis, runtime.keys, idempotency_ttl),
            max_body,
        )
        try:
            yield
        finally:
            client.close()
            await runtime.aclose()

    table = [
        Route(path, _endpoint(path, scope, handler), methods=[method])
        for method, path, scope, handler in ROUTES
    ]
    table += [
        Route("/v1/healthz", _healthz, methods=["GET"]),
        Route("/v1/readyz", _readyz, methods=["GET"]),
        Route("/v1/openapi.json", _openapi, methods=["GET"]),
    ]
    return Starlette(
        routes=table,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
