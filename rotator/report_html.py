"""The rotation report as one self-contained HTML page: inline CSS and SVG charts, no scripts,
so an auditor can read it without the CLI. Every value is escaped; see ``rotator.report`` for
what the numbers mean.
"""

from __future__ import annotations

import html
from string import Template

from rotator.report import (
    FAILURE_OUTCOMES,
    OUTCOMES,
    RotationReport,
    TargetReport,
    human_duration,
    iso,
)

COLOURS = {
    "success": "#2e7d32",
    "noop": "#90a4ae",
    "retry": "#f9a825",
    "conflict": "#ef6c00",
    "failed": "#c62828",
    "dead": "#6a1b1a",
}

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
<p class="note">Charts start at the window's first activity ($chart_since), one bar per
$bucket_name.</p>
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
<p class="note">Failures count conflict, failed, dead and unverified outcomes in the window; a
target is <em>failing now</em> when its last job ended in one of them. "-" means unknown
(never recorded).</p>
<h2 id="failing-jobs">Failing jobs</h2>
$failing
<p class="note"> Source: rotator state in Redis and the hash-chained audit log
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


def _chart_frame(label: str, y_max: float, unit: str) -> list[str]:
    """The opening of a time chart: its svg element and five labelled horizontal grid lines."""
    width, height, left, bottom, top = 1100, 260, 48, 40, 16
    plot_w, plot_h = width - left - 150, height - bottom - top
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{label}">']
    for tick in range(5):
        value = y_max * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e3e7ec"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}{unit}</text>'
        )
    return parts


def _outcome_chart(report: RotationReport) -> str:
    buckets = report.buckets
    width, height, left, bottom, top = 1100, 260, 48, 40, 16
    plot_w, plot_h = width - left - 150, height - bottom - top
    peak = max((sum(b.outcomes.values()) for b in buckets), default=0)
    y_max = _nice_max(peak)
    bar_w = plot_w / max(len(buckets), 1)
    parts = _chart_frame("Rotation outcomes per period", y_max, "")
    label_every = max(1, len(buckets) // 12)
    for index, bucket in enumerate(buckets):
        x = left + index * bar_w
        y: float = top + plot_h
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
    parts = _chart_frame("Credential age over time", y_max, "d")
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


def _bucket_name(seconds: float) -> str:
    return "week" if seconds > 86400 else "day" if seconds == 86400 else "hour"


def _failures_cell(target: TargetReport) -> str:
    """The count, linked to the target's failing jobs when there are any."""
    if not target.failures:
        return "0"
    mark = ' <span class="bad">failing now</span>' if target.failing_now else ""
    return f'<a href="#fail-{_e(target.name)}">{target.failures}</a>{mark}'


def _failing_jobs(report: RotationReport) -> str:
    """Each failing target's latest failing jobs with their error class, and how to look."""
    rows = []
    for t in sorted(report.targets, key=lambda t: (not t.failing_now, t.name)):
        for index, job in enumerate(t.failing_jobs):
            anchor = f' id="fail-{_e(t.name)}"' if index == 0 else ""
            rows.append(
                f"<tr{anchor}><td>{_e(t.name)}</td><td><code>{_e(job['job_id'])}</code></td>"
                f"<td>{_e(iso(job['time']))}</td><td>{_e(job['outcome'])}</td>"
                f"<td>{_e(job['error_class'])}</td>"
                f"<td><code>rotator job {_e(job['job_id'])}</code></td></tr>"
            )
    if not rows:
        return '<p class="note">No failing job in this window.</p>'
    return (
        "<table><thead><tr><th>Target</th><th>Job</th><th>Ended</th><th>Outcome</th>"
        "<th>Error class</th><th>Details</th></tr></thead><tbody>"
        + "\n".join(rows)
        + "</tbody></table>"
    )


def render_html(report: RotationReport) -> str:
    summary = report.summary
    cards = [
        ("Targets", summary["targets"], False),
        ("Overdue", summary["overdue"], summary["overdue"] > 0),
        ("Never rotated", summary["never_rotated"], False),
        ("Failing now (last outcome)", summary["with_failures"], summary["with_failures"] > 0),
        ("With failures (window)", summary["with_failures_in_window"], False),
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
            f'<td class="num">{t.rotations}</td><td class="num">{_failures_cell(t)}</td>'
            f'<td class="num">{t.retries}</td><td>{overdue}</td></tr>'
        )
    return _PAGE.substitute(
        generated=_e(iso(report.generated_at)),
        since=_e(iso(report.since)),
        grace=_e(human_duration(report.grace_seconds)),
        targets_file=_e(report.targets_file),
        scanned=report.audit_events_scanned,
        cards=card_html,
        bucket_name=_bucket_name(report.bucket_seconds),
        chart_since=_e(iso(report.chart_since)),
        failing=_failing_jobs(report),
        outcome_chart=_outcome_chart(report),
        age_chart=_age_chart(report),
        target_chart=_target_chart(report),
        rows="\n".join(rows),
    )
