"""The rotation report: per-target state, overdue rules, outcome history, HTML rendering."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from rotator.audit import AuditEvent
from rotator.config import Settings, TargetsConfig, load_targets
from rotator.providers import provider_names
from rotator.report import build_report, human_duration, render_html

from .conftest import FakeEnv

DAY = 86400.0

TARGETS_YAML = """
secrets:
  s1: {source: generate}
targets:
  fresh:    {provider: adobe, base_url: "https://a.example", resource_id: r1, secret: s1, schedule: 30d}
  stale:    {provider: uipath, base_url: "https://u.example", resource_id: r2, secret: s1, schedule: 7d}
  never:    {provider: adobe, base_url: "https://a.example", resource_id: r3, secret: s1, schedule: 30d}
  late-due: {provider: adobe, base_url: "https://a.example", resource_id: r4, secret: s1, schedule: 30d}
  manual:   {provider: appflow, base_url: "https://f.example", resource_id: r5, secret: s1}
  paused:   {provider: adobe, base_url: "https://a.example", resource_id: r6, secret: s1, schedule: 1d, enabled: false}
  nightly:  {provider: adobe, base_url: "https://a.example", resource_id: r7, secret: s1, schedule: "0 3 * * *"}
"""


def targets_file(tmp_path: Path) -> TargetsConfig:
    path = tmp_path / "rotator.yaml"
    path.write_text(TARGETS_YAML)
    # The example hosts stand in for the providers' real ones: the operator allows them.
    hosts = "adobe=a.example,uipath=u.example,appflow=f.example"
    return load_targets(path, provider_names(), Settings(allowed_hosts=hosts))


def seed(env: FakeEnv, now: float) -> None:
    state = {
        "fresh": {
            "current": "v3",
            "previous": "v2",
            "rotated_at": now - 2 * DAY,
            "last_outcome": "completed",
            "last_job": "jf",
        },
        "stale": {"current": "v1", "rotated_at": now - 10 * DAY, "last_outcome": "failed"},
        "late-due": {"current": "v9", "rotated_at": now - 1 * DAY},
        "paused": {"current": "<script>alert(1)</script>", "rotated_at": now - 50 * DAY},
        "nightly": {"current": "v5", "rotated_at": now - 3 * DAY},
        "manual": {"current": "v1", "rotated_at": "not-a-number"},
    }
    for name, fields in state.items():
        env.sync.hset(env.keys.target(name), mapping=fields)  # type: ignore[arg-type]
    env.sync.zadd(env.keys.schedule, {"fresh": now + 28 * DAY, "late-due": now - 3 * 3600})
    events = [
        AuditEvent(
            "job.completed", job_id="a", target="fresh", outcome="success", time=now - 32 * DAY
        ),
        AuditEvent(
            "job.completed", job_id="jf", target="fresh", outcome="success", time=now - 2 * DAY
        ),
        AuditEvent(
            "job.retry_scheduled", job_id="js", target="stale", outcome="retry", time=now - 3 * DAY
        ),
        AuditEvent(
            "job.failed", job_id="js", target="stale", outcome="failed", time=now - 3 * DAY + 60
        ),
        AuditEvent("job.dead", job_id="js2", target="stale", outcome="dead", time=now - 1 * DAY),
        AuditEvent(
            "job.completed", job_id="old", target="stale", outcome="success", time=now - 200 * DAY
        ),
    ]
    env.emit(events)


@pytest.fixture
def report_env(env: FakeEnv, tmp_path: Path):  # type: ignore[no-untyped-def]
    now = time.time()
    seed(env, now)
    return env, targets_file(tmp_path), now


def test_per_target_rows_and_overdue_rules(report_env) -> None:  # type: ignore[no-untyped-def]
    env, config, now = report_env
    report = build_report(env.sync, env.keys, config, since=now - 90 * DAY, now=now, grace=3600)
    rows = {t.name: t for t in report.targets}
    assert set(rows) == set(config.targets)
    assert not rows["fresh"].overdue
    assert rows["fresh"].age_seconds == pytest.approx(2 * DAY)
    assert rows["fresh"].next_due == pytest.approx(now + 28 * DAY)
    assert rows["fresh"].rotations == 2 and rows["fresh"].current == "v3"
    assert rows["stale"].overdue and "older than the schedule" in (
        rows["stale"].overdue_reason or ""
    )
    assert rows["stale"].failures == 2 and rows["stale"].retries == 1
    assert rows["stale"].rotations == 0  # the success 200 days ago is outside the window
    assert rows["never"].overdue and rows["never"].overdue_reason == "scheduled but never rotated"
    assert rows["never"].rotated_at is None and rows["never"].age_seconds is None
    assert rows["never"].current is None and rows["never"].last_outcome is None
    assert rows["late-due"].overdue and "due" in (rows["late-due"].overdue_reason or "")
    assert not rows["manual"].overdue  # no schedule: never overdue
    assert rows["manual"].rotated_at is None  # unparseable -> unknown
    assert not rows["paused"].overdue  # disabled
    assert rows["nightly"].overdue  # daily cron, last ran 3 days ago
    assert rows["nightly"].interval_seconds == pytest.approx(DAY)
    summary = report.summary
    assert summary["targets"] == 7 and summary["overdue"] == 4
    assert summary["never_rotated"] == 2 and summary["with_failures"] == 1  # "stale" fails now
    assert summary["with_failures_in_window"] == 1
    assert summary["outcomes"]["success"] == 2 and summary["outcomes"]["dead"] == 1
    assert summary["outcomes"]["failed"] == 1 and summary["outcomes"]["retry"] == 1


def test_history_buckets(report_env) -> None:  # type: ignore[no-untyped-def]
    env, config, now = report_env
    report = build_report(env.sync, env.keys, config, since=now - 90 * DAY, now=now)
    # The charts start at the first activity in the window ("paused" rotated 50 days ago),
    # not at the 90-day mark with 40 empty days before it.
    assert report.chart_since == pytest.approx(now - 50 * DAY, abs=DAY)
    assert report.bucket_seconds == DAY and 50 <= len(report.buckets) <= 52
    totals: dict[str, int] = {}
    for bucket in report.buckets:
        for outcome, n in bucket.outcomes.items():
            totals[outcome] = totals.get(outcome, 0) + n
    assert totals == {"success": 2, "retry": 1, "failed": 1, "dead": 1}
    last = report.buckets[-1]
    assert last.max_age_seconds == pytest.approx(50 * DAY, abs=DAY)  # "paused": 50 days
    assert last.targets_with_known_age == 5
    # before fresh's first success (32 days ago) only the targets rotated earlier are known
    # "stale" last succeeded 200 days ago, before the window: found through its index
    early = report.buckets[0]
    assert early.targets_with_known_age == 2  # "stale", and "paused" rotated that day
    assert early.max_age_seconds == pytest.approx(151 * DAY, abs=1.5 * DAY)
    json.dumps(report.to_dict())  # serialisable


def test_long_windows_use_weekly_buckets(report_env) -> None:  # type: ignore[no-untyped-def]
    env, config, now = report_env
    report = build_report(env.sync, env.keys, config, since=now - 365 * DAY, now=now)
    assert report.bucket_seconds == 7 * DAY
    assert report.summary["outcomes"]["success"] == 3


def test_html_is_self_contained_and_escaped(report_env) -> None:  # type: ignore[no-untyped-def]
    env, config, now = report_env
    page = render_html(build_report(env.sync, env.keys, config, since=now - 90 * DAY, now=now))
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 3
    assert "<script" not in page and "&lt;script&gt;" in page
    assert not re.search(r"(src|href)=\"https?://", page)
    for name in ("fresh", "stale", "never", "late-due", "nightly"):
        assert f"<td>{name}" in page
    assert "scheduled but never rotated" in page


def test_empty_state_renders(env: FakeEnv, tmp_path: Path) -> None:
    config = targets_file(tmp_path)
    now = time.time()
    report = build_report(env.sync, env.keys, config, since=now - 90 * DAY, now=now)
    assert report.summary["never_rotated"] == 7
    assert report.summary["oldest_age_seconds"] is None
    page = render_html(report)
    assert "no rotations in this window" in page


def test_human_duration() -> None:
    assert human_duration(None) == "-"
    assert human_duration(5) == "5s"
    assert human_duration(3 * 3600 + 120) == "3h 2m"
    assert human_duration(2 * DAY + 3600) == "2d 1h"


def test_a_target_whose_last_job_failed_is_overdue_until_it_succeeds(
    env: FakeEnv, tmp_path: Path
) -> None:
    # Issue 14: a dead-lettered job must not leave its target looking fine for a month.
    now = time.time()
    env.sync.hset(
        env.keys.target("fresh"),
        mapping={"current": "v3", "rotated_at": now - DAY, "last_outcome": "dead"},
    )
    env.sync.zadd(env.keys.schedule, {"fresh": now + 3600})
    config = targets_file(tmp_path)
    row = {t.name: t for t in build_report(env.sync, env.keys, config, since=now - DAY).targets}
    assert row["fresh"].overdue
    assert "ended dead" in (row["fresh"].overdue_reason or "")
    env.sync.hset(env.keys.target("fresh"), "last_outcome", "completed")
    row = {t.name: t for t in build_report(env.sync, env.keys, config, since=now - DAY).targets}
    assert not row["fresh"].overdue
