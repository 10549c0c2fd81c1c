"""Incident mode and ``enqueue --wait`` end to end: a real worker, the sandbox, the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.integration.conftest import TARGETS, System

pytestmark = pytest.mark.integration

# Three more targets share the `sfdc` secret; one of them points at a resource that does not
# exist, so its rotation fails (and the incident must say so, and exit 1).
MORE = """
  adobe-two:
    provider: adobe
    base_url: {adobe}
    resource_id: conn-it-2
    secret: sfdc
    priority: 5
    credentials:
      client_id: env:IT_ADOBE_CLIENT_ID
      client_secret: env:IT_ADOBE_CLIENT_SECRET
    options:
      ims_url: {adobe_ims}
      org_id: "{org}"
  adobe-three:
    provider: adobe
    base_url: {adobe}
    resource_id: conn-it-3
    secret: sfdc
    priority: 10
    credentials:
      client_id: env:IT_ADOBE_CLIENT_ID
      client_secret: env:IT_ADOBE_CLIENT_SECRET
    options:
      ims_url: {adobe_ims}
      org_id: "{org}"
  adobe-gone:
    provider: adobe
    base_url: {adobe}
    resource_id: conn-does-not-exist
    secret: sfdc
    credentials:
      client_id: env:IT_ADOBE_CLIENT_ID
      client_secret: env:IT_ADOBE_CLIENT_SECRET
    options:
      ims_url: {adobe_ims}
      org_id: "{org}"
"""


def seed_more(system: System, *, with_gone: bool) -> None:
    from rotator.sandbox import defaults

    for resource in ("conn-it-2", "conn-it-3"):
        system.admin.put(
            f"/_sandbox/adobe/resources/{resource}",
            json={
                "auth": {
                    "specName": "Basic Authentication",
                    "params": {"username": "etl", "password": "initial"},
                }
            },
        ).raise_for_status()
    urls = defaults.base_urls(system.sandbox_url.rstrip("/"))
    values = {"adobe": urls["adobe"], "adobe_ims": urls["adobe_ims"], "org": defaults.ADOBE_ORG_ID}
    extra = MORE if with_gone else MORE.split("  adobe-gone:")[0]
    (system.tmp / "rotator.yaml").write_text(TARGETS.format(**values) + extra.format(**values))
    (system.tmp / "sfdc.json").write_text(json.dumps({"username": "etl", "password": "n3w-pw"}))


def rotator(system: System, *args: str, timeout: float = 100) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", *args],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def enqueued_order(system: System, incident: str) -> list[str]:
    events = system.cli("audit", "list", "--actor", f"incident:{incident}", "--oldest-first")
    rows: list[dict[str, Any]] = events["events"] if isinstance(events, dict) else events
    return [e["target"] for e in rows if e["event"] == "job.enqueued"]


def test_incident_rotates_every_target_of_the_secret_by_priority(system: System) -> None:
    # Given four targets sharing a secret (one pointing at a missing resource) and a worker
    seed_more(system, with_gone=True)
    system.start("worker", "--concurrency", "4")
    system.start("beat")  # the dispatcher hands queued jobs to the worker

    # A dry run shows the plan, highest priority first, and enqueues nothing
    dry = rotator(system, "enqueue", "--secret", "sfdc", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert [p["target"] for p in plan["planned"]] == [
        "adobe-three",
        "adobe-two",
        "adobe-gone",
        "adobe-sfdc",
    ]
    assert system.cli("jobs") == []

    # When the operator opens an incident for the leaked secret
    result = rotator(
        system, "enqueue", "--secret", "sfdc", "--reason", "leak", "--timeout", "60s", "--json"
    )

    # Then it follows every job to its end and exits 1 because one failed
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    states = {j["target"]: j["state"] for j in summary["jobs"]}
    assert states == {
        "adobe-three": "completed",
        "adobe-two": "completed",
        "adobe-sfdc": "completed",
        "adobe-gone": states["adobe-gone"],
    }
    assert states["adobe-gone"] in ("failed", "dead")
    assert summary["timed_out"] is False
    incident = summary["incident"]

    # And the audit links every job to the incident, enqueued in priority order
    assert enqueued_order(system, incident) == [
        "adobe-three",
        "adobe-two",
        "adobe-gone",
        "adobe-sfdc",
    ]

    # And the postmortem summarises it, naming the failure's error class
    report = rotator(system, "report", "--incident", incident, "--json")
    assert report.returncode == 0, report.stderr
    post = json.loads(report.stdout)
    assert post["targets"] == 4
    assert post["outcomes"]["success"] == 3
    gone = next(j for j in post["jobs"] if j["target"] == "adobe-gone")
    assert gone["outcome"] in ("failed", "dead") and gone["error_class"]
    assert "secret=sfdc" in post["detail"] and "leak" in post["detail"]
    human = rotator(system, "report", "--incident", incident)
    assert human.returncode == 0 and "adobe-gone" in human.stdout, human.stderr

    # An unknown incident is an error, not an empty report
    assert rotator(system, "report", "--incident", "inc-000000000000").returncode == 1


def test_enqueue_wait_exits_with_the_jobs_outcome(system: System) -> None:
    seed_more(system, with_gone=True)
    system.start("worker", "--concurrency", "2")
    system.start("beat")

    ok = rotator(system, "enqueue", "adobe-two", "--wait", "--timeout", "60s", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["state"] == "completed"

    bad = rotator(system, "enqueue", "adobe-gone", "--wait", "--timeout", "60s")
    assert bad.returncode == 1, bad.stderr
    assert "failed" in bad.stdout or "dead" in bad.stdout


def test_enqueue_wait_times_out_without_a_worker(system: System) -> None:
    seed_more(system, with_gone=False)
    result = rotator(system, "enqueue", "adobe-two", "--wait", "--timeout", "1s", "--json")
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert body["timed_out"] is True and body["state"] == "queued"
