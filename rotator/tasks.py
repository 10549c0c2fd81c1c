"""Celery tasks: thin shells around the engine. Messages carry job ids, never secrets."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog

from rotator import celeryconfig
from rotator.app import celery_app
from rotator.dispatch import DELIVERY_BATCH, dispatch_pass
from rotator.housekeeping import Retention, archive_audit, housekeep
from rotator.models import is_job_id
from rotator.redaction import scope
from rotator.runtime import process_runtime

log = structlog.get_logger("rotator.tasks")


def _valid_ids(job_ids: Any) -> list[str]:
    """A malformed message is dropped with a log line; it must not take the worker down.

    Only ids in exactly the format rotator makes pass: an id becomes part of key names, so
    ``<id>:journal`` would make the worker load, quarantine and delete that job's journal.
    """
    if isinstance(job_ids, str):
        job_ids = [job_ids]
    if not isinstance(job_ids, list | tuple):
        log.error("malformed rotate message dropped", payload_type=type(job_ids).__name__)
        return []
    valid = [j for j in job_ids if is_job_id(j)]
    if len(valid) != len(job_ids):
        log.error("malformed job ids dropped from message", dropped=len(job_ids) - len(valid))
    return valid


@celery_app.task(name="rotator.rotate")
def rotate(job_ids: Any) -> list[str]:
    ids = _valid_ids(job_ids)
    if not ids:
        return []
    loop, runtime = process_runtime()

    async def one(job_id: str) -> str:
        with scope():  # the secret values this job holds are redacted from its logs
            return str(await runtime.process(job_id))

    async def run_all() -> list[str]:
        return list(await asyncio.gather(*(one(j) for j in ids)))

    # The threads pool never enforces task_time_limit: bound the wait here. What is still
    # running then is cancelled; its jobs resume after their lease, as after a worker crash.
    return loop.run(run_all(), timeout=celeryconfig.task_soft_time_limit)


def send_jobs(job_ids: Sequence[str]) -> None:
    job_ids = _valid_ids(list(job_ids))
    for start in range(0, len(job_ids), DELIVERY_BATCH):
        rotate.apply_async(args=[list(job_ids[start : start + DELIVERY_BATCH])])


@celery_app.task(name="rotator.dispatch")
def dispatch() -> dict[str, int]:
    loop, runtime = process_runtime()
    claimed: list[str] = []

    async def collect(job_ids: Sequence[str]) -> None:
        claimed.extend(job_ids)

    async def run() -> tuple[dict[str, int], bool]:
        result = await dispatch_pass(runtime, collect)
        summary = {"scheduled": result.scheduled, "delivered": result.delivered}
        try:
            kept = await housekeep(
                runtime.store, runtime.config.get(), Retention.from_settings(runtime.settings)
            )
        except Exception as exc:  # retention must never stop dispatching
            log.error("housekeeping failed", error=type(exc).__name__)
            return summary, False
        return summary, kept.archive_due

    summary, archive_due = loop.run(run())
    # Publishing is blocking I/O: do it on this Celery thread, not on the shared event loop.
    send_jobs(claimed)
    if archive_due:
        archive_audit(runtime.settings)
    return summary


@celery_app.task(name="rotator.notify")
def notify() -> dict[str, int]:
    """Deliver due notifications (beat, every ROTATOR_DISPATCH_INTERVAL): rotator.notify."""
    loop, runtime = process_runtime()

    async def run() -> dict[str, int]:
        from rotator.notify.watch import watch

        await watch(runtime)  # overdue targets, a growing audit spool
        return (await runtime.deliverer().drain()).as_dict()

    return loop.run(run(), timeout=celeryconfig.task_soft_time_limit)
