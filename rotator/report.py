"""Rotation report: per-target credential age, last/next rotation, failures, overdue flags.

Inputs, all read through the store's and the audit log's read APIs (nothing here writes):

* the targets file (which targets exist, their provider and schedule);
* each target's stage pointers (``current``, ``previous``, ``rotated_at``, ``last_outcome``,
  ``last_job``) and next due time, from ``StoreReader.target_states_with_schedule``;
* the audit log within the window (``--since``), read once, oldest first: rotation outcomes
  per day and per target, and rotation times for the credential-age history.

A missing field is "unknown", never guessed. A target is overdue when its next due time is
more than ``grace`` in the past, or when it has a schedule and has never rotated, or when its
last job ended failed, dead or unverified (until a rotation succeeds), or when its last
rotation is older than its schedule allows (interval or cron, plus jitter, plus grace).

``render_html`` (in ``rotator.report_html``, importable from here too) produces one
self-contained page (inline CSS and SVG, no scripts) that an auditor can read without the CLI.
"""

from __future__ import annotations

import bisect
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis

from rotator.audit import AuditEvent, AuditFilter, AuditReader
from rotator.config import TargetsConfig, TargetSpecModel
from rotator.store.keys import Keys
from rotator.store.views import StoreReader

if TYPE_CHECKING:
    from rotator.report_html import render_html as render_html

OUTCOMES = ("success", "noop", "retry", "conflict", "failed", "dead")
# Terminal (or retry) job events and the outcome each stands for when it carries none.
OUTCOME_EVENTS = {
    "job.completed": "success",
    "job.noop": "noop",
    "job.retry_scheduled": "retry",
    "job.verify_scheduled": "retry",
    "job.conflict": "conflict",
    "job.failed": "failed",
    "job.dead": "dead",
    "job.unverified": "unverified",
}
# Alert-worthy; `unverified` is not a failure of the update (it may be live) but needs a look.
FAILURE_OUTCOMES = frozenset({"conflict", "failed", "dead", "unverified"})
MAX_FAILING_JOBS = 5
HOUR, DAY, WEEK = 3600.0, 86400.0, 7 * 86400.0


@dataclass
class TargetReport:
    name: str
    provider: str
    enabled: bool
    schedule: str | None
    interval_seconds: float | None
    current: str | None
    previous: str | None
    rotated_at: float | None
    age_seconds: float | None
    last_outcome: str | None
    last_job: str | None
    next_due: float | None
    overdue: bool
    overdue_reason: str | None
    rotations: int = 0
    failures: int = 0
    retries: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    # The window's failing jobs, newest first (at most MAX_FAILING_JOBS): what to open first.
    failing_jobs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failing_now(self) -> bool:
        """Whether the target's last job ended in a failure (a later success clears it)."""
        return (self.last_outcome or "") in FAILURE_OUTCOMES


@dataclass
class Bucket:
    start: float
    label: str
    outcomes: dict[str, int]
    median_age_seconds: float | None
    max_age_seconds: float | None
    targets_with_known_age: int


