"""Scheduling: claims are atomic, so two dispatchers never double-dispatch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from rotator.dispatch import dispatch, sync_schedule
from tests.core.conftest import Harness


def test_due_targets_become_jobs_once_across_concurrent_dispatchers(harness: Harness) -> None:
    h = harness
    # first_rotation defaults to "scheduled": synced an interval (1h) ago, it is due now.
    h.run(sync_schedule(h.store, h.config, now=time.time() - 3610))
    delivered: list[str] = []

    async def deliver(ids: Sequence[str]) -> None:
        delivered.extend(ids)

    async def two_dispatchers() -> None:
        await asyncio.gather(
            dispatch(h.store, h.config, h.engine.audit, deliver),
            dispatch(h.store, h.config, h.engine.audit, deliver),
        )

    h.run(two_dispatchers())
    assert len(delivered) == 1
    next_due = h.run(h.store.next_due(["crm"]))["crm"]
    assert next_due is not None and next_due > time.time() + 3000  # schedule: 1h

    # A claimed job is invisible until its visibility window passes, then comes back.
    again: list[str] = []

    async def deliver_again(ids: Sequence[str]) -> None:
        again.extend(ids)

    h.run(dispatch(h.store, h.config, h.engine.audit, deliver_again))
    assert again == []
    h.run(dispatch(h.store, h.config, h.engine.audit, deliver_again, now=time.time() + 400))
    assert again == delivered


def test_sync_schedule_keeps_due_times_and_drops_removed_targets(harness: Harness) -> None:
    h = harness
    assert h.run(sync_schedule(h.store, h.config, now=1000.0)) == ["crm"]
    h.run(h.store.set_next_due({"crm": 5000.0, "gone": 1.0}))
    assert h.run(sync_schedule(h.store, h.config, now=2000.0)) == []
    assert h.run(h.store.next_due(["crm", "gone"])) == {"crm": 5000.0, "gone": None}
