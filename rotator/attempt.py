"""One attempt of a job: what it carries, the audit events it writes, and the job's journal.

``Attempt`` holds the job, its lease and what the attempt has learnt so far (provider, pinned
version); every audit event of the attempt is built from it, so all of them carry the same
job, target, attempt number and version. The pinned value itself never shows in its repr.

The journal holds the steps attempts record so that the next attempt can converge.

Steps the engine records (adapters may add their own, e.g. a desired state before a PUT)::

    secret        the pinned version and fingerprint (reused by every retry)
    staged        the version set as the target's `pending`, and the pending it replaced
    recovered     an earlier job's pending version found live and promoted
    intent        the remote version the update expects, recorded before the update is sent
    apply_failed  the attempt's update failed, and whether it may still have applied
    applied       the remote version after a successful update

Every record is a fenced write that renews the lease, so a worker that lost its lease can no
longer add to the journal. Between records the attempt's ``LeaseKeeper`` (``rotator.lease``)
renews it on a heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rotator.breaker import CallTally
from rotator.errors import WriteNotDurable
from rotator.lease import LeaseKeeper
from rotator.models import Job, Lease
from rotator.protocols import JobStore, audit_event_type

if TYPE_CHECKING:
    from rotator.audit import AuditEvent


class JobJournal:
    """The job's journal as adapters and the engine see it."""

    def __init__(
        self, store: JobStore, lease: Lease, ttl: float, steps: dict[str, dict[str, Any]]
    ) -> None:
        self._store = store
        self._lease = lease
        self._ttl = ttl
        self.steps = steps

    def get(self, step: str) -> Mapping[str, Any] | None:
        return self.steps.get(step)

    async def record(
        self,
        step: str,
        data: Mapping[str, Any],
        job_fields: Mapping[str, Any] | None = None,
        *,
        durable: bool = False,
    ) -> None:
        """Journal ``step``; ``durable`` for the steps crash safety rests on (the pinned
        version, the intent): ``WriteNotDurable`` when too few replicas have it in time."""
        write = self._store.record(self._lease, self._ttl, step, data, job_fields, durable=durable)
        await self._remembered({step: data}, write)

    async def record_many(
        self,
        steps: Mapping[str, Mapping[str, Any]],
        *,
        job_fields: Mapping[str, Any] | None = None,
        target_fields: Mapping[str, Any] | None = None,
        durable: bool = False,
    ) -> None:
        """Journal several steps, with job fields and target pointers, in one write."""
        write = self._store.stage(
            self._lease,
            self._ttl,
            target_fields or {},
            steps,
            job_fields=job_fields,
            durable=durable,
        )
        await self._remembered(steps, write)

    async def _remembered(
        self, steps: Mapping[str, Mapping[str, Any]], write: Awaitable[None]
    ) -> None:
        """Run ``write`` and keep its steps as this attempt's view of the journal, also when
        it was not replicated in time: on the primary, it is what the next read will find."""
        written = {step: dict(data) for step, data in steps.items()}
        try:
            await write
        except WriteNotDurable:
            self.steps.update(written)
            raise
        self.steps.update(written)

    def earlier_update_may_have_applied(self) -> bool:
        """Could an earlier attempt's update have reached the provider?

        The latest intent's update counts as "maybe" unless a definite refusal was recorded for
        that same attempt: a worker killed mid-update records nothing, and an older attempt's
        refusal says nothing about a later one. Earlier attempts' "maybe" is carried forward.
        """
        intent, failed = self.get("intent"), self.get("apply_failed")
        if intent is None:
            return False
        refused = (
            failed is not None
            and failed.get("attempt") == intent.get("attempt")
            and not failed.get("maybe_applied", True)
        )
        return bool(intent.get("prior_maybe_applied")) or not refused


@dataclass
class Attempt:
    """One attempt in flight; ``event`` builds its audit events."""

    job: Job
    lease: Lease
    journal: JobJournal
    started: float
    provider_name: str | None = None
    breaker_host: str | None = None  # set once the breaker admitted this attempt's calls
    calls: CallTally | None = None  # the provider calls made since, for the breaker
    version: str | None = None
    fingerprint: str | None = None
    # The pinned secret, when this attempt produced it: never in a repr.
    fields: dict[str, Any] | None = field(default=None, repr=False)
    # Renews the lease while the attempt runs; None in attempts built without one (tests).
    keeper: LeaseKeeper | None = field(default=None, repr=False)

    async def release_lease(self) -> None:
        """Before the fenced write that ends the attempt: the heartbeat stops, so the lease it
        deletes is not mistaken for a lost one."""
        if self.keeper is not None:
            await self.keeper.release()

    def event(self, name: str, **fields: Any) -> AuditEvent:
        base: dict[str, Any] = {
            "job_id": self.job.id,
            "target": self.job.target,
            "provider": self.provider_name,
            "attempt": self.job.attempts,
            "actor": self.job.actor,
            "reason": str(self.job.reason),
            "secret_version": self.version,
            "fingerprint": self.fingerprint,
            "duration_ms": round((time.monotonic() - self.started) * 1000, 3),
        }
        base.update(fields)
        return audit_event_type()(name, **base)


__all__ = ["Attempt", "JobJournal"]
