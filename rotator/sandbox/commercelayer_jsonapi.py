"""Commerce Layer's JSON:API surface: media types, error objects, the credential PATCH rules.

The routes, rate limits and records live in ``rotator.sandbox.commercelayer``; this module holds
what every answer and every PATCH body share: the media type (``Accept`` may carry only
ext/profile parameters, ``Content-Type`` also a charset), the error object
``{"title", "detail", "code", "source": {"pointer"}, "status", "meta"}`` (status as a string),
and the rules of an ``api_credentials`` PATCH document: its shape (400 ``BAD_REQUEST``) and its
values (422 ``VALIDATION_ERROR``, every problem reported at once).
"""

from __future__ import annotations

import json
from collections.abc import Container
from typing import Any

from starlette.responses import Response

from rotator.sandbox.common import json_response
from rotator.sandbox.state import JSON

MEDIA = "application/vnd.api+json"
EXPIRES_MIN, EXPIRES_MAX = 7200, 31536000
READ_ONLY = frozenset(
    {
        "client_id",
        "client_secret",
        "scopes",
        "confidential",
        "created_at",
        "updated_at",
        "kind",
        "mode",
        "custom",
    }
)
UPDATABLE = ("name", "redirect_uri", "expires_in", "reference", "reference_origin", "metadata")
_RELATIONSHIPS = "/data/relationships"


def err(
    status: int,
    code: str,
    title: str,
    detail: str,
    pointer: str | None = None,
    meta: JSON | None = None,
) -> JSON:
    e: JSON = {"title": title, "detail": detail, "code": code, "status": str(status)}
    if pointer is not None:
        e["source"] = {"pointer": pointer}
    e["meta"] = meta if meta is not None else {"error": detail}
    return e


def errors_response(
    status: int, errors: list[JSON], headers: dict[str, str] | None = None
) -> Response:
    return json_response({"errors": errors}, status, headers, media_type=MEDIA)


def one_error(
    status: int, code: str, title: str, detail: str, pointer: str | None = None
) -> Response:
    return errors_response(status, [err(status, code, title, detail, pointer)])


def _media_ok(value: str, allowed_params: frozenset[str]) -> bool:
    media, *params = [p.strip() for p in value.split(";")]
    if media.lower() != MEDIA:
        return False
    return all(p.split("=", 1)[0].strip().lower() in allowed_params for p in params if p)


def accept_ok(header: str | None) -> bool:
    if not header:
        return False
    return any(_media_ok(part, frozenset({"ext", "profile"})) for part in header.split(","))


def content_type_ok(header: str | None) -> bool:
    return bool(header) and _media_ok(header or "", frozenset({"ext", "profile", "charset"}))


def parse_patch(raw: bytes, cid: str) -> tuple[JSON, JSON] | Response:
    """The attributes and relationships of a PATCH document for ``cid``, or the 400 answer."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return one_error(400, "BAD_REQUEST", "Bad request", "The body is not valid JSON")
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict):
        return one_error(400, "BAD_REQUEST", "Bad request", "data must be an object", "/data")
    if data.get("type") != "api_credentials":
        return one_error(
            400, "BAD_REQUEST", "Type mismatch", "type must be api_credentials", "/data/type"
        )
    if data.get("id") != cid:
        return one_error(
            400, "BAD_REQUEST", "Id mismatch", "id must match the URL's id", "/data/id"
        )
    attributes = data.get("attributes", {})
    relationships = data.get("relationships", {})
    if not isinstance(attributes, dict) or not isinstance(relationships, dict):
        return one_error(
            400, "BAD_REQUEST", "Bad request", "attributes/relationships must be objects"
        )
    unknown = sorted(set(attributes) - READ_ONLY - set(UPDATABLE))
    if unknown:
        return one_error(
            400,
            "BAD_REQUEST",
            "Unknown attribute",
            f"{unknown[0]} is not an attribute of api_credentials",
            f"/data/attributes/{unknown[0]}",
        )
    return attributes, relationships


def validate_patch(
    attributes: JSON, relationships: JSON, roles: Container[str]
) -> tuple[list[JSON], JSON]:
    """Every 422 problem of a PATCH, and the changes it makes when there is none."""
    problems: list[JSON] = []
    changes: JSON = {}
    for attr in sorted(attributes):
        value = attributes[attr]
        problem = _attribute_problem(attr, value)
        if problem is None:
            changes[attr] = value
        else:
            problems.append(_invalid(attr, problem))
    for rel, value in sorted(relationships.items()):
        if rel != "role":
            problems.append(_invalid(rel, "cannot be updated", _RELATIONSHIPS))
            continue
        linkage = value.get("data") if isinstance(value, dict) else None
        if not isinstance(linkage, dict) or linkage.get("type") != "roles":
            problems.append(_invalid("role", "must be a roles resource identifier", _RELATIONSHIPS))
        elif linkage.get("id") not in roles:
            problems.append(_invalid("role", "must exist", _RELATIONSHIPS))
        else:
            changes["role_id"] = linkage["id"]
    return problems, changes


def _attribute_problem(attr: str, value: Any) -> str | None:
    if attr in READ_ONLY:
        return "is read-only and cannot be updated"
    if attr == "name":
        return None if isinstance(value, str) and value.strip() else "can't be blank"
    if attr == "expires_in":
        if isinstance(value, bool) or not isinstance(value, int):
            return "is not a number"
        if not EXPIRES_MIN <= value <= EXPIRES_MAX:
            return f"must be between {EXPIRES_MIN} and {EXPIRES_MAX}"
        return None
    if attr == "metadata":
        return None if isinstance(value, dict) else "must be an object"
    # redirect_uri, reference, reference_origin
    return None if value is None or isinstance(value, str) else "must be a string"


def _invalid(attr: str, detail: str, base: str = "/data/attributes") -> JSON:
    message = f"{attr} - {detail}"
    return err(422, "VALIDATION_ERROR", message, message, f"{base}/{attr}", {"error": detail})
