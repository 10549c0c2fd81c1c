"""The exporter's Redis gauges: credential age, overdue, due queue, dead letters, spool."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fakeredis
import redis

from rotator.config import Schedule, Settings
from rotator.exporter import RedisCollector
from rotator.store.keys import Keys
from tools.common import free_port


def gauges(collector: RedisCollector) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.values()))): s.value
        for family in collector.collect()
        for s in family.samples
    }


def test_age_overdue_due_queue_dead_letters_and_spool(tmp_path: Path) -> None:
    # Given two daily targets: one rotated an hour ago, one two days ago, never rescheduled
    now = time.time()
    settings = Settings(state_dir=tmp_path, key_prefix="x:", dispatch_interval=5)
    keys, client = Keys("x:"), fakeredis.FakeRedis()
    daily = Schedule(every=86400)
    targets: dict[str, Any] = {
        "fresh": SimpleNamespace(provider="adobe", parsed_schedule=daily),
        "stale": SimpleNamespace(provider="uipath", parsed_schedule=daily),
    }
    client.hset(keys.target("fresh"), "rotated_at", now - 3600)
    client.hset(keys.target("stale"), "rotated_at", now - 2 * 86400)
    client.zadd(keys.schedule, {"fresh": now + 82800, "stale": now + 600})
    # and two jobs due (one for 30 s), one in the future, one dead letter, one spooled batch
    client.zadd(keys.due, {"a": now - 30, "b": now - 1, "c": now + 100})
    client.zadd(keys.dead, {"d": now})
    spool = tmp_path / "audit-spool"
    spool.mkdir()
    (spool / "00000000000000000001-1-abcdef01.jsonl").write_text("{}\n")
    config = SimpleNamespace(get=lambda: SimpleNamespace(targets=targets))

    # When scraped
    seen = gauges(RedisCollector(settings, client, config))

    # Then
    assert 3590 < seen[("rotator_credential_age_seconds", ("adobe", "fresh"))] < 3700
    assert seen[("rotator_target_overdue", ("fresh",))] == 0
    assert seen[("rotator_target_overdue", ("stale",))] == 1
    assert seen[("rotator_overdue_targets", ())] == 1
    assert 500 < seen[("rotator_next_due_seconds", ("stale",))] <= 600
    assert seen[("rotator_due_jobs", ())] == 2
    assert 29 < seen[("rotator_due_oldest_age_seconds", ())] < 40
    assert seen[("rotator_dead_letter_jobs", ())] == 1
    assert seen[("rotator_audit_spool_segments", ())] == 1
    assert seen[("rotator_last_dispatch_timestamp_seconds", ())] == 0
    assert seen[("rotator_exporter_scrape_error", ())] == 0


def test_an_unreadable_redis_sets_the_scrape_error_gauge(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, key_prefix="x:")
    broken = redis.Redis(port=free_port(), socket_connect_timeout=2)
    config = SimpleNamespace(get=lambda: SimpleNamespace(targets={}))
    seen = gauges(RedisCollector(settings, broken, config))
    assert seen == {("rotator_exporter_scrape_error", ()): 1}
