"""``rotator report``: per-target rotation health over a window, as a table, JSON or HTML.
Reads the store through the same Redis session as ``rotator audit``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rotator.cli.audit import audit_json, session
from rotator.cli.common import (
    JsonOpt,
    duration,
    fail,
    parse_time,
    plain,
    styled,
    utc_time,
    wide_console,
)
from rotator.config import load_targets


def report_command(
    since: Annotated[
        str, typer.Option("--since", metavar="WHEN", help="Window start: 90d, ISO time...")
    ] = "90d",
    grace: Annotated[
        str,
        typer.Option(
            "--grace", metavar="DURATION", help="How late a rotation may be before it is overdue."
        ),
    ] = "1h",
    html_file: Annotated[
        Path | None,
        typer.Option("--html", metavar="FILE", help="Write a self-contained HTML report here."),
    ] = None,
    incident: Annotated[
        str | None,
        typer.Option(
            "--incident", metavar="ID", help="Summarise one incident (enqueue --secret) instead."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Per-target credential age, last/next rotation, failures and overdue flags."""
    from rotator.providers import provider_names
    from rotator.report import build_report, human_duration, render_html

    if incident is not None:
        _incident(incident, as_json)
        return
    start = parse_time(since)
    grace_seconds = duration(grace)
    with session() as (settings, client, keys):
        config = load_targets(settings.targets_file, provider_names(), settings)
        report = build_report(client, keys, config, since=start, grace=grace_seconds)
    if html_file is not None:
        try:
            html_file.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {html_file}: {exc.strerror or exc}")
    if as_json:
        audit_json(report.to_dict())
        return
    console = wide_console()
    summary = report.summary
    since_text = utc_time(report.since, zone="Z")
    table = Table(
        title=f"Rotation report since {since_text} ({summary['targets']} targets, "
        f"{summary['overdue']} overdue)",
        title_justify="left",
    )
    for name in ("Target", "Provider", "Schedule", "Current", "Last rotation", "Age"):
        table.add_column(name, overflow="fold")
    for name in ("Next due", "Last outcome", "Rot.", "Fail", "Overdue"):
        table.add_column(name, overflow="fold")
    for t in sorted(report.targets, key=lambda t: (not t.overdue, t.name)):
        table.add_row(
            t.name,
            t.provider,
            t.schedule or "-",
            t.current or "-",
            utc_time(t.rotated_at, zone="Z"),
            human_duration(t.age_seconds),
            utc_time(t.next_due, zone="Z"),
            styled(t.last_outcome) or "-",
            str(t.rotations),
            f"[red]{t.failures}[/red]" if t.failures else "0",
            f"[red]yes[/red] {t.overdue_reason}" if t.overdue else "no",
        )
    console.print(table)
    outcomes = ", ".join(f"{k} {v}" for k, v in summary["outcomes"].items())
    console.print(
        f"never rotated {summary['never_rotated']}, failing now (last outcome a failure) "
        f"{summary['with_failures']}, with failures in window "
        f"{summary['with_failures_in_window']}; "
        f"outcomes in window: {outcomes}",
        highlight=False,
    )
    if html_file is not None:
        console.print(f"HTML report written to {html_file}", highlight=False)


def _incident(incident_id: str, as_json: bool) -> None:
    """``--incident ID``: the postmortem summary (see ``rotator.incident_report``)."""
    from rotator.incident_report import incident_summary

    with session() as (_settings, client, keys):
        summary = incident_summary(client, keys, incident_id)
    if summary is None:
        fail(f"no incident {incident_id!r} in the audit log", code=1)
    if as_json:
        audit_json(summary)
        return
    console = wide_console()
    console.print(
        plain(f"incident {incident_id}: opened {utc_time(summary['opened_at'], zone='Z')}")
    )
    console.print(plain(f"  {summary['detail']}"))
    table = Table("target", "provider", "job", "enqueued", "ended", "outcome", "retries", "error")
    for job in summary["jobs"]:
        table.add_row(
            plain(job["target"]),
            plain(job["provider"]),
            plain(job["job_id"]),
            utc_time(job["enqueued_at"], zone="Z"),
            utc_time(job["ended_at"], zone="Z"),
            styled(job["outcome"]) or plain(job["state"] or "in flight"),
            str(job["retries"]),
            plain(job["error_class"] or "-"),
        )
    console.print(table)
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary["outcomes"].items()))
    took = summary["duration_seconds"]
    console.print(
        plain(
            f"{summary['targets']} targets: {outcomes}; "
            + (f"all ended {took:.1f} s after opening" if took is not None else "not all ended")
        )
    )
