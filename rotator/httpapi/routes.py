"""The endpoint bodies. Each takes the request, the app's ``ApiState`` and the caller's token,
and returns a JSON response or raises ``ApiError``/``BadInput``; ``rotator.httpapi.app`` wraps
them with authentication, scope checks, auditing and error rendering."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from rotator.errors import (
    ApiError,
    BadInput,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    MalformedJob,
)
from rotator.httpapi import queries
from rotator.httpapi.auth import ApiToken
from rotator.httpapi.idempotency import (
    StoredResponse,
    request_fingerprint,
    valid_key,
)
from rotator.models import Reason

if TYPE_CHECKING:
    from rotator.httpapi.app import ApiState


@dataclass
class Noted:
    """What the audit event of a call names besides the caller (filled in by handlers)."""

    target: str | None = None
    job_id: str | None = None


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing anything over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, "body_too_large", f"request bodies are limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"request bodies are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_body(request: Request, body: bytes) -> object:
    if not body.strip():
        return {}
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None


async def enqueue(request: Request, state: ApiState, token: ApiToken, noted: Noted) -> JSONResponse:
    """POST /v1/targets/{name}/rotations"""
    name = noted.target = queries.target_name(request.path_params["name"])
    body = await read_body(request, state.max_body)
    reason, version = queries.enqueue_body(_json_body(request, body))
    key = request.headers.get("idempotency-key")
    fingerprint = request_fingerprint("POST", request.url.path, body)
    if key is not None:
        if not valid_key(key):
            raise ApiError(
                400, "bad_idempotency_key", "Idempotency-Key: 1 to 255 printable ASCII characters"
            )
        try:
            stored = await state.idempotency.begin(token.name, key, fingerprint)
        except IdempotencyKeyReused:
            raise ApiError(
                422, "idempotency_key_reused", "this Idempotency-Key was used for another request"
            ) from None
        except IdempotencyInProgress:
            raise ApiError(
                409,
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is in progress",
                {"Retry-After": "1"},
            ) from None
        if stored is not None:
            noted.job_id = stored.body.get("job_id")
            return reply(stored.status, stored.body, {"Idempotent-Replayed": "true"})
    try:
        job_id, created = await state.runtime.enqueue(
            name, reason=Reason.ON_DEMAND, actor=token.actor, note=reason, version=version
        )
    except BaseException as exc:
        if key is not None:  # errors are not replayed: free the key for a corrected retry
            await state.idempotency.release(token.name, key)
        if isinstance(exc, KeyError):
            raise ApiError(404, "unknown_target", f"no target named {name!r}") from None
        raise
    noted.job_id = job_id
    result = {"job_id": job_id, "created": created, "target": name, "job": f"/v1/jobs/{job_id}"}
    response = StoredResponse(202 if created else 200, result)
    if key is not None:
        await state.idempotency.finish(token.name, key, fingerprint, response)
    return reply(response.status, response.body)


async def job(request: Request, state: ApiState, token: ApiToken, noted: Noted) -> JSONResponse:
    """GET /v1/jobs/{id}"""
    job_id = noted.job_id = queries.job_id(request.path_params["id"])
    try:
        record = (await state.runtime.store.load_job(job_id)).public()
    except MalformedJob as exc:
        if exc.reason == "record is empty":
            raise ApiError(404, "unknown_job", f"no job {job_id}") from None
        raise ApiError(500, "malformed_job", "the job record cannot be parsed") from None
    noted.target = record["target"]
    record["journal"] = await state.runtime.store.journal(job_id)
    return reply(200, record)


async def _target_rows(state: ApiState, names: list[str]) -> list[dict[str, Any]]:
    config = state.runtime.config.get()
    states = await state.runtime.store.target_states(names)
    due = await state.runtime.store.next_due(names)
    rows = []
    for name in names:
        spec, stage = config.targets[name], states.get(name, {})
        rows.append(
            {
                "name": name,
                "provider": spec.provider,
                "secret": spec.secret,
                "schedule": spec.schedule,
                "enabled": spec.enabled,
                "current": stage.get("current") or None,
                "previous": stage.get("previous") or None,
                "pending": stage.get("pending") or None,
                "rotated_at": float(stage["rotated_at"]) if stage.get("rotated_at") else None,
                "next_due": due.get(name),
                "last_outcome": stage.get("last_outcome") or None,
                "last_job": stage.get("last_job") or None,
            }
        )
    return rows


async def targets(request: Request, state: ApiState, token: ApiToken, noted: Noted) -> JSONResponse:
    """GET /v1/targets"""
    if request.query_params:
        raise BadInput("this endpoint takes no query parameters")
    names = sorted(state.runtime.config.get().targets)
    return reply(200, {"targets": await _target_rows(state, names)})


async def target(request: Request, state: ApiState, token: ApiToken, noted: Noted) -> JSONResponse:
    """GET /v1/targets/{name}"""
    name = noted.target = queries.target_name(request.path_params["name"])
    spec = state.runtime.config.get().targets.get(name)
    if spec is None:
        raise ApiError(404, "unknown_target", f"no target named {name!r}")
    [row] = await _target_rows(state, [name])
    row.update(base_url=spec.base_url, resource_id=spec.resource_id, jitter=spec.jitter)
    return reply(200, row)


async def audit(request: Request, state: ApiState, token: ApiToken, noted: Noted) -> JSONResponse:
    """GET /v1/audit?target=&job=&provider=&event=&outcome=&actor=&since=&until=&limit=&cursor="""
    where, limit, cursor = queries.audit_query(request.query_params.multi_items())
    noted.target, noted.job_id = where.target, where.job_id
    # The reader is synchronous (it is the CLI's); a thread keeps the loop serving.
    page = await run_in_threadpool(state.reader.query, where, limit=limit, cursor=cursor)
    return reply(
        200, {"events": [r.to_dict() for r in page.events], "next_cursor": page.next_cursor}
    )
