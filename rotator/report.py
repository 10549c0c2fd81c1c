"""Rotation report: per-target credential age, last/next rotation, failures, overdue flags.

Inputs, all read directly (nothing here writes):

* the targets file (which targets exist, their provider and schedule);
* ``{p}target:{name}`` hashes (``current``, ``previous``, ``rotated_at``, ``last_outcome``,
  ``last_job``) and the ``{p}schedule`` sorted set (next due time) kept by the store;
* the audit log within the window (``--since``), read once, oldest first: rotation outcomes
  per day and per target, and rotation times for the credential-age history.

A missing field is "unknown", never guessed. A target is overdue when its next due time is
more than ``grace`` in the past, or when it has a schedule and has never rotated, or when its
last rotation is older than its schedule allows (interval or cron, plus jitter, plus grace).

``render_html`` produces one self-contained page (inline CSS and SVG, no scripts) that an
auditor can read without the CLI.
"""

from __future__ import annotations

import bisect
import html
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from string import Template
from typing import Any

import redis

from rotator.audit import AuditEvent, AuditFilter, AuditReader
from rotator.config import TargetsConfig, TargetSpecModel
from rotator.store.keys import Keys

OUTCOMES = ("success", "noop", "retry", "conflict", "failed", "dead")
# Terminal (or retry) job events and the outcome each stands for when it carries none.
OUTCOME_EVENTS = {
    "job.completed": "success",
    "job.noop": "noop",
    "job.retry_scheduled": "retry",
    "job.conflict": "conflict",
    "job.failed": "failed",
    "job.dead": "dead",
}
FAILURE_OUTCOMES = frozenset({"conflict", "failed", "dead"})
COLOURS = {
    "success": "#2e7d32",
    "noop": "#90a4ae",
    "retry": "#f9a825",
    "conflict": "#ef6c00",
    "failed": "#c62828",
    "dead": "#6a1b1a",
}


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
    targets: list[TargetReport]
    buckets: list[Bucket]
    summary: dict[str, Any]
    audit_events_scanned: int
    targets_file: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _float(value: Any) -> float | None:
    text = _text(value)
    if text is None or text == "":
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


