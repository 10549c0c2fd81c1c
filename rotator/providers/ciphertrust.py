"""Thales CipherTrust Manager CCKM: rotate the secret of a Salesforce connection.

Target fields: ``base_url`` = ``https://{host}/api/v1``; ``resource_id`` = a Salesforce connection
id (``in-place``) or a CCKM Salesforce organization id (``blue-green``). Credentials:
``username``, ``password``. Options: ``domain`` (login domain), ``strategy`` (``in-place``, the
default, or ``blue-green``), and for blue-green ``name_prefix`` (default: the current
connection's name without its ``-v<n>`` suffix, plus a short tag of the organization id so
organizations sharing a connection never collide), ``grace_period_seconds`` (default 3600: how long
a retired connection is kept), ``static_fields`` (non-secret connection settings for the new
connection; by default copied from the current one: cloud_name, client_id, username,
domain_name). Secret fields: the connection's secret settings (client_secret, password...).

Token: password grant, then the refresh-token grant for later mints (the JWT lives 300 s; the
token cache renews it at 240 s), falling back to the password grant when the refresh fails.

``in-place``: version = the connection's ``updatedAt``; ``apply`` re-reads and raises
VersionConflict if it moved, then PATCHes the secret fields together with ``meta.rotator =
<want.marker>`` (merged into the live meta), which is the marker ``read`` reports. Secrets are
never readable, so an out-of-band secret change after ours keeps the marker: ``carries`` is
False when the version after our update is known and the live one differs, and otherwise the
engine's version comparison has to catch it.

``blue-green``: version = the organization's ``updatedAt``; the marker is ``meta.rotator`` of
the connection the organization points at. ``apply`` runs journaled steps that a later attempt
resumes without duplicates: (1) find or create the connection ``{prefix}-{version_id}`` (its id
is journaled; a 409 or a name lookup means it exists and is reused), (2) test it through
``connection-test`` (a failure is permanent), (3) re-check the organization's ``updatedAt`` and
PATCH it to the new connection, journaling the old one as retired. Retired connections are
deleted once the grace period has passed: by ``after_promote`` from the journal (it runs right
after promotion, so only a short grace period lets it act), and by later rotations, which delete
connections rotator created for this organization (``meta.rotator_org``) when neither they nor
the organization have changed for a grace period. A connection rotator did not create (the one
the first rotation replaced) is left to the operator unless ``after_promote`` may delete it; it
may serve other organizations. The connection the organization points at is never deleted.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from rotator.errors import (
    AuthError,
    BadRequest,
    NotFound,
    PermanentError,
    ProviderError,
    VersionConflict,
)
from rotator.providers.base import (
    ApplyResult,
    Journal,
    ProviderContext,
    RemoteState,
    SecretPayload,
    TargetSpec,
    Want,
    authorized,
    raise_for_status,
    redact,
    require,
    send,
)

NAME = "ciphertrust"
CONNECTIONS = "/connectionmgmt/services/salesforce/connections"
CONNECTION_TEST = "/connectionmgmt/services/salesforce/connection-test"
ORGANIZATIONS = "/cckm/sfdc/organizations"
MARKER_KEY = "rotator"
ORG_KEY = "rotator_org"  # which organization a rotator-created connection belongs to
STEP_NEW = "ciphertrust_new_connection"
STEP_RETIRE = "ciphertrust_retire"
IN_PLACE = "in-place"
BLUE_GREEN = "blue-green"
DEFAULT_GRACE = 3600.0
# Non-secret settings a new connection inherits from the one it replaces.
INHERITED = ("cloud_name", "client_id", "username", "domain_name")
_VERSION_SUFFIX = re.compile(r"-v\d+$")
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


class CipherTrust:
    name: ClassVar[str] = NAME
    replay_safe: ClassVar[bool] = False

    def __init__(self, context: ProviderContext, clock: Callable[[], float] = time.time) -> None:
        self._ctx = context
        self._clock = clock  # wall clock: compared with the provider's timestamps
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

    async def _request(
        self,
        target: TargetSpec,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        url = f"{target.base_url}{path}"
        client = self._ctx.client(target)

        async def call(token: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            return await send(client, NAME, method, url, headers=headers, json=body, params=params)

        return await authorized(
            self._ctx.tokens, self._token_key(target), lambda: self._mint(target), call
        )

    # -- resources ------------------------------------------------------------------------

    async def _connection(self, target: TargetSpec, ref: str) -> dict[str, Any] | None:
        """A connection by id (or name, which the API also accepts); None when absent."""
        response = await self._request(target, "GET", f"{CONNECTIONS}/{quote(ref, safe='')}")
        if response.status_code == 404:
            return None
        raise_for_status(response, NAME, describe_error)
        return dict(response.json())

    async def _connections(
        self, target: TargetSpec, name: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        skip = 0
        for _ in range(_MAX_PAGES):
            params: dict[str, Any] = {"skip": skip, "limit": _PAGE}
            if name:
                params["name"] = name
            response = await self._request(target, "GET", CONNECTIONS, params=params)
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
        async for resource in self._connections(target, name):
            if resource.get("name") == name:
                return await self._connection(target, str(resource["id"])) or resource
        return None

    async def _find(self, target: TargetSpec, name: str) -> dict[str, Any] | None:
        """A connection by exact name: the API takes names in the path, the list is the
        fallback."""
        found = await self._connection(target, name)
        if found is not None and found.get("name") == name:
            return found
        return await self._listed(target, name)

    async def _resolve(self, target: TargetSpec, ref: str) -> dict[str, Any] | None:
        """What an organization's ``connection`` (an id or a name) refers to."""
        return await self._connection(target, ref) or await self._listed(target, ref)

    async def _organization(self, target: TargetSpec) -> dict[str, Any]:
        response = await self._request(
            target, "GET", f"{ORGANIZATIONS}/{quote(target.resource_id, safe='')}"
        )
        raise_for_status(response, NAME, describe_error)
        return dict(response.json())

    def _strategy(self, target: TargetSpec) -> str:
        strategy = str(target.options.get("strategy", IN_PLACE))
        if strategy not in (IN_PLACE, BLUE_GREEN):
            raise BadRequest(
                f"option 'strategy' must be {IN_PLACE!r} or {BLUE_GREEN!r}", provider=NAME
            )
        return strategy

    def _grace(self, target: TargetSpec) -> float:
        return float(target.options.get("grace_period_seconds", DEFAULT_GRACE))

    # -- read -----------------------------------------------------------------------------

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState:
        if self._strategy(target) == IN_PLACE:
            connection = await self._connection(target, target.resource_id)
            if connection is None:
                raise NotFound("salesforce connection not found", provider=NAME, status=404)
            marker = meta_of(connection).get(MARKER_KEY)
            return RemoteState(
                version=str(connection.get("updatedAt") or ""),
                marker=str(marker) if marker else None,
                summary={
                    "strategy": IN_PLACE,
                    "connection_id": connection.get("id"),
                    "connection_name": connection.get("name"),
                    "updatedAt": connection.get("updatedAt"),
                },
            )
        organization = await self._organization(target)
        ref = organization.get("connection")
        current = await self._resolve(target, str(ref)) if ref else None
        marker = meta_of(current).get(MARKER_KEY)
        return RemoteState(
            version=str(organization.get("updatedAt") or ""),
            marker=str(marker) if marker else None,
            summary={
                "strategy": BLUE_GREEN,
                "organization": organization.get("name"),
                "updatedAt": organization.get("updatedAt"),
                "connection": ref,
                "connection_id": (current or {}).get("id"),
                "connection_name": (current or {}).get("name"),
            },
        )

    # -- apply ----------------------------------------------------------------------------

    async def apply(
        self,
        target: TargetSpec,
        secret: SecretPayload,
        expected: RemoteState,
        want: Want,
        journal: Journal,
    ) -> ApplyResult:
        try:
            if self._strategy(target) == IN_PLACE:
                return await self._apply_in_place(target, secret, expected, want)
            return await self._apply_blue_green(target, secret, expected, want, journal)
        except ProviderError as exc:
            redact(exc, secret)  # validation messages may quote a submitted value
            raise

    async def _apply_in_place(
        self, target: TargetSpec, secret: SecretPayload, expected: RemoteState, want: Want
    ) -> ApplyResult:
        live = await self._connection(target, target.resource_id)
        if live is None:
            raise NotFound("salesforce connection not found", provider=NAME, status=404)
        if str(live.get("updatedAt") or "") != expected.version:
            raise VersionConflict(
                "connection changed since it was read", provider=NAME, code="updatedAt"
            )
        body = {**secret.fields, "meta": {**meta_of(live), MARKER_KEY: want.marker}}
        response = await self._request(
            target, "PATCH", f"{CONNECTIONS}/{quote(target.resource_id, safe='')}", body=body
        )
        raise_for_status(response, NAME, describe_error)
        updated = response.json().get("updatedAt")
        return ApplyResult(version=str(updated) if updated else None)

    async def _apply_blue_green(
        self,
        target: TargetSpec,
        secret: SecretPayload,
        expected: RemoteState,
        want: Want,
        journal: Journal,
    ) -> ApplyResult:
        old_id = expected.summary.get("connection_id")
        old_name = expected.summary.get("connection_name")
        old = await self._connection(target, str(old_id)) if old_id else None
        prefix = self._prefix(target, str(old_name) if old_name else None)
        name = f"{prefix}-{want.version_id}"

        # Housekeeping for earlier rotations: best effort, it must never block this one.
        try:
            await self._sweep(target, prefix, keep={name})
        except ProviderError:
            pass

        settings: dict[str, Any] = {
            k: old[k] for k in INHERITED if old and old.get(k) not in (None, "")
        }
        settings.update(dict(target.options.get("static_fields") or {}))
        params = {**settings, **secret.fields}

        # Step 1: the new connection, found or created, journaled by id.
        new = await self._ensure_connection(target, name, params, want, journal)
        new_id = str(new["id"])

        # Step 2: prove the new secret works before anything points at it.
        await self._test(target, params)

        # Step 3: re-point the organization, unless something else changed it meanwhile.
        organization = await self._organization(target)
        if str(organization.get("updatedAt") or "") != expected.version:
            raise VersionConflict(
                "organization changed since it was read", provider=NAME, code="updatedAt"
            )
        if refers_to(organization.get("connection"), new):
            return ApplyResult(version=expected.version)
        if old_id and str(old_id) != new_id:
            await journal.record(
                STEP_RETIRE,
                {"connection_id": old_id, "connection_name": old_name, "since": self._clock()},
            )
        response = await self._request(
            target,
            "PATCH",
            f"{ORGANIZATIONS}/{quote(target.resource_id, safe='')}",
            body={"connection": new_id},
        )
        raise_for_status(response, NAME, describe_error)
        updated = response.json().get("updatedAt")
        return ApplyResult(version=str(updated) if updated else None)

    def _prefix(self, target: TargetSpec, current_name: str | None) -> str:
        configured = target.options.get("name_prefix")
        if configured:
            return str(configured)
        if current_name:
            # Organizations may share one hand-made connection: a per-organization tag keeps
            # the connections that rotator creates for each of them from colliding by name.
            tag = hashlib.sha256(target.resource_id.encode()).hexdigest()[:8]
            base = _VERSION_SUFFIX.sub("", current_name).removesuffix(f"-{tag}")
            return f"{base}-{tag}"
        return f"rotator-{target.resource_id}"

    async def _ensure_connection(
        self,
        target: TargetSpec,
        name: str,
        params: Mapping[str, Any],
        want: Want,
        journal: Journal,
    ) -> dict[str, Any]:
        recorded = journal.get(STEP_NEW) or {}
        connection = None
        if recorded.get("id") and recorded.get("name") == name:
            connection = await self._connection(target, str(recorded["id"]))
        if connection is None:
            connection = await self._find(target, name)
        if connection is None:
            # Intent first: after a crash or a lost response the next attempt finds it by name.
            await journal.record(STEP_NEW, {"name": name})
            body = {
                "name": name,
                "products": ["cckm"],
                **params,
                "description": f"created by rotator for organization {target.resource_id}",
                "meta": {MARKER_KEY: want.marker, ORG_KEY: target.resource_id},
            }
            response = await self._request(target, "POST", CONNECTIONS, body=body)
            if response.status_code != 409:
                raise_for_status(response, NAME, describe_error)
                connection = dict(response.json())
                await journal.record(STEP_NEW, {"name": name, "id": str(connection["id"])})
                return connection
            # 409 duplicate name: an earlier attempt created it and its response was lost.
            connection = await self._find(target, name)
            if connection is None:
                raise VersionConflict(
                    f"connection name {name!r} is taken but no such connection can be found",
                    provider=NAME,
                    status=409,
                )
        meta = meta_of(connection)
        if meta.get(ORG_KEY) != target.resource_id:
            raise PermanentError(
                f"a connection named {name!r} exists that rotator did not create for this "
                "organization; set option 'name_prefix'",
                provider=NAME,
            )
        if meta.get(MARKER_KEY) != want.marker:
            # Ours, but not (or not verifiably) carrying this secret: make it so.
            response = await self._request(
                target,
                "PATCH",
                f"{CONNECTIONS}/{quote(str(connection['id']), safe='')}",
                body={**params, "meta": {**meta, MARKER_KEY: want.marker}},
            )
            raise_for_status(response, NAME, describe_error)
        await journal.record(STEP_NEW, {"name": name, "id": str(connection["id"])})
        return connection

    async def _test(self, target: TargetSpec, params: Mapping[str, Any]) -> None:
        response = await self._request(target, "POST", CONNECTION_TEST, body=params)
        status = response.status_code
        if 400 <= status < 500 and status not in (401, 403, 429):
            try:
                code, message = describe_error(response)
            except ValueError:
                code, message = "", ""
            raise PermanentError(
                f"the new Salesforce connection failed its connection test: {message or status}",
                provider=NAME,
                status=status,
                code=code,
            )
        raise_for_status(response, NAME, describe_error)
        try:
            result = response.json()
        except ValueError:
            return
        # CipherTrust answers a failed test with 200 {"connection_ok": false, "message"}.
        if isinstance(result, dict) and result.get("connection_ok") is False:
            detail = result.get("message") or "connection_ok is false"
            raise PermanentError(
                f"the new Salesforce connection failed its connection test: {detail}",
                provider=NAME,
                status=status,
            )

    def carries(
        self, live: RemoteState, want: Want, applied_version: str | None = None
    ) -> bool | None:
        if applied_version is not None and applied_version != live.version:
            return False  # changed again after our update
        return live.marker == want.marker

    # -- retirement -----------------------------------------------------------------------

    async def _delete(self, target: TargetSpec, connection_id: str) -> bool:
        response = await self._request(
            target, "DELETE", f"{CONNECTIONS}/{quote(connection_id, safe='')}"
        )
        if response.status_code == 404:
            return False
        try:
            raise_for_status(response, NAME, describe_error)
        except PermanentError:
            return False  # e.g. still in use elsewhere: keep it, a later sweep retries
        return True

    async def _sweep(self, target: TargetSpec, prefix: str, keep: set[str]) -> list[str]:
        """Delete connections rotator made for this organization that have been unused for a
        grace period. Every connection but the current one has been unused at least since the
        organization last changed, so both that and the connection's age must exceed it."""
        grace = self._grace(target)
        organization = await self._organization(target)
        now = self._clock()
        changed = parse_time(organization.get("updatedAt"))
        if changed is None or now - changed < grace:
            return []
        current = organization.get("connection")
        deleted: list[str] = []
        candidates = [
            c
            async for c in self._connections(target)
            if str(c.get("name", "")).startswith(f"{prefix}-")
            and c.get("name") not in keep
            and not refers_to(current, c)
        ]
        for candidate in candidates:
            full = await self._connection(target, str(candidate["id"]))
            if full is None or meta_of(full).get(ORG_KEY) != target.resource_id:
                continue
            created = parse_time(full.get("createdAt"))
            updated = parse_time(full.get("updatedAt")) or created
            if created is None or updated is None or now - max(created, updated) < grace:
                continue
            if await self._delete(target, str(full["id"])):
                deleted.append(str(full["id"]))
        return deleted

    async def after_promote(self, target: TargetSpec, journal: Journal) -> None:
        """Delete what this job retired once the grace period has passed (so, in practice, only
        with a short grace period: this runs right after promotion), and sweep what earlier
        rotations left. Reads the journal only: the job's lease is gone by now, so nothing is
        recorded; deleting twice is harmless (404)."""
        if self._strategy(target) != BLUE_GREEN:
            return None
        retired = journal.get(STEP_RETIRE)
        organization = await self._organization(target)
        current = organization.get("connection")
        if (
            retired
            and self._clock() - float(retired.get("since", 0)) >= self._grace(target)
            and current not in (retired.get("connection_id"), retired.get("connection_name"))
        ):
            await self._delete(target, str(retired["connection_id"]))
        current_connection = await self._resolve(target, str(current)) if current else None
        name = (current_connection or {}).get("name")
        await self._sweep(target, self._prefix(target, str(name) if name else None), keep=set())
        return None
