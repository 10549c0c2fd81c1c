"""``rotator enqueue``, ``jobs``, ``job`` and ``status``: start a rotation and watch jobs and
targets. Everything is read through the store's API; nothing here prints a secret value.

Tables show a job state by its label (``verifying`` reads "applied, verifying"); ``--json``
keeps the machine value. ``status`` shows a target's active job's state while it has one, so a
target whose update is live and being verified never reads as the last job's ``failed``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from rotator.cli.common import (
    JsonOpt,
    actor,
    fail,
    out,
    plain,
    print_json,
    styled,
    utc_time,
    with_runtime,
)
from rotator.models import Job, JobState, Reason, is_job_id

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
    target: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log)")] = "",
    version: Annotated[
        str | None, typer.Option("--version", help="Roll to this stored version")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue an on-demand rotation; prints the job id (an existing queued/running job's id if
    one is already in flight for the target)."""

    async def body(runtime: Runtime) -> tuple[str, bool]:
        try:
            return await runtime.enqueue(
                target, reason=Reason.ON_DEMAND, actor=actor(), note=reason, version=version
            )
        except KeyError as exc:
            fail(str(exc.args[0]))

    job_id, created = with_runtime(body)
    if as_json:
        print_json({"job_id": job_id, "created": created, "target": target})
    else:
        note = "" if created else " (already queued or running)"
        out.print(f"{job_id}{note}", highlight=False)


def jobs(
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    state: Annotated[str | None, typer.Option("--state")] = None,
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
    table = Table("job", "target", "reason", "state", "attempts", "version", "updated", "error")
    for row in rows:
        error = (row["last_error_class"] or "") + (
            ": " + row["last_error"] if row["last_error"] else ""
        )
        table.add_row(
            plain(row["id"]),
            plain(row["target"]),
            plain(row["reason"]),
            styled(_label(row["state"])),
            str(row["attempts"]),
            plain(row["secret_version"] or "-"),
            utc_time(row["updated_at"]),
            plain(error),
        )
    out.print(table)


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


def job(job_id: str, as_json: JsonOpt = False) -> None:
    """One job with its step journal."""
    if not is_job_id(job_id):
        fail(f"{job_id!r} is not a job id (32 lowercase hex digits)")

    async def body(runtime: Runtime) -> dict[str, Any]:
        record = (await runtime.store.load_job(job_id)).public()
        record["journal"] = await runtime.store.journal(job_id)
        return record

    try:
        record = with_runtime(body, needs_targets=False)
    except typer.Exit:  # with_runtime has said why (Redis unreachable, keys refused)
        raise
    except Exception as exc:  # an unknown or malformed id
        fail(str(exc))
    if as_json:
        print_json(record, indent=2, sort_keys=True)
        return
    since = record.get("verifying_since")
    record_shown = {**record, "state": _label(record["state"])}
    record_shown["verifying_since"] = utc_time(since) if since else None
    for key in _JOB_FIELDS:
        out.print(Text.assemble((key, "bold"), ": ", plain(record_shown.get(key) or "-")))
    table = Table("step", "recorded")
    for step, data in sorted(record["journal"].items(), key=lambda kv: kv[1].get("at", 0)):
        table.add_row(plain(step), plain(json.dumps(data, sort_keys=True)))
    out.print(table)


def status(as_json: JsonOpt = False) -> None:
    """Each target's current version, last rotation, next due time and state."""
    rows = with_runtime(_target_rows)
    if as_json:
        print_json(rows, indent=2)
        return
    table = Table("target", "provider", "current", "pending", "rotated", "next due", "state")
    for row in rows:
        table.add_row(
            plain(row["target"]),
            plain(row["provider"]),
            plain(row["current"] or "-"),
            plain(row["pending"] or "-"),
            utc_time(row["rotated_at"]),
            utc_time(row["next_due"]),
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
    for name in names:
        state = states.get(name, {})
        job = active.get(name)
        rows.append(
            {
                "target": name,
                "provider": config.targets[name].provider,
                "current": state.get("current") or None,
                "previous": state.get("previous") or None,
                "pending": state.get("pending") or None,
                "rotated_at": float(state["rotated_at"]) if state.get("rotated_at") else None,
                "next_due": due.get(name),
                "last_outcome": state.get("last_outcome") or None,
                "last_job": state.get("last_job") or None,
                "active_job": job.id if job else None,
                "active_state": str(job.state) if job else None,
                # What the target is doing now: its active job's state, else how the last ended.
                "state": job.state.label if job else state.get("last_outcome") or None,
            }
        )
    return rows
