"""Job records and their transitions: create, claim, begin (lease), journal, finish, retry.

A job's life in keys (see ``rotator.store.keys``): ``create_job`` writes ``job:{id}``, points
``target:{name}:active`` at it and adds it to ``jobs:due`` and ``jobs:index``; ``begin`` takes
``target:{name}:lease`` with a new fencing token from the target hash's ``fence`` field; ``renew``,
``record``, ``stage``, ``finish`` and ``reschedule`` are fenced by that lease; ``finish``
promotes the version on ``target:{name}`` and releases the lease in the same write.

The lease value is ``"{fence}:{nonce}:{job_id}"`` and every fenced script compares the whole
value (``lua/fence_check.lua``): the counter alone can repeat after a Redis failover or an AOF
rollback, and the random nonce keeps one lease holder from passing for another.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from rotator.models import (
    TERMINAL_STATES,
    BeginRefused,
    Begun,
    Job,
    JobState,
    Lease,
    Reason,
    check_job_id,
    new_job_id,
)
from rotator.store.base import StoreBase
from rotator.store.codec import as_dict, pairs, text

# Scripts learn which states are terminal from here, never from a list of their own.
TERMINAL_ARG = ",".join(sorted(TERMINAL_STATES))

# A target's active job changes only when one of its jobs is created or finishes; losing that
# race this many times in a row is a fault, not contention.
_CREATE_ATTEMPTS = 16


class JobStore(StoreBase):
    async def create_job(
        self,
        target: str,
        reason: Reason,
        actor: str,
        *,
        note: str = "",
        requested_version: str | None = None,
        now: float | None = None,
    ) -> tuple[str, bool]:
        """Create a queued job, or return the target's queued/running one (created=False).
        With replicas, the job is durable before its id is returned (``WriteNotDurable``
        otherwise: asking again returns the same job once it is)."""
        now = time.time() if now is None else now
        job = _new_job(target, reason, actor, now, note=note, requested_version=requested_version)
        ((job_id, created),) = await self._create([job], now, durable=True)
        return job_id, created

    async def create_scheduled_jobs(
        self, targets: list[str], now: float | None = None
    ) -> list[tuple[str, str, bool]]:
        """Scheduled jobs for many targets in one pipelined round trip: (target, id, created)."""
        if not targets:
            return []
        now = time.time() if now is None else now
        jobs = [_new_job(t, Reason.SCHEDULED, "schedule", now) for t in targets]
        created = await self._create(jobs, now)
        return [(t, job_id, new) for t, (job_id, new) in zip(targets, created, strict=True)]

    async def _create(
        self, jobs: list[Job], now: float, *, durable: bool = False
    ) -> list[tuple[str, bool]]:
        """Run ``create_job`` for each job, pipelined. The script may look at the target's
        active job only through a KEY, so each call names the active job it expects (first:
        none, the usual case); a call that finds another one is repeated with that one."""
        k = self.keys
        expected = dict.fromkeys(range(len(jobs)), "")
        done: dict[int, tuple[str, bool]] = {}
        for _ in range(_CREATE_ATTEMPTS):
            async with self.redis.pipeline(transaction=False) as pipe:
                for i, active in expected.items():
                    job = jobs[i]
                    keys = [k.active(job.target), k.job(job.id), k.due, k.job_index]
                    await self._lua("create_job")(
                        keys=[*keys, k.job(active)] if active else keys,
                        args=[job.id, now, active, TERMINAL_ARG, *pairs(job.to_redis())],
                        client=pipe,
                    )
                if durable and self._waits:
                    self._wait_in(pipe)
                replies = await pipe.execute()
            if durable and self._waits:
                self._check_acked("job", replies.pop())
            raced: dict[int, str] = {}
            for i, (job_id, status) in zip(expected, replies, strict=True):
                if int(status) < 0:
                    raced[i] = text(job_id)
                else:
                    done[i] = (text(job_id), bool(int(status)))
            if not raced:
                return [done[i] for i in range(len(jobs))]
            expected = raced
        targets = sorted({jobs[i].target for i in expected})
        raise RuntimeError(f"the active job of {', '.join(targets)} kept changing; not created")

    async def claim_due_jobs(self, now: float, limit: int, visibility: float) -> list[str]:
        """Take up to ``limit`` due jobs; each comes back due after ``visibility`` seconds
        unless a worker takes it first, so a lost Celery message delays a job, never loses it."""
        ids = await self._lua("claim_due_jobs")(
            keys=[self.keys.due], args=[now, limit, now + visibility]
        )
        return [text(i) for i in ids]

    async def soonest_due(self) -> float | None:
        """When the earliest job in the due set comes due; None when no job is due."""
        soonest = await self.redis.zrange(self.keys.due, 0, 0, withscores=True)
        return float(soonest[0][1]) if soonest else None

    async def begin(
        self, job_id: str, target: str, lease_ttl: float, now: float | None = None
    ) -> Begun | BeginRefused:
        now = time.time() if now is None else now
        k = self.keys
        result = await self._lua("begin")(
            keys=[
                k.lease(target),
                k.job(job_id),
                k.journal(job_id),
                k.target(target),
                k.due,
            ],
            args=[
                job_id,
                int(lease_ttl * 1000),
                now,
                now + lease_ttl + 1,
                TERMINAL_ARG,
                secrets.token_hex(8),
            ],
        )
        status = text(result[0])
        if status == "terminal":
            return BeginRefused(status, text(result[1]), audit_owed=text(result[2]))
        if status != "ok":
            # busy: the detail is the job holding the lease (the value's last part).
            holder = text(result[1]).split(":", 2)[-1] if len(result) > 1 else ""
            lease_ms = int(text(result[2])) if len(result) > 2 else 0
            return BeginRefused(status, holder, max(0, lease_ms))
        lease = Lease(target, job_id, text(result[1]))
        job_raw = as_dict(result[2])
        journal = {step: json.loads(v) for step, v in as_dict(result[3]).items()}
        return Begun(lease, Job.from_redis(job_id, job_raw), journal, as_dict(result[4]))

    async def renew(self, lease: Lease, lease_ttl: float, now: float | None = None) -> None:
        """Heartbeat: extend the lease to ``lease_ttl`` from now and keep the job due at its
        expiry (``LeaseLost`` when the lease is no longer exactly ours)."""
        now = time.time() if now is None else now
        k = self.keys
        await self._fenced(
            "renew",
            keys=[k.lease(lease.target), k.due],
            args=[lease.fence, int(lease_ttl * 1000), lease.job_id, now + lease_ttl + 1],
        )

    async def record(
        self,
        lease: Lease,
        lease_ttl: float,
        step: str,
        data: Mapping[str, Any],
        job_fields: Mapping[str, Any] | None = None,
        *,
        durable: bool = False,
    ) -> None:
        """Journal a step (and optionally job fields), fenced, renewing the lease. ``durable``:
        also wait for the replicas (``WriteNotDurable`` when too few acknowledge in time)."""
        k = self.keys
        await self._fenced(
            "record",
            durable=step if durable else "",
            keys=[k.lease(lease.target), k.journal(lease.job_id), k.job(lease.job_id)],
            args=[
                lease.fence,
                int(lease_ttl * 1000),
                step,
                json.dumps(data, sort_keys=True),
                *pairs(job_fields or {}),
            ],
        )

    async def stage(
        self,
        lease: Lease,
        lease_ttl: float,
        target_fields: Mapping[str, Any],
        steps: Mapping[str, Mapping[str, Any]],
        *,
        job_fields: Mapping[str, Any] | None = None,
        durable: bool = False,
    ) -> None:
        """Journal ``steps`` and set target stage pointers (e.g. pending) and job fields, in
        one fenced write. ``durable`` as for ``record``."""
        assert steps, "a stage write journals at least one step"
        k = self.keys
        job_pairs = pairs(job_fields or {})
        await self._fenced(
            "stage",
            durable=next(iter(steps)) if durable else "",
            keys=[
                k.lease(lease.target),
                k.target(lease.target),
                k.journal(lease.job_id),
                k.job(lease.job_id),
            ],
            args=[
                lease.fence,
                int(lease_ttl * 1000),
                len(target_fields),
                len(job_pairs) // 2,
                *pairs(target_fields),
                *job_pairs,
                *(
                    part
                    for step, data in steps.items()
                    for part in (step, json.dumps(data, sort_keys=True))
                ),
            ],
        )

    async def finish(
        self,
        lease: Lease,
        state: JobState,
        *,
        promote_version: str | None = None,
        remote_version: str = "",
        clear_pending: bool = False,
        job_fields: Mapping[str, Any] | None = None,
        audit_owed: str = "",
        settle_within: float = 60.0,
        durable: bool = False,
        now: float | None = None,
    ) -> None:
        """End a job in a terminal state; promotion and lease release happen in the same write.

        ``audit_owed`` is the terminal audit event (JSON) still to be written; until
        ``settle()`` the job comes due again after ``settle_within`` seconds. ``durable``: also
        wait for the replicas (``WriteNotDurable``: the job ended on the primary only)."""
        assert state.terminal
        now = time.time() if now is None else now
        k = self.keys
        await self._fenced(
            "finish",
            durable="promote" if durable else "",
            keys=[
                k.lease(lease.target),
                k.job(lease.job_id),
                k.due,
                k.active(lease.target),
                k.target(lease.target),
                k.dead,
            ],
            args=[
                lease.fence,
                lease.job_id,
                str(state),
                now,
                "1" if promote_version else "0",
                promote_version or "",
                remote_version,
                "1" if state is JobState.DEAD else "0",
                "1" if clear_pending else "0",
                audit_owed,
                now + settle_within,
                *pairs(job_fields or {}),
            ],
        )

    async def settle(self, job_id: str) -> None:
        """The job's terminal audit event is written: nothing is owed, nothing is due."""
        # One round trip, not a transaction: in this order a half-done settle leaves a job due
        # with nothing owed, which the next delivery just drops from the due set.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hdel(self.keys.job(job_id), "audit_owed")
            pipe.zrem(self.keys.due, job_id)
            await pipe.execute()

    async def reschedule(
        self,
        lease: Lease,
        run_at: float,
        state: JobState,
        job_fields: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> None:
        """Put the job back in the due set at ``run_at`` and release the lease."""
        now = time.time() if now is None else now
        k = self.keys
        await self._fenced(
            "reschedule",
            keys=[k.lease(lease.target), k.job(lease.job_id), k.due],
            args=[lease.fence, lease.job_id, str(state), run_at, now, *pairs(job_fields or {})],
        )

    async def defer(self, job_id: str, run_at: float) -> None:
        """Unfenced: push a job we could not start (target busy) to when it may start.
        XX: a job that finished meanwhile is not brought back."""
        await self.redis.zadd(self.keys.due, {job_id: run_at}, xx=True)

    async def quarantine(self, job_id: str, reason: str) -> None:
        """Move a job whose record cannot be parsed out of the job tables, keeping it raw."""
        # Deletes ``job:{id}``: with a forged id that could be any key, such as a journal.
        raw = await self.redis.hgetall(self.keys.job(check_job_id(job_id)))
        record = json.dumps(
            {"reason": reason, "raw": {text(f): text(v) for f, v in raw.items()}, "at": time.time()}
        )
        k = self.keys
        await self._lua("quarantine")(
            keys=[k.job(job_id), k.quarantine, k.due, k.job_index], args=[job_id, record]
        )


def _new_job(
    target: str,
    reason: Reason,
    actor: str,
    now: float,
    *,
    note: str = "",
    requested_version: str | None = None,
) -> Job:
    return Job(
        id=new_job_id(),
        target=target,
        reason=reason,
        actor=actor,
        note=note,
        requested_version=requested_version,
        created_at=now,
        updated_at=now,
        next_run_at=now,
    )
