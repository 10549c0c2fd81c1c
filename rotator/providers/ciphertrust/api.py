"""CipherTrust Manager's API as both strategies use it: the token, connections, organizations.

Errors are ``{code, codeDesc, message, requestID}``; timestamps are RFC 3339 with nanoseconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from rotator.errors import AuthError, PermanentError
from rotator.providers.base import (
    ApplyResult,
    Journal,
    ProviderContext,
    RemoteState,
    SecretPayload,
    TargetSpec,
    Want,
    raise_for_status,
    require,
    send,
)
from rotator.providers.oauth import TokenProvider

NAME = "ciphertrust"
CONNECTIONS = "/connectionmgmt/services/salesforce/connections"
CONNECTION_TEST = "/connectionmgmt/services/salesforce/connection-test"
ORGANIZATIONS = "/cckm/sfdc/organizations"
MARKER_KEY = "rotator"
IN_PLACE = "in-place"
BLUE_GREEN = "blue-green"
_FRACTION = re.compile(r"(\.\d{6})\d+")
_PAGE = 100
_MAX_PAGES = 50


def describe_error(response: httpx.Response) -> tuple[str, str]:
    """``{code, codeDesc, message, requestID}`` -> (codeDesc or code, message [request id])."""
    body = response.json()
    if not isinstance(body, dict):
        return "", ""
    code = body.get("codeDesc") or body.get("code") or body.get("error") or ""
    message = str(body.get("message") or body.get("error_description") or "")
    if body.get("requestID"):
        message = f"{message} (request id {body['requestID']})".lstrip()
    return str(code), message


def parse_time(value: Any) -> float | None:
    """RFC 3339 (CipherTrust uses nanoseconds) -> epoch seconds; None when absent or odd."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", value)).timestamp()
    except ValueError:
        return None


def meta_of(resource: Mapping[str, Any] | None) -> dict[str, Any]:
    meta = (resource or {}).get("meta")
    return dict(meta) if isinstance(meta, dict) else {}


def refers_to(reference: Any, connection: Mapping[str, Any]) -> bool:
    """An organization names its connection by id or by name."""
    return bool(reference) and reference in (connection.get("id"), connection.get("name"))


def quoted(path: str, ref: str) -> str:
    return f"{path}/{quote(ref, safe='')}"


def remote_state(
    versioned: Mapping[str, Any], carrier: Mapping[str, Any] | None, **summary: Any
) -> RemoteState:
    """The version is ``versioned``'s ``updatedAt``; the marker is on the connection that
    carries the secret (``carrier``)."""
    marker = meta_of(carrier).get(MARKER_KEY)
    return RemoteState(
        version=str(versioned.get("updatedAt") or ""),
        marker=str(marker) if marker else None,
        summary=summary,
    )


@dataclass(frozen=True)
class Update:
    """One ``apply`` call, as a strategy receives it."""

    target: TargetSpec
    secret: SecretPayload
    expected: RemoteState
    want: Want
    journal: Journal


class Strategy(Protocol):
    """One way of putting a new secret live; ``CipherTrust`` picks one per target."""

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState: ...

    async def apply(self, update: Update) -> ApplyResult: ...

    async def after_promote(self, target: TargetSpec, journal: Journal) -> None: ...


