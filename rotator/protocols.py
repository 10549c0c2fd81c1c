"""What the engine needs from its collaborators, as small Protocols (no Redis, no Celery).

``rotator.engine`` imports only these abstractions, the value types in ``rotator.models`` and
the provider interface; ``RotatorStore`` (Redis) and ``AuditLog`` satisfy them structurally and
are wired together in ``rotator.runtime``. Test fakes need no inheritance.

``rotator.audit`` imports Redis, so the audit event class is only a type here and is imported
on first use by ``audit_event_type``; importing the engine stays free of ``redis``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from rotator.models import BeginRefused, Begun, Job, JobState, Lease

if TYPE_CHECKING:
    from rotator.audit import AuditEvent
    from rotator.notify.events import Notice


Data = Mapping[str, Any]


class SecretVersions(Protocol):
    """Encrypted secret versions: what secret sources and the engine read and write."""

    async def put_secret_version(self, secret: str, fields: Data) -> tuple[str, str]: ...

    async def load_secret_version(self, secret: str, version: str) -> dict[str, Any]: ...

    async def latest_secret_version(self, secret: str) -> str | None: ...

    # The newest version's field names, None when there is none; ``likely`` (the names about
    # to be stored) lets the store answer without decrypting when they did not change.
    async def latest_field_names(
        self, secret: str, likely: Collection[str] = ()
    ) -> list[str] | None: ...

    async def fingerprint_of(self, secret: str, version: str) -> str | None: ...


class JobStore(SecretVersions, Protocol):
    """Job records, leases and fenced transitions (see ``rotator.store`` for the semantics)."""

    async def load_job(self, job_id: str) -> Job: ...

    async def quarantine(self, job_id: str, reason: str) -> None: ...

    async def begin(self, job_id: str, target: str, lease_ttl: float) -> Begun | BeginRefused: ...

    async def renew(self, lease: Lease, lease_ttl: float) -> None: ...

    # durable: the write crash safety rests on; WriteNotDurable if too few replicas have it.
    async def record(
        self,
        lease: Lease,
        lease_ttl: float,
        step: str,
        data: Data,
        job_fields: Data | None = None,
        *,
        durable: bool = False,
    ) -> None: ...

    # Several steps with their job and target fields in one write (the pinned version with
    # the `pending` pointer); durable as for record.
    async def stage(
        self,
        lease: Lease,
        lease_ttl: float,
        target_fields: Data,
        steps: Mapping[str, Data],
        *,
        job_fields: Data | None = None,
        durable: bool = False,
    ) -> None: ...

    async def finish(
        self,
        lease: Lease,
        state: JobState,
        *,
        # The terminal audit event still owed, and how soon the job comes due if it stays owed.
        audit_owed: str = "",
        settle_within: float = 60.0,
        clear_pending: bool = False,
        job_fields: Data | None = None,
        promote_version: str | None = None,
        remote_version: str = "",
        durable: bool = False,
    ) -> None: ...

    async def settle(self, job_id: str) -> None: ...

    async def reschedule(
        self, lease: Lease, run_at: float, state: JobState, job_fields: Data | None = None
    ) -> None: ...

    async def defer(self, job_id: str, run_at: float) -> None: ...

    async def due_again_after_failure(self, target: str, at: float) -> None: ...


class AuditSink(Protocol):
    """Where audit events go. ``emit`` raises ``AuditUnavailable`` when it cannot write."""

    async def emit(self, event: AuditEvent) -> object: ...

    async def replay_spool(self) -> int: ...

    # A job's terminal event waiting in Redis is signed, and checked before it is chained.
    def seal_owed(self, event: AuditEvent) -> str: ...

    async def open_owed(self, job_id: str, raw: str) -> AuditEvent | None: ...


class Notifier(Protocol):
    """Where the engine hands events to notify about (``rotator.notify.queue``). Queueing
    only: a receiver is never called from a rotation. The engine logs and swallows any error
    it raises, so a failing notification path never blocks or fails a rotation."""

    async def notify(self, notice: Notice) -> bool: ...


def audit_event_type() -> type[AuditEvent]:
    from rotator.audit import AuditEvent

    return AuditEvent


__all__ = ["AuditSink", "JobStore", "Notifier", "SecretVersions", "audit_event_type"]
