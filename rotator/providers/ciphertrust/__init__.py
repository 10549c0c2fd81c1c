"""Thales CipherTrust Manager CCKM: rotate the secret of a Salesforce connection.

Target fields: ``base_url`` = ``https://{host}/api/v1``; ``resource_id`` = a Salesforce connection
id (``in-place``) or a CCKM Salesforce organization id (``blue-green``). Credentials:
``username``, ``password``. Options: ``domain`` (login domain), ``strategy`` (``in-place``, the
default, or ``blue-green``; each has its own module and options). Secret fields: the
connection's secret settings (client_secret, password...).

Token: password grant, then the refresh-token grant for later mints (the JWT lives 300 s; the
token cache renews it at 240 s), falling back to the password grant when the refresh fails
(``api``).

``in_place.InPlace`` PATCHes the connection itself; ``blue_green.BlueGreen`` creates a new
connection, tests it, re-points the organization and retires the old one. Both put
``meta.rotator = <want.marker>`` on the connection that carries the secret, which is the marker
``read`` reports. Secrets are never readable, so an out-of-band secret change after ours keeps
the marker: ``carries`` is NOT_OURS when the version after our update is known and the live one
differs, and otherwise the engine's version comparison has to catch it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import ClassVar

from rotator.errors import BadRequest, ProviderError
from rotator.providers.base import (
    ApplyResult,
    Evidence,
    Journal,
    ProviderContext,
    RemoteState,
    SecretPayload,
    TargetSpec,
    Want,
    redact,
)
from rotator.providers.ciphertrust.api import (
    BLUE_GREEN,
    IN_PLACE,
    NAME,
    CipherTrustAPI,
    Strategy,
    Update,
    describe_error,
    parse_time,
)
from rotator.providers.ciphertrust.blue_green import STEP_NEW, STEP_RETIRE, BlueGreen
from rotator.providers.ciphertrust.in_place import InPlace


class CipherTrust(CipherTrustAPI):
    name: ClassVar[str] = NAME
    # Self-hosted: no default host; the operator names it in ROTATOR_ALLOWED_HOSTS.
    allowed_hosts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: ProviderContext, clock: Callable[[], float] = time.time) -> None:
        super().__init__(context, clock)
        self._strategies: Mapping[str, Strategy] = {
            IN_PLACE: InPlace(self),
            BLUE_GREEN: BlueGreen(self),
        }

    def _strategy(self, target: TargetSpec) -> Strategy:
        strategy = self._strategies.get(str(target.options.get("strategy", IN_PLACE)))
        if strategy is None:
            raise BadRequest(
                f"option 'strategy' must be {IN_PLACE!r} or {BLUE_GREEN!r}", provider=NAME
            )
        return strategy

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState:
        return await self._strategy(target).read(target, journal)

    async def apply(
        self,
        target: TargetSpec,
        secret: SecretPayload,
        expected: RemoteState,
        want: Want,
        journal: Journal,
    ) -> ApplyResult:
        strategy = self._strategy(target)
        try:
            return await strategy.apply(Update(target, secret, expected, want, journal))
        except ProviderError as exc:
            redact(exc, secret)  # validation messages may quote a submitted value
            raise

    def carries(
        self, live: RemoteState, want: Want, applied_version: str | None = None
    ) -> Evidence:
        if applied_version is not None and applied_version != live.version:
            return Evidence.NOT_OURS  # changed again after our update
        return super().carries(live, want, applied_version)

    async def after_promote(self, target: TargetSpec, journal: Journal) -> None:
        await self._strategy(target).after_promote(target, journal)


__all__ = [
    "BLUE_GREEN",
    "IN_PLACE",
    "STEP_NEW",
    "STEP_RETIRE",
    "BlueGreen",
    "CipherTrust",
    "InPlace",
    "describe_error",
    "parse_time",
]
