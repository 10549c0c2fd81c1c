"""The delivery queue: routing, dedupe per (subject, event), the bound, the rate limit."""

from __future__ import annotations

import json

from rotator.notify.events import EventKind, Notice
from rotator.notify.queue import QueueNotifier
from tests.notify.conftest import Queue


def notice(kind: EventKind = EventKind.CONFLICT, job: str = "job-1", target: str = "crm") -> Notice:
    return Notice(kind=kind, subject=job, job_id=job, target=target, provider="fake")


def test_a_notice_is_queued_once_per_webhook_it_routes_to(queue: Queue) -> None:
    notifier = QueueNotifier(queue.store, lambda: queue.config)

    assert queue.run(notifier.notify(notice())) is True

    records = queue.run(queue.redis.hgetall(queue.store.keys.notify_deliveries))
    hooks = sorted(json.loads(r)["webhook"] for r in records.values())
    assert hooks == ["chat", "ops"]
    assert set(queue.due()) == {k.decode() for k in records}
    ids = {json.loads(r)["notice"]["id"] for r in records.values()}
    assert len(ids) == 1  # one notice id, one delivery id per webhook


def test_the_same_job_and_event_is_queued_once_within_the_window(queue: Queue) -> None:
    notifier = QueueNotifier(queue.store, lambda: queue.config)
    assert queue.run(notifier.notify(notice())) is True

    assert queue.run(notifier.notify(notice())) is False  # a repeat of job-1's conflict
    assert queue.run(notifier.notify(notice(EventKind.DEAD))) is True  # another event
    assert queue.run(notifier.notify(notice(job="job-2"))) is True  # another job
    assert queue.run(queue.store.queued_deliveries()) == 6
    window = queue.run(queue.redis.keys("n:notify:dedupe:*"))
    ttls = [queue.run(queue.redis.ttl(k)) for k in window]
    assert len(ttls) == 3 and all(590 < t <= 600 for t in ttls)


def test_a_notice_no_webhook_wants_is_not_queued(queue: Queue) -> None:
    notifier = QueueNotifier(queue.store, lambda: queue.config)
    assert queue.run(notifier.notify(notice(EventKind.DEAD, target="erp"))) is False
    assert queue.run(queue.store.queued_deliveries()) == 0


def test_a_full_queue_drops_the_notice_whole_and_keeps_no_dedupe_mark(queue: Queue) -> None:
    small = QueueNotifier(queue.store, lambda: queue.config, max_queued=3)
    assert queue.run(small.notify(notice(job="job-1"))) is True  # 2 deliveries

    assert queue.run(small.notify(notice(job="job-2"))) is False  # 2 more would make 4
    assert queue.run(queue.store.queued_deliveries()) == 2

    roomy = QueueNotifier(queue.store, lambda: queue.config, max_queued=10)
    assert queue.run(roomy.notify(notice(job="job-2"))) is True  # not taken for a duplicate


def test_the_rate_limit_allows_a_burst_then_one_per_interval(queue: Queue) -> None:
    slot = queue.store.rate_slot
    now = 1_000_000.0
    # 60 a minute, burst 2: two at once, then one a second.
    assert queue.run(slot("chat", now, 60, 2)) == 0.0
    assert queue.run(slot("chat", now, 60, 2)) == 0.0
    wait = queue.run(slot("chat", now, 60, 2))
    assert 0.99 < wait <= 1.0
    assert queue.run(slot("chat", now + 0.5, 60, 2)) > 0
    assert queue.run(slot("chat", now + 1.0, 60, 2)) == 0.0
    assert queue.run(slot("ops", now, 60, 2)) == 0.0  # per webhook


def test_a_claim_hides_deliveries_for_the_visibility_window(queue: Queue) -> None:
    notifier = QueueNotifier(queue.store, lambda: queue.config)
    queue.run(notifier.notify(notice()))
    now = max(queue.due().values())

    first = queue.run(queue.store.claim_deliveries(now, 10, 30.0))
    assert len(first) == 2
    assert queue.run(queue.store.claim_deliveries(now + 1, 10, 30.0)) == []
    again = queue.run(queue.store.claim_deliveries(now + 31, 10, 30.0))
    assert sorted(c.id for c in again) == sorted(c.id for c in first)  # a dead drainer's