class CipherTrustAPI(TokenProvider):
    """The token dance and the resource calls; the strategies drive them."""

    def __init__(self, context: ProviderContext, clock: Callable[[], float] = time.time) -> None:
        super().__init__(context)
        self.clock = clock  # wall clock: compared with the provider's timestamps
        self._refresh_tokens: dict[tuple[str, ...], str] = {}

    # -- auth -----------------------------------------------------------------------------

    def _token_key(self, target: TargetSpec) -> tuple[str, ...]:
        return (
            NAME,
            target.base_url,
            str(require(target.credentials, "username", "credential")),
            str(target.options.get("domain", "")),
        )

    async def _mint(self, target: TargetSpec) -> tuple[str, float]:
        key = self._token_key(target)
        client = self._ctx.client(target)
        url = f"{target.base_url}/auth/tokens/"
        refresh = self._refresh_tokens.get(key)
        if refresh:
            response = await send(
                client,
                NAME,
                "POST",
                url,
                json={"grant_type": "refresh_token", "refresh_token": refresh},
            )
            if response.status_code < 400:
                return self._accept_token(key, response)
            # Expired or revoked refresh token: start over with the password.
            self._refresh_tokens.pop(key, None)
        body = {
            "grant_type": "password",
            "username": key[2],
            "password": require(target.credentials, "password", "credential"),
        }
        if key[3]:
            body["domain"] = key[3]
        response = await send(client, NAME, "POST", url, json=body)
        raise_for_status(response, NAME, describe_error, overrides={400: AuthError})
        return self._accept_token(key, response)

    def _accept_token(self, key: tuple[str, ...], response: httpx.Response) -> tuple[str, float]:
        body = response.json()
        if body.get("refresh_token"):
            self._refresh_tokens[key] = str(body["refresh_token"])
        return str(body["jwt"]), float(body.get("duration") or 300)

    async def request(
        self,
        target: TargetSpec,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        url = f"{target.base_url}{path}"
        return await self._authorized(target, method, url, json=body, params=params)

    # -- resources ------------------------------------------------------------------------

    async def connection(self, target: TargetSpec, ref: str) -> dict[str, Any] | None:
        """A connection by id (or name, which the API also accepts); None when absent."""
        response = await self.request(target, "GET", quoted(CONNECTIONS, ref))
        if response.status_code == 404:
            return None
        raise_for_status(response, NAME, describe_error)
        return dict(response.json())

    async def connections(
        self, target: TargetSpec, name: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        skip = 0
        for _ in range(_MAX_PAGES):
            params: dict[str, Any] = {"skip": skip, "limit": _PAGE}
            if name:
                params["name"] = name
            response = await self.request(target, "GET", CONNECTIONS, params=params)
            raise_for_status(response, NAME, describe_error)
            page = response.json()
            resources = page.get("resources") or []
            for resource in resources:
                yield resource
            skip += len(resources)
            if not resources or skip >= int(page.get("total") or 0):
                return

    async def _listed(self, target: TargetSpec, name: str) -> dict[str, Any] | None:
        # The list's name filter may match wildcards or be ignored: insist on the exact name.
        async for resource in self.connections(target, name):
            if resource.get("name") == name:
                return await self.connection(target, str(resource["id"])) or resource
        return None

    async def find(self, target: TargetSpec, name: str) -> dict[str, Any] | None:
        """A connection by exact name: the API takes names in the path, the list is the
        fallback."""
        found = await self.connection(target, name)
        if found is not None and found.get("name") == name:
            return found
        return await self._listed(target, name)

    async def resolve(self, target: TargetSpec, ref: str) -> dict[str, Any] | None:
        """What an organization's ``connection`` (an id or a name) refers to."""
        return await self.connection(target, ref) or await self._listed(target, ref)

    async def organization(self, target: TargetSpec) -> dict[str, Any]:
        response = await self.request(target, "GET", quoted(ORGANIZATIONS, target.resource_id))
        raise_for_status(response, NAME, describe_error)
        return dict(response.json())

    async def in_use(self, target: TargetSpec, connection: Mapping[str, Any]) -> bool:
        """Whether any organization points at ``connection`` (by id or name). Raises when the
        organization list cannot be read in full: the caller must then assume it is in use."""
        skip = 0
        for _ in range(_MAX_PAGES):
            params = {"skip": skip, "limit": _PAGE}
            response = await self.request(target, "GET", ORGANIZATIONS, params=params)
            raise_for_status(response, NAME, describe_error)
            page = response.json()
            resources = page.get("resources") or []
            if any(refers_to(org.get("connection"), connection) for org in resources):
                return True
            skip += len(resources)
            if not resources or skip >= int(page.get("total") or 0):
                return False
        raise PermanentError("too many organizations to check who uses a connection", provider=NAME)

    async def delete(self, target: TargetSpec, connection_id: str) -> bool:
        response = await self.request(target, "DELETE", quoted(CONNECTIONS, connection_id))
        if response.status_code == 404:
            return False
        try:
            raise_for_status(response, NAME, describe_error)
        except PermanentError:
            return False  # e.g. still in use elsewhere: keep it, a later sweep retries
        return True
