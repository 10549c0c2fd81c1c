"""The notices nobody's job raises: overdue targets, a growing audit spool, key mismatches.

``watch`` runs with every delivery pass (``rotator.tasks.notify``, ``rotator run --once``):

``overdue``
    at most once per ``WATCH_INTERVAL`` across all processes (a turn key, as housekeeping
    takes): every enabled scheduled target whose next rotation is past due by more than the
    exporter's grace, or whose last rotation is older than its schedule allows
    (``rotator.report.overdue_reason``, the report's and the exporter's rule). A target whose
    last job failed is not overdue *here*: its failure was notified already.
``audit_spool``
    every pass, by the process itself (the spool is a local directory): audit events are
    waiting in ``<state dir>/audit-spool`` because the audit stream could not be written.
    Subject: the host, so each host with a spool is heard once per dedupe window.
``key_mismatch``
    queued by ``rotator.preflight`` when a worker or beat refuses to start because its keys do
    not match the store's (``key_mismatch_notice``); a healthy process delivers it.

Each notice goes through the same queue (routing, dedupe window, bound) as a job's.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING, Any

import structlog

from rotator.notify.events import EventKind, Notice

if TYPE_CHECKING:
    from rotator.config import Settings
    from rotator.errors import ConfigError
    from rotator.runtime import Runtime

log = structlog.get_logger("rotator.notify")

WATCH_INTERVAL = 300.0  # seconds between overdue checks, across all processes


async def watch(runtime: Runtime, now: float | None = None) -> list[Notice]:
    """Queue the notices due now; returns them (queued or deduplicated). Never raises."""
    now = time.time() if now is None else now
    notices: list[Notice] = []
    try:
        if runtime.config.get().notify.webhooks:
            notices += spool_notices(runtime)
            if await runtime.store.take_turn("notify-watch", WATCH_INTERVAL):
                notices += await overdue_notices(runtime, now)
            for notice in notices:
                await runtime.notifier.notify(notice)
    except Exception as exc:  # a watch that fails must not stop deliveries
        log.warning("notification watch failed", error=type(exc).__name__)
    return notices


async def overdue_notices(runtime: Runtime, now: float) -> list[Notice]:
    from rotator.exporter import overdue_grace
    from rotator.report import overdue_reason

    config = runtime.config.get()
    names = [n for n, t in config.targets.items() if t.enabled and t.parsed_schedule]
    states = await runtime.store.target_states(names)
    due = await runtime.store.next_due(names)
    grace = overdue_grace(runtime.settings)
    notices = []
    for name in names:
        spec, state, next_due = config.targets[name], states.get(name, {}), due.get(name)
        rotated_at = float(state["rotated_at"]) if state.get("rotated_at") else None
        late = next_due is not None and next_due < now - grace
        if rotated_at is None and not late:
            continue  # new and not yet due: not overdue
        reason = overdue_reason(spec, rotated_at, next_due, now, grace)
        if reason:
            notices.append(
                Notice(
                    kind=EventKind.OVERDUE,
                    subject=f"target:{name}",
                    target=name,
                    provider=spec.provider,
                    secret_version=state.get("current") or None,
                    outcome="overdue",
                    detail=reason,
                    time=now,
                )
            )
    return notices


def spool_notices(runtime: Runtime) -> list[Notice]:
    from rotator.audit.spool import SPOOL_DIRNAME
    from rotator.exporter import spool_size

    segments, size = spool_size(runtime.settings.state_dir / SPOOL_DIRNAME)
    if not segments:
        return []
    host = socket.gethostname()
    return [
        Notice(
            kind=EventKind.AUDIT_SPOOL,
            subject=f"host:{host}",
            outcome="spooled",
            detail=f"{segments} spool segment(s), {size} bytes of audit events waiting on "
            f"{host}: the audit stream cannot be written (rotator audit replay-spool)",
        )
    ]


def key_mismatch_notice(variable: str, problem: str) -> Notice:
    host = socket.gethostname()
    return Notice(
        kind=EventKind.KEY_MISMATCH,
        subject=f"host:{host}:{variable}",
        outcome="refused",
        error_class="ConfigError",
        detail=f"a process on {host} refused to start: {variable}: {problem}",
    )


async def queue_key_mismatch(client: Any, settings: Settings, exc: ConfigError) -> bool:
    """Queue a ``key_mismatch`` notice for a process that refuses to start (preflight).
    Best effort, bounded: the refusal is what matters, and it happens whatever this does."""
    from rotator.config import load_targets
    from rotator.crypto import Vault
    from rotator.notify.queue import QueueNotifier
    from rotator.providers import provider_names
    from rotator.store.keys import Keys
    from rotator.store.notify import NotifyQueueStore

    try:
        config = load_targets(settings.targets_file, provider_names(), settings)
        if not config.notify.webhooks or not exc.issues:
            return False
        issue = exc.issues[0]
        vault = Vault(settings.master_keys(), settings.audit_key_bytes())
        store = NotifyQueueStore(client, Keys(settings.key_prefix), vault)
        notifier = QueueNotifier(store, lambda: config, max_queued=settings.notify_max_queued)
        async with asyncio.timeout(2.0):
            return await notifier.notify(key_mismatch_notice(issue.location, issue.message))
    except Exception as exc_:
        log.warning("key mismatch notice not queued", error=type(exc_).__name__)
        return False


__all__ = [
    "WATCH_INTERVAL",
    "key_mismatch_notice",
    "overdue_notices",
    "queue_key_mismatch",
    "spool_notices",
    "watch",
]
