"""Incident mode: rotate every target that uses a leaked secret, fast but within budgets.

A leaked secret is rarely one target. ``plan_incident`` picks the targets (by secret, by
provider, or all), orders them by their ``priority`` (higher first, then by name) and gives
each a start time: as soon as possible, but never so many at once that a provider's
documented rate limit (``rotator.plan.budget``) would be broken. Only Commerce Layer
publishes limits; every other provider's jobs start at once.

The audit links the incident together through one id: an ``incident.opened`` event names the
operator and the selection, and every job of the incident is enqueued with the actor
``incident:<id>`` (kept on the job record and on its ``job.enqueued`` event), so
``rotator report --incident ID`` can find them all again for the postmortem.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from rotator.audit.events import AuditEvent
from rotator.config import TargetSpecModel
from rotator.models import Job, JobState, Reason
from rotator.plan.budget import COSTS, LIMITED

if TYPE_CHECKING:
    from rotator.runtime import Runtime

ACTOR_PREFIX = "incident:"
# How a job's state counts in the progress display and the exit code.
DONE = frozenset({JobState.COMPLETED})
BAD = frozenset({JobState.FAILED, JobState.DEAD, JobState.UNVERIFIED, JobState.CONFLICT})


def new_incident_id() -> str:
    """Short enough to type in ``rotator report --incident``; 48 random bits."""
    return "inc-" + secrets.token_hex(6)


def incident_actor(incident_id: str) -> str:
    return ACTOR_PREFIX + incident_id


@dataclass(frozen=True)
class Planned:
    target: str
    provider: str
    priority: int
    start_at: float  # when the job is enqueued (the rate budget may hold it back)


def select(
    specs: Mapping[str, TargetSpecModel],
    *,
    secret: str | None = None,
    provider: str | None = None,
    everything: bool = False,
) -> list[str]:
    """The enabled targets matching the selection, highest priority first, then by name."""
    if not (secret or provider or everything):
        raise ValueError("choose --secret, --provider or --all")
    names = [
        name
        for name, spec in specs.items()
        if spec.enabled
        and (everything or secret is None or spec.secret == secret)
        and (everything or provider is None or spec.provider == provider)
    ]
    return sorted(names, key=lambda n: (-specs[n].priority, n))


def spread(
    specs: Mapping[str, TargetSpecModel], ordered: Sequence[str], now: float
) -> list[Planned]:
    """Start times in priority order: each job starts at the earliest time at which every
    documented window of its provider (per API host) still has room for its requests."""
    started: dict[tuple[str, str], list[float]] = defaultdict(list)
    planned = []
    for name in ordered:
        spec = specs[name]
        at = now
        if spec.provider in LIMITED:
            history = started[(spec.provider, urlsplit(spec.base_url).netloc)]
            at = _earliest(history, spec.provider, now)
            history.append(at)
        planned.append(Planned(name, spec.provider, spec.priority, at))
    return planned


def _earliest(history: list[float], provider: str, at: float) -> float:
    """The first time >= ``at`` when one more rotation fits every window of ``provider``."""
    limits, costs = LIMITED[provider], COSTS[provider]
    while True:
        later = at
        for kind, cost in costs.items():
            for window, limit in limits[kind]:
                inside = sorted(t for t in history if t > at - window)
                allowed = max(1, limit // cost)  # rotations per window (one always fits)
                if len(inside) >= allowed:
                    # Wait until the oldest rotation that keeps the window full leaves it.
                    later = max(later, inside[len(inside) - allowed] + window)
        if later == at:
            return at
        at = later


@dataclass
class Incident:
    id: str
    planned: list[Planned]
    jobs: dict[str, str] = field(default_factory=dict)  # target -> job id
    reused: set[str] = field(default_factory=set)  # targets whose in-flight job was reused


async def open_incident(
    runtime: Runtime,
    planned: list[Planned],
    *,
    operator: str,
    selection: str,
    note: str,
    incident_id: str | None = None,
) -> Incident:
    """Record ``incident.opened`` before any job exists: the postmortem starts there."""
    incident = Incident(incident_id or new_incident_id(), planned)
    detail = f"opened by {operator}; {selection}; {len(planned)} targets"
    await runtime.audit.emit(
        AuditEvent(
            "incident.opened",
            actor=incident_actor(incident.id),
            reason="incident",
            detail=detail + (f"; {note}" if note else ""),
        )
    )
    return incident


async def enqueue_all(
    runtime: Runtime,
    incident: Incident,
    note: str,
    on_enqueued: Callable[[Planned, str], None] = lambda p, j: None,
) -> None:
    """Enqueue each planned job at its start time (the rate budget's spread).

    One enqueuing loop per provider, side by side: a rate-limited provider's jobs keep their
    own clock instead of queueing behind thousands of jobs for providers without a limit (the
    incident bench saw Commerce Layer's first window start 35-58 s late that way)."""
    by_provider: dict[str, list[Planned]] = defaultdict(list)
    for item in incident.planned:
        by_provider[item.provider].append(item)

    async def one_provider(items: list[Planned]) -> None:
        for item in sorted(items, key=lambda p: p.start_at):  # stable: priority order kept
            delay = item.start_at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            job_id, created = await runtime.enqueue(
                item.target,
                reason=Reason.ON_DEMAND,
                actor=incident_actor(incident.id),
                note=note or f"incident {incident.id}",
            )
            incident.jobs[item.target] = job_id
            if not created:
                incident.reused.add(item.target)
            on_enqueued(item, job_id)

    loops = [asyncio.ensure_future(one_provider(items)) for items in by_provider.values()]
    try:
        done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for loop in loops:
            loop.cancel()  # one loop failed (Redis down), or we were cancelled: stop them all
    for loop in done:
        loop.result()  # the first failure, as the single loop used to raise it


async def job_states(runtime: Runtime, job_ids: Sequence[str]) -> dict[str, Job]:
    jobs = {}
    for job_id in job_ids:
        jobs[job_id] = await runtime.store.load_job(job_id)
    return jobs


def outcome_code(states: Sequence[JobState]) -> int:
    """0 when every job completed, 1 when any ended otherwise or has not ended."""
    return 0 if states and all(s in DONE for s in states) else 1


__all__ = [
    "ACTOR_PREFIX",
    "BAD",
    "DONE",
    "Incident",
    "Planned",
    "enqueue_all",
    "incident_actor",
    "job_states",
    "new_incident_id",
    "open_incident",
    "outcome_code",
    "select",
    "spread",
]
