"""CipherTrust ``blue-green`` strategy: a new connection per secret version, then a re-point.

``resource_id`` is a CCKM Salesforce organization id. Options: ``name_prefix`` (default: the
current connection's name without its ``-v<n>`` suffix, plus a short tag of the organization id
so organizations sharing a connection never collide), ``grace_period_seconds`` (default 3600:
how long a retired connection is kept), ``static_fields`` (non-secret connection settings for
the new connection; by default copied from the current one: cloud_name, client_id, username,
domain_name).

Version = the organization's ``updatedAt``; the marker is ``meta.rotator`` of the connection the
organization points at. ``apply`` runs journaled steps that a later attempt resumes without
duplicates: (1) find or create the connection ``{prefix}-{version_id}`` (its id is journaled; a
409 or a name lookup means it exists and is reused), (2) test it through ``connection-test`` (a
failure is permanent), (3) re-check the organization's ``updatedAt`` and PATCH it to the new
connection, journaling the old one as retired. Retired connections are deleted once the grace
period has passed: by ``after_promote`` from the journal (it runs right after promotion, so
only a short grace period lets it act), and by later rotations, which delete connections
rotator created for this organization (``meta.rotator_org``) when neither they nor the
organization have changed for a grace period. A connection rotator did not create (the one the
first rotation replaced, made by hand) may serve other organizations or tools, so it is left
to the operator unless option ``retire_foreign_connections: true`` says otherwise. No
connection that any organization points at is ever deleted: the organization list is read
right before each delete, and a list that cannot be read means no delete.

The connection test fails closed: CipherTrust does not document the test's response, so only
an explicit ``{"connection_ok": true}`` passes; any other answer is a permanent failure whose
message shows the answer's shape (keys and types, never values).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from rotator.errors import PermanentError, ProviderError, VersionConflict
from rotator.providers.base import (
    ApplyResult,
    Journal,
    RemoteState,
    TargetSpec,
    Want,
    raise_for_status,
)
from rotator.providers.ciphertrust.api import (
    BLUE_GREEN,
    CONNECTION_TEST,
    CONNECTIONS,
    MARKER_KEY,
    NAME,
    ORGANIZATIONS,
    CipherTrustAPI,
    Update,
    describe_error,
    meta_of,
    parse_time,
    quoted,
    refers_to,
    remote_state,
)
from rotator.redaction import provider_code, provider_message

ORG_KEY = "rotator_org"  # which organization a rotator-created connection belongs to
STEP_NEW = "ciphertrust_new_connection"
STEP_RETIRE = "ciphertrust_retire"
DEFAULT_GRACE = 3600.0
# Non-secret settings a new connection inherits from the one it replaces.
INHERITED = ("cloud_name", "client_id", "username", "domain_name")
_VERSION_SUFFIX = re.compile(r"-v\d+$")


def body_shape(value: Any) -> str:
    """The shape of an answer for an error message: keys and JSON types, never values."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {type(v).__name__}" for k, v in sorted(value.items())) + "}"
    return type(value).__name__


def retires_foreign(target: TargetSpec) -> bool:
    return target.options.get("retire_foreign_connections") is True


def grace(target: TargetSpec) -> float:
    return float(target.options.get("grace_period_seconds", DEFAULT_GRACE))


def prefix(target: TargetSpec, current_name: str | None) -> str:
    configured = target.options.get("name_prefix")
    if configured:
        return str(configured)
    if current_name:
        # Organizations may share one hand-made connection: a per-organization tag keeps the
        # connections that rotator creates for each of them from colliding by name.
        tag = hashlib.sha256(target.resource_id.encode()).hexdigest()[:8]
        base = _VERSION_SUFFIX.sub("", current_name).removesuffix(f"-{tag}")
        return f"{base}-{tag}"
    return f"rotator-{target.resource_id}"


