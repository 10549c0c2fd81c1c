"""The report fits the data it has: charts over the actual time range, failing targets linked to
their failing jobs with the error class, "failing now" counting only targets whose last job
failed. ``test_report_in_a_real_browser`` renders the page in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from rotator.audit import AuditEvent
from rotator.config import Settings, TargetsConfig, load_targets
from rotator.providers import provider_names
from rotator.report import HOUR, build_report, render_html

from .conftest import FakeEnv

DAY = 86400.0

TARGETS_YAML = """
secrets:
  s1: {source: generate}
targets:
  recovered: {provider: adobe, base_url: "https://a.example", resource_id: r1, secret: s1, schedule: 30d}
  broken:    {provider: adobe, base_url: "https://a.example", resource_id: r2, secret: s1, schedule: 30d}
  healthy:   {provider: adobe, base_url: "https://a.example", resource_id: r3, secret: s1, schedule: 30d}
"""


def config(tmp_path: Path) -> TargetsConfig:
    path = tmp_path / "rotator.yaml"
    path.write_text(TARGETS_YAML)
    return load_targets(path, provider_names(), Settings(allowed_hosts="adobe=a.example"))


def seed_fresh_install(env: FakeEnv, now: float) -> None:
    """Three hours of history: one target failed then recovered, one is failing now."""
    states = {
        "recovered": {"current": "v2", "rotated_at": now - 1 * HOUR, "last_outcome": "completed"},
        "broken": {"current": "v1", "rotated_at": now - 3 * HOUR, "last_outcome": "failed"},
        "healthy": {"current": "v1", "rotated_at": now - 3 * HOUR, "last_outcome": "completed"},
    }
    for name, fields in states.items():
        env.sync.hset(env.keys.target(name), mapping=fields)  # type: ignore[arg-type]
    jobs = [
        ("job.completed", "j-h1", "healthy", "success", "", 3 * HOUR),
        ("job.completed", "j-b1", "broken", "success", "", 3 * HOUR),
        ("job.failed", "j-r1", "recovered", "failed", "RemoteAuthError", 2 * HOUR),
        ("job.completed", "j-r2", "recovered", "success", "", 1 * HOUR),
        ("job.dead", "j-b2", "broken", "dead", "RemoteServerError", 0.5 * HOUR),
    ]
    env.emit(
        [
            AuditEvent(
                event,
                job_id=job,
                target=target,
                outcome=outcome,
                error_class=error or None,
                time=now - ago,
            )
            for event, job, target, outcome, error, ago in jobs
        ]
    )


def test_charts_cover_the_data_not_an_empty_90_day_axis(env: FakeEnv, tmp_path: Path) -> None:
    now = time.time()
    seed_fresh_install(env, now)
    report = build_report(env.sync, env.keys, config(tmp_path), since=now - 90 * DAY, now=now)
    # Three hours of data are drawn hour by hour, not as 90 mostly empty days
    assert report.bucket_seconds == HOUR
    assert 3 <= len(report.buckets) <= 5
    assert report.chart_since >= now - 4 * HOUR
    assert sum(sum(b.outcomes.values()) for b in report.buckets) == 5
    page = render_html(report)
    assert "one bar per\nhour" in page and "Rotation outcomes per hour" in page


def test_failing_now_counts_only_targets_whose_last_job_failed(
    env: FakeEnv, tmp_path: Path
) -> None:
    now = time.time()
    seed_fresh_install(env, now)
    report = build_report(env.sync, env.keys, config(tmp_path), since=now - 90 * DAY, now=now)
    assert report.summary["with_failures"] == 1  # "broken"; "recovered" succeeded since
    assert report.summary["with_failures_in_window"] == 2
    rows = {t.name: t for t in report.targets}
    assert rows["broken"].failing_now and not rows["recovered"].failing_now
    assert [j["job_id"] for j in rows["broken"].failing_jobs] == ["j-b2"]
    assert rows["broken"].failing_jobs[0]["error_class"] == "RemoteServerError"


def test_failing_targets_link_to_their_failing_jobs(env: FakeEnv, tmp_path: Path) -> None:
    now = time.time()
    seed_fresh_install(env, now)
    page = render_html(
        build_report(env.sync, env.keys, config(tmp_path), since=now - 90 * DAY, now=now)
    )
    assert '<a href="#fail-broken">1</a> <span class="bad">failing now</span>' in page
    assert '<a href="#fail-recovered">1</a></td>' in page
    assert '<tr id="fail-broken"><td>broken</td><td><code>j-b2</code>' in page
    assert "RemoteServerError" in page and "RemoteAuthError" in page
    assert "Failing now (last outcome)" in page


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_in_a_real_browser(env: FakeEnv, tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium); CI does not skip")
    now = time.time()
    seed_fresh_install(env, now)
    page = tmp_path / "report.html"
    page.write_text(
        render_html(
            build_report(env.sync, env.keys, config(tmp_path), since=now - 90 * DAY, now=now)
        )
    )
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    common += [f"--user-data-dir={tmp_path / 'profile'}", "--no-first-run"]
    # What the browser made of the page: the parsed DOM, links and anchors intact
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert 'href="#fail-broken"' in dom and 'id="fail-broken"' in dom
    assert dom.count("<svg") == 3 and "Rotation outcomes per hour" in dom
    # And what a reader sees: full page and the failing-jobs section, kept with the test output
    for name, url in (("report", page.as_uri()), ("failing", page.as_uri() + "#failing-jobs")):
        shot = tmp_path / f"{name}.png"
        subprocess.run(
            [*common, "--window-size=1280,2200", f"--screenshot={shot}", url],
            capture_output=True,
            timeout=120,
            check=True,
        )
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 20_000, name
