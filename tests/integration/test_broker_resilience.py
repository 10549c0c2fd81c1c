"""The worker survives whatever bytes land on its broker queue (issue 9, item 2)."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.conftest import CANARY_PREFIX, System

pytestmark = pytest.mark.integration

HOSTILE_ITEMS = [
    b"this is not json",
    b'{"truncated": ',
    b"\xff\xfe\x00binary\x80",
    b"[1, 2, 3]",
    b'{"properties": 5, "body": "x"}',
    b'{"body": "' + b"A" * 400_000 + b'"}',
]


def test_worker_quarantines_undecodable_envelopes_and_keeps_consuming(system: System) -> None:
    # Given a running worker and a secret to rotate
    (system.tmp / "sfdc.json").write_text(
        json.dumps({"username": "etl", "password": CANARY_PREFIX + uuid.uuid4().hex})
    )
    worker = system.start("worker", "--concurrency", "2")
    queue = f"{system.prefix}kombu:{system.prefix}q"
    system.wait("worker consuming", lambda: b"ready" in system.logs[-1].read_bytes())

    # When hostile items are pushed straight onto the worker's queue key
    for item in HOSTILE_ITEMS:
        system.redis.lpush(queue, item)
    quarantine = f"{system.prefix}broker:quarantine"
    system.wait(
        "every hostile item quarantined",
        lambda: system.redis.llen(quarantine) == len(HOSTILE_ITEMS),
    )

    # Then the worker is still alive, and a valid job behind them completes
    assert worker.poll() is None, system.logs[-1].read_text()[-3000:]
    system.start("beat")
    job = system.cli("enqueue", "adobe-sfdc")
    system.wait("job completed", lambda: system.job(job["job_id"]).get("state") == "completed")
    assert worker.poll() is None

    # And each quarantined item says why, with a bounded copy of the bytes
    records = [json.loads(r) for r in system.redis.lrange(quarantine, 0, -1)]
    reasons = {r["reason"] for r in records}
    assert "envelope is not JSON" in reasons
    assert "envelope is not UTF-8" in reasons
    assert any(r.startswith("oversized envelope") for r in reasons)
    assert all(len(r["raw_b64"]) <= 1400 for r in records)
    # And operators see them, without the bytes, in `rotator jobs --quarantined`
    listed = system.cli("jobs", "--quarantined")["envelopes"]
    assert sorted(r["reason"] for r in listed) == sorted(r["reason"] for r in records)
    assert not any("raw_b64" in r for r in listed)
