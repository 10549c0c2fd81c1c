"""A real worker, beat and exporter during real rotations against the sandbox: the counters,
the credential-age gauge, the health endpoints and the log lines, as an operator sees them."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from tests.integration.conftest import CANARY_PREFIX, System
from tests.metrics.promtext import scrape, value
from tools.common import free_port

pytestmark = pytest.mark.integration


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _rotate(system: System) -> str:
    job = system.cli("enqueue", "adobe-sfdc")
    job_id = str(job["job_id"])
    system.wait("job completed", lambda: system.job(job_id).get("state") == "completed", 90)
    return job_id


def _age(port: int) -> float:
    return value(scrape(port), "rotator_credential_age_seconds", target="adobe-sfdc")


def test_worker_counts_rotations_and_the_exporter_ages_the_credential(system: System) -> None:
    # Given a worker, a beat and an exporter, each with its monitoring port
    canary = CANARY_PREFIX + uuid.uuid4().hex
    (system.tmp / "sfdc.json").write_text(json.dumps({"username": "etl", "password": canary}))
    worker_port, beat_port, exporter_port = free_port(), free_port(), free_port()
    system.env["ROTATOR_METRICS_PORT"] = str(worker_port)
    system.start("worker", "--concurrency", "4")
    system.env["ROTATOR_METRICS_PORT"] = str(beat_port)
    system.start("beat")
    del system.env["ROTATOR_METRICS_PORT"]
    system.start("exporter", "--port", str(exporter_port), "--host", "127.0.0.1")
    for port in (worker_port, beat_port, exporter_port):
        system.wait(f"monitoring port {port}", lambda p=port: _up(p), 60)  # type: ignore[misc]

    # and one update answered 503 once, so the first rotation retries
    system.admin.put(
        "/_sandbox/faults",
        json={
            "rules": [
                {
                    "provider": "adobe",
                    "kind": "error",
                    "status": 503,
                    "count": 1,
                    "methods": ["PATCH"],
                    "path": "/connections/",
                }
            ]
        },
    ).raise_for_status()

    # When the target is rotated
    first_job = _rotate(system)

    # Then the worker counted the rotation, the retry and its cause, and the provider calls
    worker = scrape(worker_port)
    assert value(worker, "rotator_rotations_total", provider="adobe", outcome="completed") == 1
    assert value(worker, "rotator_rotations_total", provider="adobe", outcome="retry") == 1
    assert value(worker, "rotator_retries_total", provider="adobe") == 1
    retry_causes = {
        dict(labels)["error_class"]
        for (name, labels), v in worker.items()
        if name == "rotator_retries_total" and v
    }
    assert retry_causes == {"ProviderUnavailable"} or len(retry_causes) == 1, retry_causes
    assert value(worker, "rotator_provider_requests_total", provider="adobe", status="503") == 1
    assert value(worker, "rotator_provider_requests_total", provider="adobe", status="200") >= 2
    assert value(worker, "rotator_attempt_duration_seconds_count", provider="adobe") == 2
    assert value(worker, "rotator_provider_request_duration_seconds_count", provider="adobe") >= 3

    # and the exporter reports a fresh credential and a recent dispatch
    system.wait("the credential ages", lambda: _age(exporter_port) >= 1.5, 30)
    aged = _age(exporter_port)
    exported = scrape(exporter_port)
    assert time.time() - value(exported, "rotator_last_dispatch_timestamp_seconds") < 30
    assert value(exported, "rotator_dead_letter_jobs") == 0
    assert value(exported, "rotator_exporter_scrape_error") == 0

    # When it is rotated again, to a new value
    (system.tmp / "sfdc.json").write_text(
        json.dumps({"username": "etl", "password": canary + "-2"})
    )
    second_job = _rotate(system)

    # Then the credential's age started again from zero and the counter moved by one
    assert _age(exporter_port) < aged
    worker = scrape(worker_port)
    assert value(worker, "rotator_rotations_total", provider="adobe", outcome="completed") == 2

    # And the worker counted into its multiprocess directory under the state dir
    metric_dirs = list((system.tmp / "state" / "metrics").iterdir())
    assert len(metric_dirs) == 1 and list(metric_dirs[0].glob("counter_*.db")), metric_dirs

    # And every process is ready
    for port in (worker_port, beat_port, exporter_port):
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text

    # And the worker's structlog lines are its own JSON lines at their real level, each line
    # about a rotation naming its job and target; no secret value anywhere
    system.stop_all()
    worker_log = system.logs[0].read_text(errors="replace")
    assert canary not in worker_log
    events = [json.loads(line) for line in worker_log.splitlines() if line.startswith("{")]
    about_jobs = [e for e in events if e.get("job_id") in (first_job, second_job)]
    assert about_jobs, worker_log[-3000:]
    rescheduled = [e for e in about_jobs if e["event"] == "rotation rescheduled"]
    assert rescheduled and rescheduled[0]["level"] == "info"
    assert rescheduled[0]["target"] == "adobe-sfdc"
    assert all(e.get("target") == "adobe-sfdc" for e in about_jobs if "provider" in e)
    assert "MainProcess] {" not in worker_log
    # And the per-dispatch chatter (every half second here) stays out of INFO logs
    beat_log = system.logs[1].read_text(errors="replace")
    assert "Sending due task" not in beat_log, beat_log[-3000:]
    assert "Task rotator.dispatch" not in worker_log
    assert "Task rotator.notify" not in worker_log
    assert "MainProcess] {" not in beat_log and "monitoring port open" in beat_log
