"""``rotator plan [TARGET...]``: preflight and dry run; writes nothing anywhere.

One line per target: ``✓`` ready (with what a rotation would do) or ``✗`` with every reason it
would fail. Exit 0 when every target is ready, 1 when any would fail (or the targets file is
invalid), 2 for a usage error (an unknown target name, invalid settings).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from rotator.cli.common import (
    JsonOpt,
    duration,
    err,
    fail,
    out,
    print_json,
    settings_or_exit,
    utc_time,
)
from rotator.config import Settings, TargetsConfig, load_targets
from rotator.errors import ConfigError
from rotator.providers import provider_names

if TYPE_CHECKING:  # imported when the command runs: the planner pulls in every adapter
    from rotator.plan import TargetPlan


def plan(
    targets: Annotated[
        list[str] | None, typer.Argument(help="Targets to plan (default: every target)")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", metavar="FILE", help="Targets file")
    ] = None,
    within: Annotated[
        str,
        typer.Option(
            "--within",
            metavar="DURATION",
            help="Check the rotations due within this long (e.g. 1h, 24h, 7d) against the "
            "providers' documented rate limits",
        ),
    ] = "24h",
    as_json: JsonOpt = False,
) -> None:
    """Check that each target would rotate, without writing anything: credentials, options,
    authentication, the resource and its version, what would change (names only), when it
    is next due, and the providers' rate budgets. Exit 1 if any target would fail."""
    from rotator.runtime import configure_logging

    settings = settings_or_exit()
    configure_logging(settings)  # logs on stderr: --json output stays machine-readable
    horizon = duration(within)
    try:
        config = load_targets(file or settings.targets_file, provider_names())
    except ConfigError as exc:
        for issue in exc.issues:
            err.print(f"[red]✗[/red] {escape(str(issue))}", highlight=False)
        raise typer.Exit(1) from None
    try:
        plans, no_state = asyncio.run(_plan(settings, config, targets or [], horizon))
    except KeyError as exc:
        fail(str(exc.args[0]))
    ok = all(p.ok for p in plans)
    if as_json:
        print_json(
            {
                "ok": ok,
                "within_seconds": horizon,
                "state": no_state or "read",
                "targets": [p.to_dict() for p in plans],
            },
            indent=2,
        )
    else:
        _print(plans, no_state)
    if not ok:
        raise typer.Exit(1)


async def _plan(
    settings: Settings, config: TargetsConfig, names: list[str], horizon: float
) -> tuple[list[TargetPlan], str | None]:
    from rotator.plan import Planner, ReadOnlyContext
    from rotator.plan.readonly import close_state, connect_state

    state, no_state = await connect_state(settings)
    context = ReadOnlyContext(
        timeout=settings.http_timeout,
        max_response_bytes=settings.http_max_response_bytes,
        # the same per-request URL policy as the worker: a token grant carries credentials
        url_policy=settings.url_policy(),
    )
    try:
        planner = Planner(config, state, context, horizon=horizon)
        return await planner.plan(names), no_state
    finally:
        await context.aclose()
        await close_state(state)


def _print(plans: list[TargetPlan], no_state: str | None) -> None:
    if no_state:
        err.print(
            f"[yellow]note:[/yellow] rotator's state not read ({escape(no_state)}): "
            "next due times and stored versions are what a fresh start would see",
            highlight=False,
        )
    for p in plans:
        where = f"({p.provider} {p.resource_id})"
        if not p.ok:
            reasons = "; ".join(f"{x.kind.replace('_', ' ')}: {x.message}" for x in p.problems)
            out.print(
                f"[red]✗[/red] {escape(p.target)} {escape(where)}: {escape(reasons)}",
                highlight=False,
                soft_wrap=True,
            )
            continue
        out.print(f"[green]✓[/green] {escape(p.target)} {escape(where)}: ready", highlight=False)
        for label, value in _details(p):
            out.print(f"    {label:<16} {escape(value)}", highlight=False, soft_wrap=True)
    broken = sum(1 for p in plans if not p.ok)
    summary = f"{len(plans)} targets: {len(plans) - broken} ready, {broken} would fail"
    out.print(f"[{'red' if broken else 'green'}]{summary}[/]", highlight=False)


_NEW = {
    "generated": "a new value would be generated",
    "stored": "stored version {version}",
    "new": "a value not stored yet (the rotation would store it as a new version)",
    "unknown": "unknown",
}
_EVIDENCE = {
    "marker": "{version} (the resource's rotator marker)",
    "record": "{version} (rotator's record; the API hides it)",
    "state": "readable state (compared directly)",
    "none": "not set by rotator (no rotator marker)",
}


def _details(p: TargetPlan) -> list[tuple[str, str]]:
    differs = {True: "yes", False: "no", None: "unknown"}[p.differs]
    rows = [
        ("resource version", p.resource_version or "-"),
        ("live secret", _EVIDENCE[p.live_evidence].format(version=p.live_version)),
        ("new secret", f"{p.new_source}: " + _NEW[p.new_status].format(version=p.new_version)),
        ("differs", f"{differs}: {p.differs_reason}" if p.differs_reason else differs),
        ("would change", ", ".join(p.changes) or "-"),
        ("next due", f"{utc_time(p.next_due, zone=' UTC')} ({p.due_note})"),
    ]
    rows.extend(("note", note) for note in p.notes)
    return rows
