"""The benchmark script runs end to end. Its figures are printed, never asserted here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _bench(tmp_path: Path, redis_url: str, *args: str) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--redis-url", redis_url]
        + ["--json-out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_rotation_benchmark_completes_every_rotation(tmp_path: Path, redis_url: str) -> None:
    report = _bench(
        tmp_path,
        redis_url,
        *("--rotations", "20", "--latency-ms", "0", "--no-baseline", "--workers", "1"),
        *("--warmup", "4", "--concurrency", "8"),
    )

    runs = report["rotator"]
    assert [(r["requested"], r["completed"]) for r in runs] == [(20, 20)]
    assert report["baseline"] == []
    # The no-Celery asyncio peer runs unless --no-asyncio-peer
    assert [(r["requested"], r["completed"]) for r in report["asyncio"]] == [(20, 20)]


def test_scheduled_benchmark_completes(tmp_path: Path, redis_url: str) -> None:
    report = _bench(
        tmp_path,
        redis_url,
        *("--scheduled", "300", "--dispatch-batch", "100", "--dispatch-batches", "2"),
    )

    scheduled = report["scheduled"]
    assert scheduled["targets"] == 300
    assert scheduled["dispatch_batches"] == 2
    assert "rotator" not in report


def test_incident_benchmark_rotates_every_target_within_the_documented_limits(
    tmp_path: Path, redis_url: str
) -> None:
    report = _bench(
        tmp_path,
        redis_url,
        *("--incident", "25", "--latency-ms", "0", "--workers", "1", "--concurrency", "8"),
    )

    incident = report["incident"]
    assert incident["states"] == {"completed": 25}
    assert {p: r["targets"] for p, r in incident["providers"].items()} == {
        "adobe": 5,
        "appflow": 5,
        "uipath": 5,
        "commercelayer": 5,
        "ciphertrust": 5,
    }
    assert incident["within_limits"] is True
    assert {w["endpoint"] for w in incident["limited_windows"]} >= {
        "read api_credentials",
        "write api_credentials",
    }
    assert incident["commercelayer"]["measured_s"] > 0


def test_audit_benchmark_runs_with_few_events_and_the_default_targets(redis_url: str) -> None:
    # 300 events are 50 rotations: most of the default 1000 targets get none, so the target the
    # queries time must be one the run wrote to (it used to be target 500: IndexError).
    result = subprocess.run(
        [sys.executable, "-m", "tools.bench_audit", "--redis-url", redis_url, "--events", "300"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "events written" in result.stdout and "verify whole chain (ok=True" in result.stdout


def test_audit_benchmark_measures_a_kept_log_again(redis_url: str) -> None:
    first = subprocess.run(
        [sys.executable, "-m", "tools.bench_audit", "--redis-url", redis_url]
        + ["--events", "120", "--only", "verify,export", "--keep"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    prefix = first.stdout.split("key prefix ", 1)[1].split()[0]
    again = subprocess.run(
        [sys.executable, "-m", "tools.bench_audit", "--redis-url", redis_url]
        + ["--reuse-prefix", prefix, "--only", "verify,export", "--repeat", "2"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    import redis

    from tools.common import delete_prefix

    delete_prefix(redis.Redis.from_url(redis_url), prefix)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "verify whole chain (ok=True, 120 events)" in again.stdout
    assert "median" in again.stdout and "events written" not in again.stdout


def test_config_benchmark_runs_every_step(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.bench_config", "--targets", "50", "--repeat", "1"]
        + ["--steps", "load,check,snapshot,edit,check-cached", "--redis-url", redis_url],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for step in (
        "load",
        "check",
        "snapshot: cold",
        "snapshot: warm",
        "edit: first load after editing one target",
        "check-cached: unchanged file",
        "check-cached: after editing one target",
    ):
        assert f"  {step}" in result.stdout
    # The snapshots of the three files (the first, two edits) and their blocks, all cleaned up
    assert re.search(r"cleanup: deleted \d+ keys", result.stdout)
