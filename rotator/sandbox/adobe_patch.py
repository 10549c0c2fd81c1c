"""The JSON Patch subset Adobe Flow Service accepts on a connection (RFC 6902 semantics).

Ops are add|replace|remove (others FLOW-1434) on ``/name``, ``/description``, ``/auth/params``
or ``/auth/params/<key>`` (``~1``/``~0`` escapes); anything else, a missing ``path``/``value``,
removing a required field or replacing/removing a member that does not exist is FLOW-1455.
The patch applies to a copy: a document with any bad operation changes nothing.
"""

from __future__ import annotations

from typing import Any

from rotator.sandbox.state import JSON


class PatchError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


_PARAM = "/auth/params/"


def apply_patch(conn: JSON, ops: Any) -> JSON:
    """Apply Flow Service's JSON Patch subset to a copy of the connection's editable fields."""
    if not isinstance(ops, list) or not ops:
        raise PatchError(1455, "The patch document must be a non-empty JSON array.")
    name: str = conn["name"]
    description: str | None = conn.get("description")
    params: JSON = dict(conn["auth"]["params"])
    for i, op in enumerate(ops):
        kind, path, value = _operation(i, op)
        if path == "/name":
            name = _patched_name(kind, value)
        elif path == "/description":
            description = _patched_description(kind, value, description)
        elif path == "/auth/params":
            params = _patched_params(kind, value)
        elif path.startswith(_PARAM) and len(path) > len(_PARAM):
            _patch_param(params, kind, path, value)
        else:
            raise PatchError(1455, f"Unsupported patch path '{path}'.")
    return {"name": name, "description": description, "params": params}


def _operation(i: int, op: Any) -> tuple[str, str, Any]:
    """``(op, path, value)`` of patch operation ``i``, checked in the service's order."""
    if not isinstance(op, dict):
        raise PatchError(1455, f"Patch operation {i} must be an object.")
    kind, path = op.get("op"), op.get("path")
    if kind not in ("add", "replace", "remove"):
        raise PatchError(1434, f"Unsupported operation '{kind}' received.")
    if not isinstance(path, str):
        raise PatchError(1455, f'Missing field "path" in operation {i}.')
    if kind != "remove" and "value" not in op:
        raise PatchError(1455, f'Missing field "value" in operation {i}.')
    return kind, path, op.get("value")


def _patched_name(kind: str, value: Any) -> str:
    if kind == "remove":
        raise PatchError(1455, "The field 'name' cannot be removed.")
    if not isinstance(value, str) or not value.strip():
        raise PatchError(1455, "The field 'name' must be a non-empty string.")
    return value


def _patched_description(kind: str, value: Any, description: str | None) -> str | None:
    if kind == "remove":
        if description is None:
            raise PatchError(1455, 'Missing field "description".')
        return None
    if not isinstance(value, str):
        raise PatchError(1455, "The field 'description' must be a string.")
    if kind == "replace" and description is None:
        raise PatchError(1455, 'Missing field "description".')
    return value


def _patched_params(kind: str, value: Any) -> JSON:
    if kind == "remove":
        raise PatchError(1455, "The field 'auth.params' cannot be removed.")
    if not isinstance(value, dict):
        raise PatchError(1455, "The field 'auth.params' must be an object.")
    return dict(value)


def _patch_param(params: JSON, kind: str, path: str, value: Any) -> None:
    key = _unescape(path[len(_PARAM) :])
    if "/" in path[len(_PARAM) :]:
        raise PatchError(1455, f"Unsupported patch path '{path}'.")
    if kind in ("replace", "remove") and key not in params:
        raise PatchError(1455, f'Missing field "{key}".')
    if kind == "remove":
        del params[key]
    else:
        params[key] = value
