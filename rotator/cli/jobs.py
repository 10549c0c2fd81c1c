"""``rotator enqueue``, ``jobs``, ``job`` and ``status``: start a rotation and watch jobs and
targets. Everything is read through the store's API; nothing here prints a secret value.

Tables show a job state by its label (``verifying`` reads "applied, verifying"); ``--json``
keeps the machine value. ``status`` shows a target's active job's state while it has one, so a
target whose update is live and being verified never reads as the last job's ``failed``.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from rotator.cli.common import (
    JsonOpt,
    actor,
    duration,
    fail,
    fitted_table,
    id_prefix,
    narrow,
    out,
    plain,
    print_json,
    resolve_job_id,
    styled,
    utc_time,
    with_runtime,
)
from rotator.dispatch import first_due
from rotator.errors import MalformedJob
from rotator.models import Job, JobState, Reason, is_job_id

_STATES = tuple(str(s) for s in JobState)

if TYPE_CHECKING:
    from rotator.runtime import Runtime

# The fields `rotator job` prints above the journal, in this order.
_JOB_FIELDS = (
    "id",
    "target",
    "reason",
    "actor",
    "state",
    "attempts",
    "secret_version",
    "verifying_since",
    "last_error_class",
    "last_error",
)


def enqueue(
    target: Annotated[
        str | None,
        typer.Argument(help="The target to rotate (omit with --secret/--provider/--all)"),
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (kept in the audit log)")
    ] = "",
    version: Annotated[
        str | None,
        typer.Option("--version", metavar="VERSION", help="Roll to this stored version"),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Follow the job to its end; exit 0 completed, 1 failed/dead/conflict"
        ),
    ] = False,
    timeout: Annotated[
        str,
        typer.Option(
            "--timeout", metavar="DURATION", help="How long --wait / incident mode follow jobs"
        ),
    ] = "15m",
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret", metavar="NAME", help="Incident mode: every target using this secret"
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option("--provider", metavar="NAME", help="Incident mode: every target of it"),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Incident mode: every enabled target")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Incident mode: show the plan, enqueue nothing")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Queue an on-demand rotation; prints the job id (an existing queued/running job's id if
    one is already in flight for the target). With --secret/--provider/--all: incident mode,
    a rotation of every matching target by priority within the providers' rate budgets."""
    from rotator.cli import incident

    limit = duration(timeout)
    if secret or provider or everything:
        if target is not None or version is not None:
            fail("incident mode (--secret/--provider/--all) takes no TARGET or --version")
        incident.run_incident(
            secret=secret,
            provider=provider,
            everything=everything,
            dry_run=dry_run,
            note=reason,
            timeout=limit,
            as_json=as_json,
        )
        return
    if target is None:
        fail("give a TARGET, or --secret/--provider/--all for incident mode")
    if dry_run:
        fail("--dry-run belongs to incident mode (--secret/--provider/--all)")
    name = target

    async def body(runtime: Runtime) -> tuple[str, bool]:
        try:
            return await runtime.enqueue(
                name, reason=Reason.ON_DEMAND, actor=actor(), note=reason, version=version
            )
        except KeyError as exc:
            fail(str(exc.args[0]))

    job_id, created = with_runtime(body)
    if wait:
        incident.follow_one(job_id, name, limit, as_json)
        return
    if as_json:
        print_json({"job_id": job_id, "created": created, "target": name})
    else:
        note = "" if created else " (already queued or running)"
        out.print(f"{job_id}{note}", highlight=False)


def jobs(
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="How many jobs.")] = 50,
    state: Annotated[
        str | None,
        typer.Option(
            "--state", metavar="STATE", help=f"Only jobs in this state: {', '.join(_STATES)}"
        ),
    ] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Only dead-lettered jobs")] = False,
    quarantined: Annotated[
        bool,
        typer.Option("--quarantined", help="Quarantined job records and broker envelopes"),
    ] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="With --quarantined: the kept envelope bytes (base64)")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Recent jobs, newest first; --dead shows the dead-letter set."""
    if state is not None and state not in _STATES:
        raise typer.BadParameter(
            f"{state!r} is not a job state; valid states: {', '.join(_STATES)}",
            param_hint="--state",
        )
    if quarantined:
        _show_quarantine(as_json, raw)
        return

    async def body(runtime: Runtime) -> list[dict[str, Any]]:
        if dead:
            ids = await runtime.store.dead_jobs(limit)
            return [(await runtime.store.load_job(i)).public() for i in ids if is_job_id(i)]
        return [
            item.public()
            for item in await runtime.store.recent_jobs(limit)
            if isinstance(item, Job) and (state is None or str(item.state) == state)
        ]

    rows = with_runtime(body, needs_targets=False)
    if as_json:
        print_json(rows, indent=2)
        return
    compact = narrow()
    # In 80 columns, attempts and version make way (they are in `rotator job` and --json).
    wide_only = () if compact else (("tries", None), ("version", None))
    table = fitted_table(
        ("job", None), ("target", None), ("reason", None), ("state", 9), *wide_only,
        ("updated", 10), ("error", None), ids=("job",),
    )  # fmt: skip
    for row in rows:
        error = (row["last_error_class"] or "") + (
            ": " + row["last_error"] if row["last_error"] else ""
        )
        extra: list[str | Text] = (
            [] if compact else [str(row["attempts"]), plain(row["secret_version"] or "-")]
        )
        table.add_row(
            plain(row["id"]),
            plain(row["target"]),
            plain(reason_text(row)),
            styled(_label(row["state"])),
            *extra,
            utc_time(row["updated_at"]),
            plain(error),
        )
    out.print(table)


def reason_text(row: dict[str, Any]) -> str:
    """The reason with the operator's ``--reason`` text: ``on-demand: leak drill``."""
    note = row.get("note") or ""
    return f"{row['reason']}: {note}" if note else str(row["reason"])


