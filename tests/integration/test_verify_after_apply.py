"""Issue 9.1 through real processes: an update that landed is never abandoned.

The sandbox applies the update, then fails every read of the resource (503s and 429s) for
longer than the attempt budget. The job must keep verifying ("applied, verifying"), never show
``failed`` or ``dead`` in ``rotator status``, and complete once reads succeed.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.integration.conftest import CANARY_PREFIX, System

pytestmark = pytest.mark.integration

MAX_ATTEMPTS = 2


def applied_passwords(system: System) -> list[str]:
    state = system.admin.get("/_sandbox/adobe/resources/conn-it-1").json()
    return [h["secret"].get("password") for h in state["history"] if h["by"] == "api"]


def set_faults(system: System, *rules: dict[str, Any]) -> None:
    system.admin.put("/_sandbox/faults", json={"rules": list(rules)}).raise_for_status()


def test_reads_failing_after_the_update_keep_the_job_verifying_until_it_completes(
    system: System,
) -> None:
    # Given a small attempt budget and fast retries
    system.env.update(
        {
            "ROTATOR_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "ROTATOR_RETRY_BASE_DELAY": "0.2",
            "ROTATOR_RETRY_MAX_DELAY": "1",
            "ROTATOR_LEASE_TTL": "15",  # longer than the held update
        }
    )
    canary = CANARY_PREFIX + uuid.uuid4().hex
    (system.tmp / "sfdc.json").write_text(json.dumps({"username": "etl", "password": canary}))
    # And the update is held in the sandbox long enough to break reads before it answers
    set_faults(system, {"provider": "adobe", "kind": "latency", "ms": 2500, "methods": ["PATCH"]})
    system.start("worker", "--concurrency", "2")
    system.start("beat")

    # When a rotation starts, and every read fails from the moment its update is in flight
    job_id = system.cli("enqueue", "adobe-sfdc", "--reason", "verify drill")["job_id"]
    system.wait("the update intent", lambda: "intent" in system.journal(job_id), timeout=90)
    set_faults(
        system,
        {"provider": "adobe", "kind": "rate_limit", "methods": ["GET"], "rate": 0.3},
        {"provider": "adobe", "kind": "error", "status": 503, "methods": ["GET"]},
    )
    system.wait("the update applied", lambda: applied_passwords(system) == [canary], timeout=60)

    # Then, well past the attempt budget, the job is verifying and status never says failed
    seen_states: set[str] = set()
    seen_rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while int(system.job(job_id).get("attempts", 0)) < MAX_ATTEMPTS + 3:
        assert time.monotonic() < deadline, f"job stuck: {system.job(job_id)}"
        (row,) = system.cli("status")
        seen_rows.append(row)
        job = system.job(job_id)
        seen_states.add(job["state"])
        assert job["state"] in ("running", "verifying"), f"job ended {job['state']}: {job}"
    text = json.dumps(seen_rows)
    assert "failed" not in text and "dead" not in text, seen_rows
    assert "applied, verifying" in {r["state"] for r in seen_rows}, seen_rows
    assert seen_states <= {"running", "verifying"}, seen_states
    assert system.job(job_id)["state"] in ("running", "verifying")
    assert all(r["pending"] for r in seen_rows)  # the pending version stays pinned
    shown = system.cli("job", job_id)
    assert shown["state"] in ("running", "verifying") and shown["verifying_since"]

    # When reads succeed again
    system.admin.delete("/_sandbox/faults").raise_for_status()

    # Then the job completes with the version it applied once, and status says so
    system.wait("job completed", lambda: system.job(job_id).get("state") == "completed", timeout=90)
    (row,) = system.cli("status")
    assert row["state"] == "completed" and row["last_outcome"] == "completed"
    assert row["current"] and row["pending"] is None
    assert system.current_secret("adobe-sfdc", "sfdc")["password"] == canary
    assert applied_passwords(system) == [canary]
    events = [e["event"] for e in system.cli("audit", "show", job_id)["events"]]
    assert "job.verify_scheduled" in events and "job.dead" not in events
    assert events.index("update.applied") < events.index("job.verify_scheduled")
