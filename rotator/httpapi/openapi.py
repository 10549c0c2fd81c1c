"""The OpenAPI 3.1 document served at ``/v1/openapi.json``, written by hand.

A test checks that every route the app serves is in ``paths`` with its method (and nothing
else is), so the document cannot drift from the routes.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_JOB_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"}
_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_NUM = {"type": ["number", "null"]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "bad input (the message names the parameter)",
        401: "missing, malformed or unknown bearer token",
        403: "the token lacks this endpoint's scope",
        404: "no such target or job",
        409: "a request with this Idempotency-Key is in progress",
        413: "body too large",
        415: "body is not application/json",
        422: "Idempotency-Key reused for a different request",
        503: "Redis or the audit log is unavailable",
    }
    return {str(s): _json(_ERROR, text[s]) for s in (400, 401, 403, *statuses, 503)}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


_TARGET = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "provider": {"type": "string"},
        "secret": {"type": "string"},
        "schedule": _NULLABLE_STR,
        "enabled": {"type": "boolean"},
        "current": _NULLABLE_STR,
        "previous": _NULLABLE_STR,
        "pending": _NULLABLE_STR,
        "rotated_at": _NULLABLE_NUM,
        "next_due": _NULLABLE_NUM,
        "last_outcome": _NULLABLE_STR,
        "last_job": _NULLABLE_STR,
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "EnqueueRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "reason": {"type": "string", "maxLength": 500, "description": "kept in the audit log"},
            "version": {
                "type": "string",
                "pattern": "^v\\d{12}$",
                "description": "roll to this stored secret version",
            },  # fmt: skip
        },
    },
    "Enqueued": {
        "type": "object",
        "required": ["job_id", "created", "target", "job"],
        "properties": {
            "job_id": _JOB_ID,
            "created": {
                "type": "boolean",
                "description": "false: the target's queued or running job is returned",
            },  # fmt: skip
            "target": {"type": "string"},
            "job": {"type": "string", "description": "path of the job resource"},
        },
    },
    "Job": {
        "type": "object",
        "description": "rotator.models.Job.public() plus the step journal; no secret values",
        "properties": {
            "id": _JOB_ID,
            "target": {"type": "string"},
            "reason": {"type": "string", "enum": ["scheduled", "on-demand"]},
            "actor": {"type": "string"},
            "state": {
                "type": "string",
                "enum": [
                    "queued",
                    "running",
                    "retrying",
                    "completed",
                    "conflict",
                    "failed",
                    "dead",
                ],
            },
            "attempts": {"type": "integer"},
            "secret_version": _NULLABLE_STR,
            "last_error": {"type": "string"},
            "last_error_class": {"type": "string"},
            "journal": {"type": "object"},
        },
    },
    "Target": _TARGET,
    "TargetDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/Target"},
            {
                "type": "object",
                "properties": {
                    "base_url": {"type": "string"},
                    "resource_id": {"type": "string"},
                    "jitter": {"type": "string"},
                },
            },
        ]
    },
    "AuditPage": {
        "type": "object",
        "required": ["events", "next_cursor"],
        "properties": {
            "events": {"type": "array", "items": {"type": "object"}},
            "next_cursor": _NULLABLE_STR,
        },
    },
}

_AUDIT_PARAMS = [
    _query("target", _NAME, "one target's events"),
    _query("job", _JOB_ID, "one job's events"),
    _query("provider", {"type": "string"}, "provider name"),
    _query("event", {"type": "string"}, "event name (repeatable)"),
    _query("outcome", {"type": "string"}, "success|noop|retry|conflict|failed|dead (repeatable)"),
    _query("actor", {"type": "string"}, "actor, e.g. api:incident-bot; globs allowed"),
    _query("since", {"type": "string"}, "24h / 90d ago, ISO 8601 time, or unix seconds"),
    _query("until", {"type": "string"}, "same forms as since"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
]


def _op(summary: str, scope: str | None, responses: dict[str, Any], **extra: Any) -> Any:
    operation: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    operation["security"] = [{"bearer": [scope]}] if scope else []
    return operation


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _paths() -> dict[str, Any]:
    ok = {"200": _json({"type": "object"}, "ok"), "503": _json(_ERROR, "not ready")}
    return {
        "/v1/targets/{name}/rotations": {
            "post": _op(
                "Queue an on-demand rotation (the target's queued or running job if it has one)",
                "enqueue",
                {
                    "202": _json({"$ref": "#/components/schemas/Enqueued"}, "job created"),
                    "200": _json({"$ref": "#/components/schemas/Enqueued"}, "existing job"),
                    **_errors(404, 409, 413, 415, 422),
                },
                parameters=[
                    _path_param("name", _NAME),
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 255},
                        "description": "same key + same body: the same response (24 h)",
                    },
                ],  # fmt: skip
                requestBody={
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/EnqueueRequest"}
                        }
                    },
                },
            )
        },
        "/v1/jobs/{id}": {
            "get": _op(
                "One job with its step journal",
                "read",
                {"200": _json({"$ref": "#/components/schemas/Job"}, "the job"), **_errors(404)},
                parameters=[_path_param("id", _JOB_ID)],
            )
        },
        "/v1/targets": {
            "get": _op(
                "Every target with its current version, last rotation and next due time",
                "read",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "targets": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Target"},
                                }
                            },
                        },
                        "targets",
                    ),
                    **_errors(),
                },
            )
        },
        "/v1/targets/{name}": {
            "get": _op(
                "One target",
                "read",
                {
                    "200": _json({"$ref": "#/components/schemas/TargetDetail"}, "the target"),
                    **_errors(404),
                },
                parameters=[_path_param("name", _NAME)],
            )
        },
        "/v1/audit": {
            "get": _op(
                "Audit events, newest first, filtered and paged",
                "audit",
                {"200": _json({"$ref": "#/components/schemas/AuditPage"}, "a page"), **_errors()},
                parameters=_AUDIT_PARAMS,
            )
        },
        "/v1/healthz": {"get": _op("Liveness (no token)", None, ok)},
        "/v1/readyz": {"get": _op("Readiness: Redis reachable (no token)", None, ok)},
        "/v1/openapi.json": {"get": _op("This document (no token)", None, ok)},
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rotator",
            "version": "1",
            "description": "Trigger and follow credential rotations. Bearer tokens carry "
            "scopes (enqueue, read, audit); every call is audited with the token's name.",
        },
        "paths": _paths(),
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