def _label(state: str) -> str:
    try:
        return JobState(state).label
    except ValueError:
        return state


def _show_quarantine(as_json: bool, raw: bool) -> None:
    """Job records that could not be parsed, and broker envelopes no worker could decode."""

    async def body(runtime: Runtime) -> dict[str, Any]:
        return {
            "jobs": await runtime.store.quarantined(),
            "envelopes": await runtime.store.quarantined_envelopes(with_raw=raw),
        }

    quarantine = with_runtime(body, needs_targets=False)
    if as_json:
        print_json(quarantine, indent=2)
        return
    table = Table("job", "reason", "quarantined at", title="quarantined jobs")
    for job_id, record in quarantine["jobs"].items():
        table.add_row(plain(job_id), plain(record.get("reason")), utc_time(record.get("at")))
    out.print(table)
    columns = ["quarantined at", "queue", "size", "reason", *(["raw (base64)"] if raw else [])]
    envelopes = Table(*columns, title="quarantined broker envelopes")
    for record in quarantine["envelopes"]:
        size = f"{record.get('size', '?')} B" + (" (truncated)" if record.get("truncated") else "")
        cells: list[str | Text] = [utc_time(record.get("at")), plain(record.get("queue", "-"))]
        cells += [size, plain(record.get("reason", "-"))]
        envelopes.add_row(*cells, *([plain(record.get("raw_b64", ""))] if raw else []))
    out.print(envelopes)


def job(
    job_id: Annotated[str, typer.Argument(help="Job id, or a unique prefix (8+ hex digits).")],
    as_json: JsonOpt = False,
) -> None:
    """One job with its step journal."""
    id_prefix(job_id)  # a forged or mistyped id is refused before Redis is reached

    async def body(runtime: Runtime) -> dict[str, Any]:
        full = await resolve_job_id(runtime, job_id)
        try:
            record = (await runtime.store.load_job(full)).public()
        except MalformedJob as exc:
            if exc.reason == "record is empty":  # never created, or expired and removed
                fail(f"no such job: {full}", 1)
            raise
        record["journal"] = await runtime.store.journal(full)
        return record

    try:
        record = with_runtime(body, needs_targets=False)
    except MalformedJob as exc:
        fail(str(exc))
    if as_json:
        print_json(record, indent=2, sort_keys=True)
        return
    since = record.get("verifying_since")
    record_shown = {**record, "state": _label(record["state"]), "reason": reason_text(record)}
    record_shown["verifying_since"] = utc_time(since) if since else None
    for key in _JOB_FIELDS:
        out.print(Text.assemble((key, "bold"), ": ", plain(record_shown.get(key) or "-")))
    table = Table(title="journal")
    table.add_column("step", overflow="fold")
    table.add_column("recorded", overflow="fold")
    for step, data in sorted(record["journal"].items(), key=lambda kv: kv[1].get("at", 0)):
        table.add_row(plain(step), plain(json.dumps(data, sort_keys=True)))
    out.print(table)


def status(as_json: JsonOpt = False) -> None:
    """Each target's current version, last rotation, next due time and state."""
    rows = with_runtime(_target_rows)
    if as_json:
        print_json(rows, indent=2)
        return
    table = fitted_table(
        ("target", None), ("provider", None), ("current", 13), ("pending", 13),
        ("rotated", 10), ("next due", 10), ("state", 9),
    )  # fmt: skip
    for row in rows:
        table.add_row(
            plain(row["target"]),
            plain(row["provider"]),
            plain(row["current"] or "-"),
            plain(row["pending"] or "-"),
            utc_time(row["rotated_at"]),
            utc_time(row["next_due"]) + (" (first)" if row.get("first_run") else ""),
            styled(row["state"] or "-"),
        )
    out.print(table)


async def _target_rows(runtime: Runtime) -> list[dict[str, Any]]:
    config = runtime.config.get()
    names = sorted(config.targets)
    states = await runtime.store.target_states(names)
    due = await runtime.store.next_due(names)
    active = await runtime.store.active_jobs(names)
    rows = []
    now = time.time()
    for name in names:
        state = states.get(name, {})
        job = active.get(name)
        # A target the schedule has not picked up yet: when it will first run once synced
        # (without jitter), so adding a target never hides when it will first be written.
        first = None if due.get(name) is not None else first_due(config.targets[name], now, 0.0)
        rows.append(
            {
                "target": name,
                "provider": config.targets[name].provider,
                "current": state.get("current") or None,
                "previous": state.get("previous") or None,
                "pending": state.get("pending") or None,
                "rotated_at": float(state["rotated_at"]) if state.get("rotated_at") else None,
                "next_due": due.get(name) if first is None else first,
                "first_run": first is not None,
                "last_outcome": state.get("last_outcome") or None,
                "last_job": state.get("last_job") or None,
                "active_job": job.id if job else None,
                "active_state": str(job.state) if job else None,
                # What the target is doing now: its active job's state, else how the last ended.
                "state": job.state.label if job else state.get("last_outcome") or None,
            }
        )
    return rows
