"""Notices no job raises: overdue targets, an audit spool with events waiting, key mismatch."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cryptography.fernet import Fernet

from rotator.config import Settings, load_settings
from rotator.errors import ConfigError
from rotator.notify.events import EventKind
from rotator.notify.queue import QueueNotifier
from rotator.notify.watch import watch
from rotator.store.keys import Keys
from tests.notify.conftest import TARGETS, Queue


def runtime(queue: Queue, state_dir: Path) -> Any:
    settings = Settings(state_dir=state_dir, insecure_hosts="fake.example:*")
    return SimpleNamespace(
        config=SimpleNamespace(get=lambda: queue.config),
        store=queue.store,
        settings=settings,
        notifier=QueueNotifier(queue.store, lambda: queue.config),
    )


def queued(queue: Queue) -> list[dict[str, Any]]:
    rows = queue.run(queue.redis.hgetall(queue.store.keys.notify_deliveries)).values()
    return [json.loads(r) for r in rows]


def test_an_overdue_target_is_notified_once_per_watch_interval(
    queue: Queue, tmp_path: Path
) -> None:
    now = time.time()
    # crm (every 1h) last rotated 3h ago and due 2h ago; erp has no schedule.
    queue.run(queue.redis.hset(queue.store.keys.target("crm"), "rotated_at", now - 3 * 3600))
    queue.run(queue.redis.hset(queue.store.keys.target("crm"), "current", "v000000000004"))
    queue.run(queue.store.set_next_due({"crm": now - 2 * 3600}))
    rt = runtime(queue, tmp_path)

    (notice,) = queue.run(watch(rt, now))

    assert (notice.kind, notice.subject, notice.target) == (EventKind.OVERDUE, "target:crm", "crm")
    assert notice.secret_version == "v000000000004" and "was due" in (notice.detail or "")
    assert [d["webhook"] for d in queued(queue)] == ["ops"]  # chat hears conflict, dead only
    assert queue.run(watch(rt, now)) == []  # another process's turn is not due yet


def test_a_target_not_yet_due_is_not_overdue(queue: Queue, tmp_path: Path) -> None:
    now = time.time()
    queue.run(queue.store.set_next_due({"crm": now + 600}))  # new, never rotated
    assert queue.run(watch(runtime(queue, tmp_path), now)) == []


def test_events_waiting_in_the_audit_spool_are_notified(queue: Queue, tmp_path: Path) -> None:
    spool = tmp_path / "audit-spool"
    spool.mkdir()
    (spool / "0001.jsonl").write_text('{"event": "job.started"}\n')
    queue.run(queue.store.take_turn("notify-watch", 300))  # no overdue check this time

    (notice,) = queue.run(watch(runtime(queue, tmp_path)))

    assert notice.kind is EventKind.AUDIT_SPOOL and notice.subject.startswith("host:")
    assert "1 spool segment(s)" in (notice.detail or "")
    assert len(queued(queue)) == 1


def test_a_process_refused_for_a_key_mismatch_queues_a_notice(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    from rotator.preflight import _check_store
    from rotator.store.notify import NotifyQueueStore

    # The notify section alone (the "fake" provider is known to the unit tests only).
    (tmp_path / "rotator.yaml").write_text(TARGETS.split("targets:")[0])

    def settings(master: str) -> Settings:
        return load_settings(
            redis_url=redis_url,
            key_prefix=key_prefix,
            master_key=master,
            audit_key="a" * 32,
            targets_file=tmp_path / "rotator.yaml",
            insecure_hosts="fake.example:*",
            allowed_hosts="notify=hooks.example.com",
        )

    asyncio.run(_check_store(settings(Fernet.generate_key().decode())))  # records the keys
    other = settings(Fernet.generate_key().decode())
    try:
        asyncio.run(_check_store(other))
        raise AssertionError("a different master key was accepted")
    except ConfigError as exc:
        assert exc.issues[0].location == "ROTATOR_MASTER_KEY"

    async def deliveries() -> list[dict[str, Any]]:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(redis_url)
        try:
            store = NotifyQueueStore(client, Keys(key_prefix), None)  # type: ignore[arg-type]
            return [c.record for c in await store.claim_deliveries(time.time() + 1, 10, 1.0)]
        finally:
            await client.aclose()

    records = asyncio.run(deliveries())
    assert sorted(r["webhook"] for r in records) == ["ops"]
    notice = records[0]["notice"]
    assert notice["kind"] == "key_mismatch" and "ROTATOR_MASTER_KEY" in notice["detail"]
