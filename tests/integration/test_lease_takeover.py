"""A killed worker's target is taken over within one (default) lease, not five minutes later."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.integration.conftest import CANARY_PREFIX, System

pytestmark = pytest.mark.integration


def test_killed_workers_job_completes_on_another_worker_within_a_minute(system: System) -> None:
    # Given workers with the DEFAULT lease settings (the fixture's short test lease removed)
    for name in ("ROTATOR_LEASE_TTL", "ROTATOR_HTTP_TIMEOUT"):
        system.env.pop(name)
    canary = CANARY_PREFIX + uuid.uuid4().hex
    (system.tmp / "sfdc.json").write_text(json.dumps({"username": "etl", "password": canary}))
    # and an update that hangs long enough to kill the worker in the middle of it
    system.admin.put(
        "/_sandbox/faults",
        json={
            "rules": [
                {
                    "provider": "adobe",
                    "kind": "latency",
                    "ms": 5000,
                    "methods": ["PATCH"],
                    "path": "/connections/",
                }
            ]
        },
    ).raise_for_status()
    system.start("worker", "--concurrency", "4")
    system.start("beat")
    job_id = system.cli("enqueue", "adobe-sfdc")["job_id"]
    system.wait("the update to be under way", lambda: "intent" in system.journal(job_id))
    # and the lease the dead worker leaves behind is one of the short, renewed kind
    lease_ms = system.redis.pttl(f"{system.prefix}target:adobe-sfdc:lease")
    assert 0 < lease_ms <= 30_000

    # When that worker is SIGKILLed mid-rotation and another worker is running
    system.kill("worker")
    killed = time.monotonic()
    system.admin.delete("/_sandbox/faults")
    assert system.job(job_id)["state"] == "running"
    system.start("worker", "--concurrency", "4")

    # Then the other worker completes the job within 60 s of the kill (one 30 s lease, plus
    # the dispatcher's tick), with the update applied once
    system.wait(
        "job completed by another worker",
        lambda: system.job(job_id).get("state") == "completed",
        timeout=60,
    )
    took = time.monotonic() - killed
    print(f"takeover: job completed {took:.1f}s after the worker was killed")
    assert took < 60
    assert system.current_secret("adobe-sfdc", "sfdc")["password"] == canary
    state = system.admin.get("/_sandbox/adobe/resources/conn-it-1").json()
    assert [h["secret"].get("password") for h in state["history"] if h["by"] == "api"] == [canary]
    assert int(system.job(job_id)["attempts"]) == 2