class BlueGreen:
    def __init__(self, api: CipherTrustAPI) -> None:
        self._api = api

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState:
        organization = await self._api.organization(target)
        ref = organization.get("connection")
        current = await self._api.resolve(target, str(ref)) if ref else None
        return remote_state(
            organization,
            current,
            strategy=BLUE_GREEN,
            organization=organization.get("name"),
            updatedAt=organization.get("updatedAt"),
            connection=ref,
            connection_id=(current or {}).get("id"),
            connection_name=(current or {}).get("name"),
        )

    async def apply(self, update: Update) -> ApplyResult:
        api = self._api
        target, secret, expected, want, journal = (
            update.target,
            update.secret,
            update.expected,
            update.want,
            update.journal,
        )
        old_id = expected.summary.get("connection_id")
        old_name = expected.summary.get("connection_name")
        old = await api.connection(target, str(old_id)) if old_id else None
        name_prefix = prefix(target, str(old_name) if old_name else None)
        name = f"{name_prefix}-{want.version_id}"

        # Housekeeping for earlier rotations: best effort, it must never block this one.
        try:
            await self._sweep(target, name_prefix, keep={name})
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
        organization = await api.organization(target)
        if str(organization.get("updatedAt") or "") != expected.version:
            raise VersionConflict(
                "organization changed since it was read", provider=NAME, code="updatedAt"
            )
        if refers_to(organization.get("connection"), new):
            return ApplyResult(version=expected.version)
        if old_id and str(old_id) != new_id:
            await journal.record(
                STEP_RETIRE,
                {"connection_id": old_id, "connection_name": old_name, "since": api.clock()},
            )
        response = await api.request(
            target, "PATCH", quoted(ORGANIZATIONS, target.resource_id), body={"connection": new_id}
        )
        raise_for_status(response, NAME, describe_error)
        updated = response.json().get("updatedAt")
        return ApplyResult(version=str(updated) if updated else None)

    async def _ensure_connection(
        self,
        target: TargetSpec,
        name: str,
        params: Mapping[str, Any],
        want: Want,
        journal: Journal,
    ) -> dict[str, Any]:
        api = self._api
        recorded = journal.get(STEP_NEW) or {}
        connection = None
        if recorded.get("id") and recorded.get("name") == name:
            connection = await api.connection(target, str(recorded["id"]))
        if connection is None:
            connection = await api.find(target, name)
        if connection is None:
            # Intent first: after a crash or a lost response the next attempt finds it by name.
            await journal.record(STEP_NEW, {"name": name})
            created = await self._create(target, name, params, want)
            if created is not None:
                await journal.record(STEP_NEW, {"name": name, "id": str(created["id"])})
                return created
            # 409 duplicate name: an earlier attempt created it and its response was lost.
            connection = await api.find(target, name)
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
            response = await api.request(
                target,
                "PATCH",
                quoted(CONNECTIONS, str(connection["id"])),
                body={**params, "meta": {**meta, MARKER_KEY: want.marker}},
            )
            raise_for_status(response, NAME, describe_error)
        await journal.record(STEP_NEW, {"name": name, "id": str(connection["id"])})
        return connection

    async def _create(
        self, target: TargetSpec, name: str, params: Mapping[str, Any], want: Want
    ) -> dict[str, Any] | None:
        """The created connection, or None when the name is taken (409)."""
        body = {
            "name": name,
            "products": ["cckm"],
            **params,
            "description": f"created by rotator for organization {target.resource_id}",
            "meta": {MARKER_KEY: want.marker, ORG_KEY: target.resource_id},
        }
        response = await self._api.request(target, "POST", CONNECTIONS, body=body)
        if response.status_code == 409:
            return None
        raise_for_status(response, NAME, describe_error)
        return dict(response.json())

    async def _test(self, target: TargetSpec, params: Mapping[str, Any]) -> None:
        response = await self._api.request(target, "POST", CONNECTION_TEST, body=params)
        status = response.status_code
        if 400 <= status < 500 and status not in (401, 403, 429):
            try:
                code, message = describe_error(response)
            except ValueError:
                code, message = "", ""
            # Built here rather than by raise_for_status: keep only what it would keep.
            raise PermanentError(
                "the new Salesforce connection failed its connection test: "
                f"{provider_message(message) or status}",
                provider=NAME,
                status=status,
                code=provider_code(code),
            )
        raise_for_status(response, NAME, describe_error)
        try:
            result: Any = response.json()
        except ValueError:
            result = response.content.decode("utf-8", "replace") if response.content else None
        if isinstance(result, dict) and result.get("connection_ok") is True:
            return
        # Not an explicit success: a re-point at an untested connection is the one outcome
        # to avoid, so an answer we cannot read is a failed test.
        if isinstance(result, dict) and result.get("connection_ok") is False:
            # Its own words, bounded and redacted: the only untrusted text kept from the test.
            reason = provider_message(result.get("message")) or "connection_ok is false"
        else:
            reason = f"the answer {body_shape(result)} does not say connection_ok: true"
        raise PermanentError(
            f"the new Salesforce connection failed its connection test: {reason}",
            provider=NAME,
            status=status,
        )

    # -- retirement -----------------------------------------------------------------------

    async def _sweep(self, target: TargetSpec, name_prefix: str, keep: set[str]) -> list[str]:
        """Delete connections rotator made for this organization that have been unused for a
        grace period. Every connection but the current one has been unused at least since the
        organization last changed, so both that and the connection's age must exceed it."""
        api = self._api
        period = grace(target)
        organization = await api.organization(target)
        now = api.clock()
        changed = parse_time(organization.get("updatedAt"))
        if changed is None or now - changed < period:
            return []
        current = organization.get("connection")
        deleted: list[str] = []
        candidates = [
            c
            async for c in api.connections(target)
            if str(c.get("name", "")).startswith(f"{name_prefix}-")
            and c.get("name") not in keep
            and not refers_to(current, c)
        ]
        for candidate in candidates:
            full = await api.connection(target, str(candidate["id"]))
            if full is None or meta_of(full).get(ORG_KEY) != target.resource_id:
                continue
            created = parse_time(full.get("createdAt"))
            updated = parse_time(full.get("updatedAt")) or created
            if created is None or updated is None or now - max(created, updated) < period:
                continue
            if await self._retire(target, full):
                deleted.append(str(full["id"]))
        return deleted

    async def _retire(self, target: TargetSpec, connection: Mapping[str, Any]) -> bool:
        """Delete a connection this organization no longer uses, if rotator made it for this
        organization (or the target opts in) and no organization at all points at it."""
        api = self._api
        ours = meta_of(connection).get(ORG_KEY) == target.resource_id
        if not ours and not retires_foreign(target):
            return False
        try:
            if await api.in_use(target, connection):
                return False
        except ProviderError:
            return False  # cannot tell who uses it: keep it
        return await api.delete(target, str(connection["id"]))

    async def after_promote(self, target: TargetSpec, journal: Journal) -> None:
        """Delete what this job retired once the grace period has passed (so, in practice, only
        with a short grace period: this runs right after promotion), and sweep what earlier
        rotations left. Reads the journal only: the job's lease is gone by now, so nothing is
        recorded; deleting twice is harmless (404)."""
        api = self._api
        retired = journal.get(STEP_RETIRE)
        organization = await api.organization(target)
        current = organization.get("connection")
        if (
            retired
            and api.clock() - float(retired.get("since", 0)) >= grace(target)
            and current not in (retired.get("connection_id"), retired.get("connection_name"))
        ):
            connection = await api.connection(target, str(retired["connection_id"]))
            if connection is not None:
                await self._retire(target, connection)
        current_connection = await api.resolve(target, str(current)) if current else None
        name = (current_connection or {}).get("name")
        await self._sweep(target, prefix(target, str(name) if name else None), keep=set())
