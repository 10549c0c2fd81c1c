"""End to end with a real Celery worker and beat, a real Redis and the sandbox over sockets."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from typing import Any

import pytest

from tests.integration.conftest import CANARY_PREFIX, System

pytestmark = pytest.mark.integration


def plant(system: System) -> str:
    canary = CANARY_PREFIX + uuid.uuid4().hex
    (system.tmp / "sfdc.json").write_text(json.dumps({"username": "etl", "password": canary}))
    return canary


def live_params(system: System) -> dict[str, Any]:
    state = system.admin.get("/_sandbox/adobe/resources/conn-it-1").json()
    return dict(state["auth"]["params"])


def applied_passwords(system: System) -> list[str]:
    state = system.admin.get("/_sandbox/adobe/resources/conn-it-1").json()
    return [h["secret"].get("password") for h in state["history"] if h["by"] == "api"]


def test_on_demand_rotation_through_celery_keeps_the_canary_secret(system: System) -> None:
    # Given a secret with a canary value and a running worker and beat
    canary = plant(system)
    system.start("worker", "--concurrency", "4")
    system.start("beat")

    # When an operator enqueues a rotation
    job = system.cli("enqueue", "adobe-sfdc", "--reason", "leak drill")
    system.wait("job completed", lambda: system.job(job["job_id"]).get("state") == "completed")

    # Then the provider carries exactly rotator's current secret
    assert live_params(system)["password"] == canary
    assert system.current_secret("adobe-sfdc", "sfdc")["password"] == canary
    assert applied_passwords(system) == [canary]

    # And the canary appears nowhere else: logs, audit, Redis (only encrypted), CLI output
    system.stop_all()
    for log in system.logs:
        assert canary not in log.read_text(errors="replace"), log
    for key in system.redis.scan_iter(match=f"{system.prefix}*", count=1000):
        kind = system.redis.type(key)
        if kind == b"string":
            blob = repr(system.redis.get(key))
        elif kind == b"hash":
            blob = repr(system.redis.hgetall(key))
        elif kind == b"stream":
            blob = repr(system.redis.xrange(key))
        elif kind == b"list":
            blob = repr(system.redis.lrange(key, 0, -1))
        elif kind == b"zset":
            blob = repr(system.redis.zrange(key, 0, -1))
        else:
            blob = repr(system.redis.smembers(key))
        assert canary not in blob, key
    status = system.cli("status")
    assert canary not in json.dumps(status)
    assert status[0]["last_outcome"] == "completed"


def test_celery_messages_carry_job_ids_only(system: System) -> None:
    canary = plant(system)
    job = system.cli("enqueue", "adobe-sfdc")
    # Given no worker, one dispatch (the beat task's body) publishes the job: read it raw.
    result = subprocess.run(
        [sys.executable, "-c", "from rotator.tasks import dispatch; print(dispatch())"],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "'delivered': 1" in result.stdout
    queue = f"{system.prefix}kombu:{system.prefix}q"
    raw = system.redis.lrange(queue, 0, -1)
    assert len(raw) == 1
    assert canary.encode() not in raw[0]
    message = json.loads(raw[0])
    assert message["headers"]["task"] == "rotator.rotate"
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == [[job["job_id"]]] and kwargs == {}


@pytest.mark.parametrize("kill_point", ["during_read", "during_update", "after_update"])
def test_worker_killed_mid_rotation_converges(system: System, kill_point: str) -> None:
    canary = plant(system)
    slow = {"during_read": "GET", "during_update": "PATCH", "after_update": "GET"}[kill_point]
    system.admin.put(
        "/_sandbox/faults",
        json={
            "rules": [
                {
                    "provider": "adobe",
                    "kind": "latency",
                    "ms": 1500,  # fits the tests' 4 s lease with room: the update reads twice
                    "methods": [slow],
                    "path": "/connections/",
                }
            ]
        },
    ).raise_for_status()
    system.start("worker", "--concurrency", "4")
    system.start("beat")
    job_id = system.cli("enqueue", "adobe-sfdc")["job_id"]

    def reached() -> bool:
        journal = system.journal(job_id)
        if kill_point == "during_read":
            return system.job(job_id).get("state") == "running" and "intent" not in journal
        if kill_point == "during_update":
            return "intent" in journal
        return "applied" in journal

    system.wait(f"job to reach {kill_point}", reached, timeout=30)
    # When the worker is SIGKILLed at that instant
    system.kill("worker")
    system.admin.delete("/_sandbox/faults")
    assert system.job(job_id)["state"] == "running"

    # Then a new worker converges once the dead worker's lease expires
    system.start("worker", "--concurrency", "4")
    system.wait(
        "job completed after the kill",
        lambda: system.job(job_id).get("state") == "completed",
        timeout=60,
    )
    assert live_params(system)["password"] == canary
    assert system.current_secret("adobe-sfdc", "sfdc")["password"] == canary
    assert applied_passwords(system) == [canary]  # never applied twice
    assert int(system.job(job_id)["attempts"]) >= 2


def test_worker_quarantines_a_malformed_job_and_survives_a_bad_reload(system: System) -> None:
    canary = plant(system)
    system.start("worker", "--concurrency", "4")
    system.start("beat")
    # Given a job record in Redis that no version of rotator could have written
    bad = "deadbeef" * 4
    system.redis.hset(f"{system.prefix}job:{bad}", mapping={"id": bad, "state": "exploded"})
    system.redis.zadd(f"{system.prefix}jobs:due", {bad: 0})
    system.wait(
        "malformed job quarantined",
        lambda: system.redis.hexists(f"{system.prefix}jobs:quarantine", bad),
    )
    reason = json.loads(system.redis.hget(f"{system.prefix}jobs:quarantine", bad))["reason"]
    assert "target" in reason or "state" in reason

    # When the targets file is broken while the worker runs
    good = (system.tmp / "rotator.yaml").read_text()
    job_id = system.cli("enqueue", "adobe-sfdc")["job_id"]
    (system.tmp / "rotator.yaml").write_text(good.replace("provider: adobe", "provider: adobee"))

    # Then the worker keeps its last good configuration and says why
    system.wait(
        "job completed with the last good config",
        lambda: system.job(job_id).get("state") == "completed",
    )
    assert live_params(system)["password"] == canary
    system.wait(
        "reload failure logged",
        lambda: any(
            "keeping the last good configuration" in p.read_text()
            and "targets.adobe-sfdc.provider" in p.read_text()
            for p in system.logs
        ),
    )
    quarantined = system.cli("jobs", "--quarantined")
    assert bad in quarantined["jobs"]


def test_run_once_processes_due_jobs_in_process_and_reports_failures(system: System) -> None:
    canary = plant(system)
    job_id = system.cli("enqueue", "adobe-sfdc")["job_id"]

    ok = subprocess.run(
        [sys.executable, "-m", "rotator", "run", "--once", "--json"],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"completed": 1}
    assert system.job(job_id)["state"] == "completed"
    assert live_params(system)["password"] == canary

    # A job that fails makes the run exit non-zero, for cron and scripts to notice.
    system.env["IT_ADOBE_CLIENT_SECRET"] = "revoked"
    # The token the first run minted is shared through Redis and still valid (as a real
    # provider's is until it expires): drop it, so this run must mint with the revoked secret.
    for key in system.redis.scan_iter(match=f"{system.prefix}token:*"):
        system.redis.delete(key)
    (system.tmp / "sfdc.json").write_text(json.dumps({"username": "etl", "password": "next"}))
    system.cli("enqueue", "adobe-sfdc")
    bad = subprocess.run(
        [sys.executable, "-m", "rotator", "run", "--once", "--json"],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 1
    assert json.loads(bad.stdout) == {"failed": 1}
    assert "revoked" not in bad.stdout + bad.stderr
