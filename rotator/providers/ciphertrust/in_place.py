"""CipherTrust ``in-place`` strategy: PATCH the secret into the connection itself.

``resource_id`` is the Salesforce connection id. Version = the connection's ``updatedAt``;
``apply`` re-reads and raises VersionConflict if it moved, then PATCHes the secret fields
together with ``meta.rotator = <want.marker>`` (merged into the live meta), which is the marker
``read`` reports.
"""

from __future__ import annotations

from typing import Any

from rotator.errors import NotFound, VersionConflict
from rotator.providers.base import ApplyResult, Journal, RemoteState, TargetSpec, raise_for_status
from rotator.providers.ciphertrust.api import (
    CONNECTIONS,
    IN_PLACE,
    MARKER_KEY,
    NAME,
    CipherTrustAPI,
    Update,
    describe_error,
    meta_of,
    quoted,
    remote_state,
)


class InPlace:
    def __init__(self, api: CipherTrustAPI) -> None:
        self._api = api

    async def _live(self, target: TargetSpec) -> dict[str, Any]:
        connection = await self._api.connection(target, target.resource_id)
        if connection is None:
            raise NotFound("salesforce connection not found", provider=NAME, status=404)
        return connection

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState:
        live = await self._live(target)
        facts = {"connection_id": live.get("id"), "connection_name": live.get("name")}
        return remote_state(live, live, strategy=IN_PLACE, **facts, updatedAt=live.get("updatedAt"))

    async def apply(self, update: Update) -> ApplyResult:
        target, secret, want = update.target, update.secret, update.want
        live = await self._live(target)
        if str(live.get("updatedAt") or "") != update.expected.version:
            raise VersionConflict(
                "connection changed since it was read", provider=NAME, code="updatedAt"
            )
        body = {**secret.fields, "meta": {**meta_of(live), MARKER_KEY: want.marker}}
        response = await self._api.request(
            target, "PATCH", quoted(CONNECTIONS, target.resource_id), body=body
        )
        raise_for_status(response, NAME, describe_error)
        updated = response.json().get("updatedAt")
        return ApplyResult(version=str(updated) if updated else None)

    async def after_promote(self, target: TargetSpec, journal: Journal) -> None:
        return None  # nothing is left behind
