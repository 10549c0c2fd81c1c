"""``rotator report --incident ID``: one incident's postmortem from the audit log.

Everything comes from the hash-chained audit log (``rotator.incident`` explains the links): the
``incident.opened`` event, the ``job.enqueued`` events whose actor is ``incident:<id>``, and
each job's own events (retries, outcome, error class). The job records in Redis add only the
state of jobs still in flight; the report never needs them to tell the story.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis

from rotator.audit import AuditFilter, AuditReader
from rotator.incident import incident_actor
from rotator.report import OUTCOME_EVENTS
from rotator.store.keys import Keys

TERMINAL_EVENTS = frozenset(OUTCOME_EVENTS) - {"job.retry_scheduled", "job.verify_scheduled"}


def incident_summary(client: redis.Redis, keys: Keys, incident_id: str) -> dict[str, Any] | None:
    """The incident's timeline and per-job outcome; None when no such incident was opened."""
    reader = AuditReader(client, keys)
    opened = None
    enqueued = []
    for record in reader.iter_events(AuditFilter(actor=incident_actor(incident_id))):
        event = record.event
        if event.event == "incident.opened" and opened is None:
            opened = event
        elif event.event == "job.enqueued" and event.job_id:
            enqueued.append(event)
    if opened is None:
        return None
    jobs = [
        _job(reader, client, keys, e.job_id or "", e.target, e.provider, e.time) for e in enqueued
    ]
    ends = [j["ended_at"] for j in jobs if j["ended_at"] is not None]
    return {
        "incident": incident_id,
        "opened_at": opened.time,
        "detail": opened.detail,
        "targets": len(jobs),
        "outcomes": dict(Counter(j["outcome"] or "in flight" for j in jobs)),
        "by_provider": _by_provider(jobs),
        "last_ended_at": max(ends) if ends else None,
        "duration_seconds": (max(ends) - opened.time) if ends and len(ends) == len(jobs) else None,
        "jobs": jobs,
    }


def _job(
    reader: AuditReader,
    client: redis.Redis,
    keys: Keys,
    job_id: str,
    target: str | None,
    provider: str | None,
    enqueued_at: float,
) -> dict[str, Any]:
    outcome = error_class = ended_at = None
    retries = 0
    for record in reader.iter_events(AuditFilter(job_id=job_id)):
        event = record.event
        if event.event in ("job.retry_scheduled", "job.verify_scheduled"):
            retries += 1
        if event.event in TERMINAL_EVENTS:
            outcome = event.outcome or OUTCOME_EVENTS[event.event]
            error_class = event.error_class or error_class
            ended_at = event.time
        elif event.error_class:
            error_class = event.error_class
    state = client.hget(keys.job(job_id), "state")
    return {
        "job_id": job_id,
        "target": target,
        "provider": provider,
        "enqueued_at": enqueued_at,
        "ended_at": ended_at,
        "outcome": "success" if outcome == "completed" else outcome,
        "state": state.decode() if isinstance(state, bytes) else state,
        "retries": retries,
        "error_class": error_class,
    }


def _by_provider(jobs: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = {}
    for job in jobs:
        table.setdefault(job["provider"] or "?", Counter())[job["outcome"] or "in flight"] += 1
    return {provider: dict(counts) for provider, counts in sorted(table.items())}


__all__ = ["incident_summary"]
