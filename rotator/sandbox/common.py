"""The interface every provider imitation implements, plus small request/response helpers."""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from rotator.sandbox.state import JSON, Sandbox


class AdminError(Exception):
    """A bad admin request (answered as ``{"error": message}`` with ``status``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(
    body: Any,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    media_type: str = "application/json",
) -> Response:
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=media_type
    )


async def form_or_json(request: Request) -> dict[str, str]:
    """Token-endpoint parameters from a form-urlencoded or JSON body (query string merged in)."""
    raw = await request.body()
    params: dict[str, str] = dict(request.query_params)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or (
        raw[:1] == b"{" and ctype != "application/x-www-form-urlencoded"
    ):
        try:
            body = json.loads(raw)
        except ValueError:
            return params
        if isinstance(body, dict):
            params.update({str(k): "" if v is None else str(v) for k, v in body.items()})
        return params
    try:
        params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        pass
    return params


def str_field(body: Mapping[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise AdminError(400, f"{key} must be a string")
    return value


class ProviderSim(abc.ABC):
    """One imitated provider API, sharing the :class:`Sandbox` state."""

    name: ClassVar[str]
    # Admin collections under /_sandbox/<name>/<kind>/<id> this provider understands.
    admin_kinds: ClassVar[frozenset[str]] = frozenset({"resources"})

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.reset()

    @abc.abstractmethod
    def routes(self) -> list[BaseRoute]:
        """The provider API's routes (mounted at the sandbox root)."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Back to the seeded defaults: default clients, no resources."""

    @abc.abstractmethod
    def fault_response(self, status: int, retry_after: float | None) -> Response:
        """A provider-shaped error answer for an injected 5xx/429."""

    @abc.abstractmethod
    def admin_put(self, kind: str, rid: str, body: JSON) -> JSON:
        """Create or replace a resource from an admin body; returns its admin view."""

    @abc.abstractmethod
    def admin_get(self, kind: str, rid: str) -> JSON | None:
        """The admin view (secrets and history included), or None."""

    @abc.abstractmethod
    def admin_oob(self, kind: str, rid: str, body: JSON | None) -> JSON | None:
        """An out-of-band edit (random, or ``body`` applied); returns the admin view or None."""

    @abc.abstractmethod
    def put_client(self, client_id: str, body: JSON) -> JSON:
        """Add or replace a management-API client; returns a description without the secret."""

    def count_update(self) -> None:
        self.sb.stats.updates_applied[self.name] += 1

    def count_token(self, client_id: str = "") -> None:
        self.sb.stats.tokens_minted[self.name] += 1
        if client_id:
            self.sb.stats.tokens_by_client[(self.name, client_id)] += 1
