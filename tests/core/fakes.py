"""A scripted in-memory provider with Adobe-like semantics, for engine unit tests."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any, ClassVar

from rotator.breaker import tally_call
from rotator.errors import ProviderError, TransientError, VersionConflict
from rotator.lease import before_remote_write
from rotator.providers.base import (
    ApplyResult,
    Evidence,
    Journal,
    RemoteState,
    SecretPayload,
    TargetSpec,
    Want,
)

Fault = Callable[[], None]


class FakeRemote:
    """One remote resource: a secret, an etag-like version, a description marker."""

    def __init__(self) -> None:
        self._versions = itertools.count(1)
        self.version = f"e{next(self._versions)}"
        self.secret: dict[str, Any] = {"password": "initial"}
        self.marker: str | None = None
        self.history: list[dict[str, Any]] = []
        self.applies = 0

    def bump(self) -> None:
        self.version = f"e{next(self._versions)}"

    def oob_edit(self) -> None:
        self.secret = {"password": "someone-else"}
        self.marker = None
        self.bump()
        self.history.append({"by": "oob", "secret": dict(self.secret)})


class FakeProvider:
    name: ClassVar[str] = "fake"
    replay_safe: ClassVar[bool] = False

    def __init__(self, remote: FakeRemote) -> None:
        self.remote = remote
        # Each queue holds exceptions to raise on the next calls; "apply_then" raises after
        # applying (a lost response).
        self.read_faults: list[Exception] = []
        self.apply_faults: list[Exception] = []
        self.apply_then: list[Exception] = []
        self.after_read: list[Callable[[], None]] = []
        self.reads = 0

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState:
        self.reads += 1
        if self.read_faults:
            raise _tallied(self.read_faults.pop(0))
        tally_call(host_failed=False)  # as providers.send does for each call
        state = RemoteState(self.remote.version, self.remote.marker, {"v": self.remote.version})
        if self.after_read:
            self.after_read.pop(0)()
        return state

    async def apply(
        self,
        target: TargetSpec,
        secret: SecretPayload,
        expected: RemoteState,
        want: Want,
        journal: Journal,
    ) -> ApplyResult:
        await before_remote_write()  # as every adapter's write does, through providers.send
        if self.apply_faults:
            raise _tallied(self.apply_faults.pop(0))
        tally_call(host_failed=False)
        if expected.version != self.remote.version:
            raise VersionConflict("Version not matching", provider="fake", status=412)
        self.remote.secret = dict(secret.fields)
        self.remote.marker = want.marker
        self.remote.bump()
        self.remote.applies += 1
        self.remote.history.append({"by": "api", "secret": dict(secret.fields)})
        if self.apply_then:
            raise self.apply_then.pop(0)
        return ApplyResult(self.remote.version)

    def carries(
        self, live: RemoteState, want: Want, applied_version: str | None = None
    ) -> Evidence:
        return Evidence.shown(live.marker == want.marker)

    async def after_promote(self, target: TargetSpec, journal: Journal) -> None:
        return None


def _tallied(fault: Exception) -> Exception:
    tally_call(isinstance(fault, TransientError))
    return fault


def transient(msg: str = "boom") -> ProviderError:
    from rotator.errors import ProviderUnavailable

    return ProviderUnavailable(msg, provider="fake", status=503)


class BlindReplayProvider(FakeProvider):
    """AppFlow-like: credentials unreadable (no marker), no CAS, idempotency-key replays."""

    replay_safe: ClassVar[bool] = True

    def __init__(self, remote: FakeRemote) -> None:
        super().__init__(remote)
        self.results: dict[str, str] = {}
        self.lose_before_apply: list[Exception] = []

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState:
        state = await super().read(target, journal)
        return RemoteState(state.version, None, state.summary)

    async def apply(
        self,
        target: TargetSpec,
        secret: SecretPayload,
        expected: RemoteState,
        want: Want,
        journal: Journal,
    ) -> ApplyResult:
        if self.lose_before_apply:
            raise self.lose_before_apply.pop(0)
        key = want.idempotency_key
        if key not in self.results:
            self.remote.secret = dict(secret.fields)
            self.remote.bump()
            self.remote.applies += 1
            self.remote.history.append({"by": "api", "secret": dict(secret.fields)})
            self.results[key] = self.remote.version
        if self.apply_then:
            raise self.apply_then.pop(0)
        return ApplyResult(None)  # like UpdateConnectorProfile: no version in the response

    def carries(
        self, live: RemoteState, want: Want, applied_version: str | None = None
    ) -> Evidence:
        if applied_version is not None:
            return Evidence.shown(live.version == applied_version)
        return Evidence.UNKNOWN


class CapturingAudit:
    """An audit sink that keeps every event as its dict (the schema the real log stores)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def emit(self, event: Any) -> None:
        self.events.append(event.to_dict())

    async def replay_spool(self) -> int:
        return 0

    def seal_owed(self, event: Any) -> str:
        return json.dumps(event.to_dict())

    async def open_owed(self, job_id: str, raw: str) -> Any:
        from rotator.audit import AuditEvent

        return AuditEvent.from_dict(json.loads(raw))