def _overdue(
    spec: TargetSpecModel,
    rotated_at: float | None,
    next_due: float | None,
    now: float,
    grace: float,
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
    names = sorted(config.targets)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.target(name))
        pipe.zscore(keys.schedule, name)
    replies = pipe.execute()

    targets: dict[str, TargetReport] = {}
    for index, name in enumerate(names):
        spec = config.targets[name]
        raw = {_text(k): v for k, v in (replies[2 * index] or {}).items()}
        rotated_at = _float(raw.get("rotated_at"))
        next_due = _float(replies[2 * index + 1])
        reason = _overdue(spec, rotated_at, next_due, now, grace)
        targets[name] = TargetReport(
            name=name,
            provider=spec.provider,
            enabled=spec.enabled,
            schedule=spec.schedule,
            interval_seconds=_interval(spec, now),
            current=_text(raw.get("current")) or None,
            previous=_text(raw.get("previous")) or None,
            rotated_at=rotated_at,
            age_seconds=None if rotated_at is None else max(0.0, now - rotated_at),
            last_outcome=_text(raw.get("last_outcome")) or None,
            last_job=_text(raw.get("last_job")) or None,
            next_due=next_due,
            overdue=reason is not None,
            overdue_reason=reason,
        )

    span = max(now - since, 1.0)
    bucket_seconds = 86400.0 if span <= 120 * 86400 else 7 * 86400.0
    first_bucket = since - (since % bucket_seconds)
    count = int((now - first_bucket) // bucket_seconds) + 1
    outcome_buckets: list[Counter[str]] = [Counter() for _ in range(count)]
    rotations: dict[str, list[float]] = {name: [] for name in names}
    totals: Counter[str] = Counter()
    scanned = 0
    reader = AuditReader(client, keys)
    for record in reader.iter_events(AuditFilter(since=since, until=now)):
        scanned += 1
        event = record.event
        target = targets.get(event.target or "")
        if event.event in OUTCOME_EVENTS:
            outcome = event.outcome or OUTCOME_EVENTS[event.event]
            if outcome == "completed":
                outcome = "success"
            position = int((event.time - first_bucket) // bucket_seconds)
            if 0 <= position < count:
                outcome_buckets[position][outcome] += 1
            totals[outcome] += 1
            if target is not None:
                target.outcomes[outcome] = target.outcomes.get(outcome, 0) + 1
                if outcome in FAILURE_OUTCOMES:
                    target.failures += 1
                elif outcome == "retry":
                    target.retries += 1
                elif outcome == "success":
                    target.rotations += 1
        if target is not None and _is_rotation(event):
            rotations[target.name].append(event.time)

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

    buckets = []
    for position in range(count):
        start = first_bucket + position * bucket_seconds
        end = min(start + bucket_seconds, now)
        ages = []
        for times in history.values():
            last = bisect.bisect_right(times, end)
            if last:
                ages.append(end - times[last - 1])
        buckets.append(
            Bucket(
                start=start,
                label=datetime.fromtimestamp(start, tz=UTC).strftime("%Y-%m-%d"),
                outcomes={k: v for k, v in outcome_buckets[position].items() if v},
                median_age_seconds=statistics.median(ages) if ages else None,
                max_age_seconds=max(ages) if ages else None,
                targets_with_known_age=len(ages),
            )
        )

    rows = list(targets.values())
    known_ages = [t.age_seconds for t in rows if t.age_seconds is not None]
    summary: dict[str, Any] = {
        "targets": len(rows),
        "enabled": sum(1 for t in rows if t.enabled),
        "scheduled": sum(1 for t in rows if t.schedule),
        "rotated": sum(1 for t in rows if t.rotated_at is not None),
        "never_rotated": sum(1 for t in rows if t.rotated_at is None),
        "overdue": sum(1 for t in rows if t.overdue),
        "with_failures": sum(1 for t in rows if t.failures),
        "outcomes": {k: totals.get(k, 0) for k in OUTCOMES}
        | {k: v for k, v in totals.items() if k not in OUTCOMES},
        "last_outcomes": dict(Counter(t.last_outcome or "unknown" for t in rows)),
        "oldest_age_seconds": max(known_ages) if known_ages else None,
        "median_age_seconds": statistics.median(known_ages) if known_ages else None,
    }
    return RotationReport(
        generated_at=now,
        since=since,
        grace_seconds=grace,
        bucket_seconds=bucket_seconds,
        targets=rows,
        buckets=buckets,
        summary=summary,
        audit_events_scanned=scanned,
        targets_file=str(config.path),
    )


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Credential rotation report, $generated</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2430;
       margin: 2rem auto; max-width: 1180px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.meta { color: #5b6575; }
.cards { display: flex; flex-wrap: wrap; gap: .75rem; margin: 1rem 0; }
.card { border: 1px solid #d5dae1; border-radius: 6px; padding: .6rem .9rem; min-width: 8.5rem; }
.card b { display: block; font-size: 1.4rem; }
.card.bad b { color: #c62828; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e7ec; padding: .3rem .45rem; text-align: left;
         vertical-align: top; }
th { background: #f3f5f8; position: sticky; top: 0; }
tr.overdue td { background: #fdecea; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #2e7d32; } .bad { color: #c62828; font-weight: 600; }
svg { max-width: 100%; height: auto; font: 11px system-ui, sans-serif; }
.note { color: #5b6575; font-size: 12px; }
@media print { th { position: static; } }
</style>
</head>
<body>
<h1>Credential rotation report</h1>
<p class="meta">Generated $generated &middot; window $since &rarr; $generated &middot;
overdue grace $grace &middot; targets file <code>$targets_file</code> &middot;
$scanned audit events read</p>
<div class="cards">$cards</div>
<h2>Rotation outcomes per $bucket_name</h2>
$outcome_chart
<h2>Credential age over time</h2>
<p class="note">Age of each target's credential at the end of each $bucket_name (time since its
last successful rotation); median and oldest across targets whose last rotation is known.</p>
$age_chart
<h2>Current credential age by target</h2>
<p class="note">Oldest first; the tick marks the target's rotation interval; red = overdue.</p>
$target_chart
<h2>Targets</h2>
<table>
<thead><tr><th>Target</th><th>Provider</th><th>Schedule</th><th>Current version</th>
<th>Last rotation</th><th>Age</th><th>Next due</th><th>Last outcome</th><th>Rotations</th>
<th>Failures</th><th>Retries</th><th>Overdue</th></tr></thead>
<tbody>
$rows
</tbody>
</table>
<p class="note">Failures count conflict, failed and dead outcomes in the window. "-" means unknown
(never recorded). Source: rotator state in Redis and the hash-chained audit log
(verify it with <code>rotator audit verify</code>).</p>
</body>
</html>
""")


def _e(value: object) -> str:
    return html.escape("-" if value is None else str(value), quote=True)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _outcome_chart(report: RotationReport) -> str:
    buckets = report.buckets
    width, height, left, bottom, top = 1100, 260, 48, 40, 16
    plot_w, plot_h = width - left - 150, height - bottom - top
    peak = max((sum(b.outcomes.values()) for b in buckets), default=0)
    y_max = _nice_max(peak)
    bar_w = plot_w / max(len(buckets), 1)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Rotation outcomes per period">'
    ]
    for tick in range(5):
        value = y_max * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e3e7ec"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>'
        )
    label_every = max(1, len(buckets) // 12)
    for index, bucket in enumerate(buckets):
        x = left + index * bar_w
        y = top + plot_h
        for outcome in [*OUTCOMES, *sorted(set(bucket.outcomes) - set(OUTCOMES))]:
            n = bucket.outcomes.get(outcome, 0)
            if not n:
                continue
            h = plot_h * n / y_max
            y -= h
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{COLOURS.get(outcome, "#607d8b")}">'
                f"<title>{_e(bucket.label)}: {n} {_e(outcome)}</title></rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" '
                f'text-anchor="middle">{_e(bucket.label[5:])}</text>'
            )
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#5b6575"/>'
    )
    for index, outcome in enumerate(OUTCOMES):
        y = top + 10 + index * 20
        total = report.summary["outcomes"].get(outcome, 0)
        parts.append(
            f'<rect x="{left + plot_w + 20}" y="{y - 9}" width="12" height="12" '
            f'fill="{COLOURS[outcome]}"/><text x="{left + plot_w + 38}" y="{y + 1}">'
            f"{outcome} ({total})</text>"
        )
    if not peak:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" '
            'fill="#5b6575">no rotations in this window</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _age_chart(report: RotationReport) -> str:
    buckets = report.buckets
    width, height, left, bottom, top = 1100, 260, 48, 40, 16
    plot_w, plot_h = width - left - 150, height - bottom - top
    days = [(b.max_age_seconds or 0) / 86400 for b in buckets if b.max_age_seconds is not None]
    intervals = [t.interval_seconds / 86400 for t in report.targets if t.interval_seconds]
    longest_interval = max(intervals) if intervals else None
    y_max = _nice_max(max([*days, longest_interval or 0, 0.0]))
    step = plot_w / max(len(buckets) - 1, 1)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Credential age over time">'
    ]
    for tick in range(5):
        value = y_max * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e3e7ec"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}d</text>'
        )
    label_every = max(1, len(buckets) // 12)
    for index, bucket in enumerate(buckets):
        if index % label_every == 0:
            parts.append(
                f'<text x="{left + index * step:.1f}" y="{top + plot_h + 16}" '
                f'text-anchor="middle">{_e(bucket.label[5:])}</text>'
            )

    def series(attr: str, colour: str, name: str) -> None:
        points = []
        for index, bucket in enumerate(buckets):
            value = getattr(bucket, attr)
            if value is None:
                continue
            x = left + index * step
            y = top + plot_h - plot_h * (value / 86400) / y_max
            points.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"><title>'
                f"{_e(bucket.label)}: {name} {human_duration(value)}</title></circle>"
            )
        if points:
            parts.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" '
                'stroke-width="2"/>'
            )

    series("max_age_seconds", "#c62828", "oldest")
    series("median_age_seconds", "#1565c0", "median")
    if longest_interval:
        y = top + plot_h - plot_h * longest_interval / y_max
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            'stroke="#5b6575" stroke-dasharray="5 4"/>'
        )
    legend = [("#c62828", "oldest credential"), ("#1565c0", "median credential")]
    if longest_interval:
        legend.append(("#5b6575", f"longest interval ({longest_interval:g}d)"))
    for index, (colour, name) in enumerate(legend):
        y = top + 10 + index * 20
        parts.append(
            f'<rect x="{left + plot_w + 20}" y="{y - 9}" width="12" height="12" '
            f'fill="{colour}"/><text x="{left + plot_w + 38}" y="{y + 1}">{_e(name)}</text>'
        )
    if not days:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" '
            'fill="#5b6575">no rotation history known in this window</text>'
        )
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#5b6575"/></svg>'
    )
    return "".join(parts)


def _target_chart(report: RotationReport, limit: int = 40) -> str:
    rows = sorted(
        (t for t in report.targets if t.age_seconds is not None),
        key=lambda t: t.age_seconds or 0.0,
        reverse=True,
    )
    shown = rows[:limit]
    if not shown:
        return '<p class="note">No target has a known last rotation.</p>'
    row_h, left, right = 20, 220, 120
    width = 1100
    plot_w = width - left - right
    height = row_h * len(shown) + 30
    peak_days = max(
        [(t.age_seconds or 0) / 86400 for t in shown]
        + [(t.interval_seconds or 0) / 86400 for t in shown]
    )
    x_max = _nice_max(peak_days)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Credential age by target">'
    ]
    for index, target in enumerate(shown):
        y = 10 + index * row_h
        days = (target.age_seconds or 0) / 86400
        w = plot_w * days / x_max
        colour = "#c62828" if target.overdue else "#2e7d32"
        parts.append(
            f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{_e(target.name)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row_h - 6}" '
            f'fill="{colour}"><title>{_e(target.name)}: {human_duration(target.age_seconds)}'
            f"{' (overdue)' if target.overdue else ''}</title></rect>"
            f'<text x="{left + max(w, 1) + 6:.1f}" y="{y + 13}">'
            f"{human_duration(target.age_seconds)}</text>"
        )
        if target.interval_seconds:
            x = left + plot_w * (target.interval_seconds / 86400) / x_max
            parts.append(
                f'<line x1="{x:.1f}" y1="{y + 1}" x2="{x:.1f}" y2="{y + row_h - 1}" '
                'stroke="#1d2430" stroke-width="2"/>'
            )
    axis_y = 10 + len(shown) * row_h + 14
    for tick in range(5):
        x = left + plot_w * tick / 4
        parts.append(
            f'<text x="{x:.1f}" y="{axis_y}" text-anchor="middle">{x_max * tick / 4:g}d</text>'
        )
    parts.append("</svg>")
    if len(rows) > limit:
        parts.append(f'<p class="note">{len(rows) - limit} more targets in the table below.</p>')
    return "".join(parts)


def render_html(report: RotationReport) -> str:
    summary = report.summary
    cards = [
        ("Targets", summary["targets"], False),
        ("Overdue", summary["overdue"], summary["overdue"] > 0),
        ("Never rotated", summary["never_rotated"], False),
        ("With failures", summary["with_failures"], summary["with_failures"] > 0),
        ("Rotations (window)", summary["outcomes"].get("success", 0), False),
        (
            "Failed / dead / conflict",
            sum(summary["outcomes"].get(k, 0) for k in FAILURE_OUTCOMES),
            any(summary["outcomes"].get(k, 0) for k in FAILURE_OUTCOMES),
        ),
        ("Oldest credential", human_duration(summary["oldest_age_seconds"]), False),
        ("Median age", human_duration(summary["median_age_seconds"]), False),
    ]
    card_html = "".join(
        f'<div class="card{" bad" if bad else ""}">{_e(label)}<b>{_e(value)}</b></div>'
        for label, value, bad in cards
    )
    rows = []
    for t in sorted(report.targets, key=lambda t: (not t.overdue, t.name)):
        overdue = (
            f'<span class="bad" title="{_e(t.overdue_reason)}">overdue</span>'
            f"<br><small>{_e(t.overdue_reason)}</small>"
            if t.overdue
            else '<span class="ok">no</span>'
        )
        rows.append(
            f'<tr class="{"overdue" if t.overdue else ""}"><td>{_e(t.name)}'
            f"{'' if t.enabled else ' <small>(disabled)</small>'}</td>"
            f"<td>{_e(t.provider)}</td><td>{_e(t.schedule)}</td><td>{_e(t.current)}</td>"
            f"<td>{_e(iso(t.rotated_at))}</td><td>{_e(human_duration(t.age_seconds))}</td>"
            f"<td>{_e(iso(t.next_due))}</td><td>{_e(t.last_outcome)}</td>"
            f'<td class="num">{t.rotations}</td><td class="num">{t.failures}</td>'
            f'<td class="num">{t.retries}</td><td>{overdue}</td></tr>'
        )
    return _PAGE.substitute(
        generated=_e(iso(report.generated_at)),
        since=_e(iso(report.since)),
        grace=_e(human_duration(report.grace_seconds)),
        targets_file=_e(report.targets_file),
        scanned=report.audit_events_scanned,
        cards=card_html,
        bucket_name="week" if report.bucket_seconds > 86400 else "day",
        outcome_chart=_outcome_chart(report),
        age_chart=_age_chart(report),
        target_chart=_target_chart(report),
        rows="\n".join(rows),
    )
