"""The dispatcher: turns due schedule entries into jobs and due jobs into deliveries.

Celery beat calls it every few seconds (``rotator.tasks.dispatch``); ``rotator run --once``
calls it in-process. Claims are single Lua scripts on sorted sets, so any number of dispatchers
running at once (two beats by accident) never hand out the same target or job twice within a
visibility window, and a dispatcher killed after claiming loses nothing: unsent entries come due
again when the provisional score passes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from rotator.audit import AuditEvent, AuditLog
from rotator.config import TargetsConfig, TargetSpecModel
from rotator.errors import AuditUnavailable
from rotator.metrics import record_dispatch
from rotator.models import Reason
from rotator.store import RotatorStore

if TYPE_CHECKING:  # the runtime imports this module; only its type is needed here
    from rotator.runtime import Runtime

log = structlog.get_logger("rotator.dispatch")

Deliver = Callable[[Sequence[str]], Awaitable[None]]

# Job ids per Celery message: Celery's per-task overhead is paid once per batch, and the
# batch runs concurrently on the worker's event loop.
DELIVERY_BATCH = 32


@dataclass(frozen=True)
class DispatchResult:
    scheduled: int  # jobs created from the schedule
    delivered: int  # job ids handed to workers


def first_due(target: TargetSpecModel, now: float, rng_value: float) -> float | None:
    """When a target new to the schedule first comes due (None: not scheduled).

    A cron target waits for its next slot: ``0 3 * * 1`` means Monday 03:00, not "as soon as
    the file is loaded". An interval target follows ``first_rotation``: ``now`` comes due
    within jitter, ``scheduled`` and ``adopt`` (which records the live version instead of
    writing) after one interval."""
    schedule = target.parsed_schedule
    if not target.enabled or schedule is None:
        return None
    if schedule.every is not None and target.first_rotation == "now":
        return now + schedule.jitter * rng_value
    return schedule.next_after(now, rng_value)


async def sync_schedule(
    store: RotatorStore, config: TargetsConfig, now: float | None = None
) -> list[str]:
    """Make the schedule set match the targets file; returns the targets new to it."""
    now = time.time() if now is None else now
    rng = random.Random()
    due: dict[str, float] = {}
    for name, target in config.targets.items():
        when = first_due(target, now, rng.random())
        if when is not None:
            due[name] = when
    return await store.sync_schedule(due)


def _schedule_inputs(target: TargetSpecModel) -> tuple[object, ...]:
    """What ``first_due`` reads: a target whose inputs did not change needs no resync."""
    return (target.enabled, target.schedule, target.jitter, target.first_rotation)


async def resync_changed(
    store: RotatorStore,
    before: Mapping[str, TargetSpecModel],
    config: TargetsConfig,
    now: float | None = None,
) -> tuple[list[str], int]:
    """After a reload: resync into the schedule only the targets added, removed, or whose
    schedule inputs changed since ``before`` (the config last synced); returns the targets
    new to the schedule and how many were resynced. The schedule ends as ``sync_schedule``
    would leave it, without reading or rewriting 100,000 entries for a one-line edit."""
    now = time.time() if now is None else now
    rng = random.Random()
    after = config.targets
    changes: dict[str, float | None] = {name: None for name in before if name not in after}
    for name, target in after.items():
        old = before.get(name)
        if old is None or _schedule_inputs(old) != _schedule_inputs(target):
            changes[name] = first_due(target, now, rng.random())
    added = await store.resync_schedule(changes) if changes else []
    return added, len(changes)


async def dispatch(
    store: RotatorStore,
    config: TargetsConfig,
    audit: AuditLog,
    deliver: Deliver,
    *,
    batch: int = 2000,
    visibility: float = 300.0,
    now: float | None = None,
) -> DispatchResult:
    now = time.time() if now is None else now
    rng = random.Random()
    claimed = await store.claim_due_targets(now, batch, claim_ttl=visibility)
    next_due: dict[str, float] = {}
    for name, _due in claimed:
        target = config.targets.get(name)
        schedule = target.parsed_schedule if target else None
        if target is None or schedule is None or not target.enabled:
            continue  # removed from the file: the next sync drops it from the schedule
        next_due[name] = schedule.next_after(now, rng.random())
    created = [
        (name, job_id)
        for name, job_id, new in await store.create_scheduled_jobs(list(next_due), now=now)
        if new
    ]
    # Emitted together, so the audit writer commits them in a few batched writes.
    outcomes = await asyncio.gather(
        *(
            audit.emit(
                AuditEvent(
                    "job.enqueued",
                    job_id=job_id,
                    target=name,
                    provider=config.targets[name].provider,
                    actor="schedule",
                    reason=str(Reason.SCHEDULED),
                )
            )
            for name, job_id in created
        ),
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, AuditUnavailable):
            log.error("audit unavailable while enqueueing scheduled jobs")
            break
        if isinstance(outcome, BaseException):
            raise outcome
    scheduled = len(created)
    await store.set_next_due(next_due)

    job_ids = await store.claim_due_jobs(now, batch, visibility)
    if job_ids:
        await deliver(job_ids)
    return DispatchResult(scheduled=scheduled, delivered=len(job_ids))


async def dispatch_pass(runtime: Runtime, deliver: Deliver) -> DispatchResult:
    """One dispatch with a process's store, targets, audit and settings: the beat task's and
    ``rotator run --once``'s (a reloaded targets file is synced into the schedule first)."""
    await runtime.ensure_schedule_synced()
    await record_dispatch(runtime.redis, runtime.keys)
    return await dispatch(
        runtime.store,
        runtime.config.get(),
        runtime.audit,
        deliver,
        batch=runtime.settings.dispatch_batch,
        # A delivery lost with its worker (killed after receiving the message, before the
        # job began) comes due again after one lease, as a job whose worker died does.
        visibility=runtime.settings.lease_ttl,
    )
