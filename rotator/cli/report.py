"""``rotator report``: per-target rotation health over a window, as a table, JSON or HTML.
Reads the store through the same Redis session as ``rotator audit``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rotator.cli.audit import audit_json, session
from rotator.cli.common import JsonOpt, duration, fail, parse_time, styled, utc_time, wide_console
from rotator.config import load_targets


def report_command(
    since: Annotated[str, typer.Option("--since", help="Window start: 90d, ISO time...")] = "90d",
    grace: Annotated[
        str, typer.Option("--grace", help="How late a rotation may be before it is overdue.")
    ] = "1h",
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Per-target credential age, last/next rotation, failures and overdue flags."""
    from rotator.providers import provider_names
    from rotator.report import build_report, human_duration, render_html

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
        f"never rotated {summary['never_rotated']}, with failures {summary['with_failures']}; "
        f"outcomes in window: {outcomes}",
        highlight=False,
    )
    if html_file is not None:
        console.print(f"HTML report written to {html_file}", highlight=False)