@dataclass
class RotationReport:
    generated_at: float
    since: float
    grace_seconds: float
    bucket_seconds: float
    # Where the charts start: the first activity in the window, not an empty --since axis.
    chart_since: float
    targets: list[TargetReport]
    buckets: list[Bucket]
    summary: dict[str, Any]
    audit_events_scanned: int
    targets_file: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _float(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _interval(spec: TargetSpecModel, now: float) -> float | None:
    schedule = spec.parsed_schedule
    if schedule is None:
        return None
    if schedule.every is not None:
        return schedule.every
    first = schedule.next_after(now, 0.0)
    return schedule.next_after(first, 0.0) - first


def overdue_reason(
    spec: TargetSpecModel,
    rotated_at: float | None,
    next_due: float | None,
    now: float,
    grace: float,
    last_outcome: str | None = None,
) -> str | None:
    if not spec.enabled:
        return None
    if next_due is not None and next_due < now - grace:
        return f"next rotation was due {iso(next_due)}"
    schedule = spec.parsed_schedule
    if schedule is None:
        return None
    if rotated_at is None:
        return "scheduled but never rotated"
    deadline = schedule.next_after(rotated_at, 1.0)
    if deadline + grace < now:
        return f"last rotation {iso(rotated_at)} is older than the schedule ({spec.schedule})"
    if last_outcome in FAILURE_OUTCOMES and last_outcome != "conflict":
        # Overdue until a rotation succeeds; the failure retry interval brings it back soon.
        return f"last rotation job ended {last_outcome}; retried by {iso(next_due)}"
    return None


def iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    value = int(abs(seconds))
    days, rest = divmod(value, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes}m"
    if minutes:
        return f"{sign}{minutes}m {secs}s"
    return f"{sign}{secs}s"


def _is_rotation(event: AuditEvent) -> bool:
    return event.event == "job.completed" and (event.outcome or "success") == "success"


def _last_rotation_before(
    reader: AuditReader, target: str, when: float, max_events: int = 500
) -> float | None:
    events = reader.iter_events(
        AuditFilter(target=target, until=when), newest_first=True, first_chunk=32
    )
    for scanned, record in enumerate(events):
        if _is_rotation(record.event):
            return record.event.time
        if scanned >= max_events:
            break
    return None


def build_report(
    client: redis.Redis,
    keys: Keys,
    config: TargetsConfig,
    *,
    since: float,
    now: float | None = None,
    grace: float = 3600.0,
) -> RotationReport:
    now = time.time() if now is None else now
    targets = _target_reports(StoreReader(client, keys), config, now, grace)
    reader = AuditReader(client, keys)
    scan = _scan(reader, targets, since, now)
    history = _history(reader, targets, scan.rotations, since)
    window = _Window.over(_first_activity(scan, targets, since, now), now)
    rows = list(targets.values())
    return RotationReport(
        generated_at=now,
        since=since,
        grace_seconds=grace,
        bucket_seconds=window.seconds,
        chart_since=window.first,
        targets=rows,
        buckets=_buckets(window, scan.timeline, history, now),
        summary=_summary(rows, scan.totals),
        audit_events_scanned=scan.scanned,
        targets_file=str(config.path),
    )


def _target_reports(
    store: StoreReader, config: TargetsConfig, now: float, grace: float
) -> dict[str, TargetReport]:
    names = sorted(config.targets)
    views = store.target_states_with_schedule(names)
    targets: dict[str, TargetReport] = {}
    for name in names:
        spec = config.targets[name]
        raw, next_due = views[name].state, views[name].next_due
        rotated_at = _float(raw.get("rotated_at"))
        last_outcome = raw.get("last_outcome") or None
        reason = overdue_reason(spec, rotated_at, next_due, now, grace, last_outcome)
        targets[name] = TargetReport(
            name=name,
            provider=spec.provider,
            enabled=spec.enabled,
            schedule=spec.schedule,
            interval_seconds=_interval(spec, now),
            current=raw.get("current") or None,
            previous=raw.get("previous") or None,
            rotated_at=rotated_at,
            age_seconds=None if rotated_at is None else max(0.0, now - rotated_at),
            last_outcome=last_outcome,
            last_job=raw.get("last_job") or None,
            next_due=next_due,
            overdue=reason is not None,
            overdue_reason=reason,
        )
    return targets


@dataclass(frozen=True)
class _Window:
    """The charts' time buckets: hours for up to two days of data, days up to 120, then
    weeks. ``since`` is where the data starts, so a week-old install is not drawn as 83 empty
    days and 7 full ones."""

    first: float
    seconds: float
    count: int

    @classmethod
    def over(cls, since: float, now: float) -> _Window:
        span = max(now - since, 1.0)
        seconds = HOUR if span <= 2 * DAY else DAY if span <= 120 * DAY else WEEK
        first = since - (since % seconds)
        return cls(first, seconds, int((now - first) // seconds) + 1)

    def label(self, start: float) -> str:
        fmt = "%Y-%m-%d %H:00" if self.seconds < DAY else "%Y-%m-%d"
        return datetime.fromtimestamp(start, tz=UTC).strftime(fmt)

    def position(self, when: float) -> int | None:
        position = int((when - self.first) // self.seconds)
        return position if 0 <= position < self.count else None


@dataclass
class _Scan:
    timeline: list[tuple[float, str]]  # (time, outcome) of every outcome event, oldest first
    totals: Counter[str]
    rotations: dict[str, list[float]]  # target -> rotation times in the window
    scanned: int = 0


def _scan(
    reader: AuditReader,
    targets: dict[str, TargetReport],
    since: float,
    now: float,
) -> _Scan:
    """One pass over the window's audit events, oldest first."""
    scan = _Scan([], Counter(), {n: [] for n in targets})
    for record in reader.iter_events(AuditFilter(since=since, until=now)):
        scan.scanned += 1
        event = record.event
        target = targets.get(event.target or "")
        if event.event in OUTCOME_EVENTS:
            outcome = event.outcome or OUTCOME_EVENTS[event.event]
            if outcome == "completed":
                outcome = "success"
            scan.timeline.append((event.time, outcome))
            scan.totals[outcome] += 1
            if target is not None:
                _count(target, outcome, event)
        if target is not None and _is_rotation(event):
            scan.rotations[target.name].append(event.time)
    return scan


def _first_activity(
    scan: _Scan, targets: dict[str, TargetReport], since: float, now: float
) -> float:
    """Where the charts start: the first outcome or rotation in the window (``now`` if none)."""
    times = [min((t for t, _ in scan.timeline), default=now)]  # chain order is not time order
    times += [r.rotated_at for r in targets.values() if r.rotated_at and r.rotated_at >= since]
    return max(since, min(times, default=now))


def _count(target: TargetReport, outcome: str, event: AuditEvent) -> None:
    target.outcomes[outcome] = target.outcomes.get(outcome, 0) + 1
    if outcome in FAILURE_OUTCOMES:
        target.failures += 1
        target.failing_jobs.insert(
            0,
            {
                "job_id": event.job_id,
                "outcome": outcome,
                "error_class": event.error_class,
                "time": event.time,
            },
        )
        del target.failing_jobs[MAX_FAILING_JOBS:]
    elif outcome == "retry":
        target.retries += 1
    elif outcome == "success":
        target.rotations += 1


def _history(
    reader: AuditReader,
    targets: dict[str, TargetReport],
    rotations: dict[str, list[float]],
    since: float,
) -> dict[str, list[float]]:
    """Each target's known rotation times, sorted, including the last one before the window."""
    history: dict[str, list[float]] = {}
    for name, times in rotations.items():
        known = sorted(times)
        rotated_at = targets[name].rotated_at
        if rotated_at is not None:
            bisect.insort(known, rotated_at)
        if not known or known[0] > since:
            # The age at the start of the window depends on the last rotation before it: one
            # short backwards read of the target's index.
            before = _last_rotation_before(reader, name, since)
            if before is not None:
                bisect.insort(known, before)
        history[name] = known
    return history


def _buckets(
    window: _Window,
    timeline: list[tuple[float, str]],
    history: dict[str, list[float]],
    now: float,
) -> list[Bucket]:
    outcomes: list[Counter[str]] = [Counter() for _ in range(window.count)]
    for when, outcome in timeline:
        position = window.position(when)
        if position is not None:
            outcomes[position][outcome] += 1
    buckets = []
    for position in range(window.count):
        start = window.first + position * window.seconds
        end = min(start + window.seconds, now)
        ages = []
        for times in history.values():
            last = bisect.bisect_right(times, end)
            if last:
                ages.append(end - times[last - 1])
        buckets.append(
            Bucket(
                start=start,
                label=window.label(start),
                outcomes={k: v for k, v in outcomes[position].items() if v},
                median_age_seconds=statistics.median(ages) if ages else None,
                max_age_seconds=max(ages) if ages else None,
                targets_with_known_age=len(ages),
            )
        )
    return buckets


def _summary(rows: list[TargetReport], totals: Counter[str]) -> dict[str, Any]:
    known_ages = [t.age_seconds for t in rows if t.age_seconds is not None]
    return {
        "targets": len(rows),
        "enabled": sum(1 for t in rows if t.enabled),
        "scheduled": sum(1 for t in rows if t.schedule),
        "rotated": sum(1 for t in rows if t.rotated_at is not None),
        "never_rotated": sum(1 for t in rows if t.rotated_at is None),
        "overdue": sum(1 for t in rows if t.overdue),
        # Targets whose last job failed: a failure already fixed by a later success is not
        # counted here but in with_failures_in_window.
        "with_failures": sum(1 for t in rows if t.failing_now),
        "with_failures_in_window": sum(1 for t in rows if t.failures),
        "outcomes": {k: totals.get(k, 0) for k in OUTCOMES}
        | {k: v for k, v in totals.items() if k not in OUTCOMES},
        "last_outcomes": dict(Counter(t.last_outcome or "unknown" for t in rows)),
        "oldest_age_seconds": max(known_ages) if known_ages else None,
        "median_age_seconds": statistics.median(known_ages) if known_ages else None,
    }


def __getattr__(name: str) -> Any:
    # rotator.report_html builds on this module, so it is imported here only when asked for.
    if name == "render_html":
        from rotator.report_html import render_html

        return render_html
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
