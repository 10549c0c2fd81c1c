"""Incident mode and ``--wait`` for ``rotator enqueue``: enqueue, then follow jobs to their end.

Progress is drawn live (rich) only on a terminal and never with ``--json``: a bot gets one JSON
summary at the end, a pipe gets the same summary as text. Both exit 0 only when every job
completed (a no-op rotation ends ``completed`` too), 1 when any failed, died, conflicted, was
left unverified or had not ended by ``--timeout``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from rotator import incident as inc
from rotator.cli.common import actor, err, fail, out, plain, print_json, styled, with_runtime
from rotator.models import Job, JobState

if TYPE_CHECKING:
    from rotator.runtime import Runtime

POLL_SECONDS = 0.5


def _bucket(state: JobState) -> str:
    """How the progress display groups a job state."""
    if state in inc.DONE:
        return "done"
    if state is JobState.CONFLICT:
        return "conflict"
    if state in inc.BAD:
        return "failed"
    if state is JobState.RETRYING:
        return "retrying"
    return "running" if state is not JobState.QUEUED else "queued"


def _progress(live: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        disable=not live,
        transient=False,
    )


async def _follow(
    runtime: Runtime,
    jobs: dict[str, str],
    providers: dict[str, str],
    deadline: float,
    live: bool,
    still_enqueuing: asyncio.Task[None] | None = None,
    expected: dict[str, int] | None = None,
) -> dict[str, Job]:
    """Poll the store until every job ended (or the deadline); target -> its job."""
    totals = expected or Counter(providers[t] for t in jobs)
    latest: dict[str, Job] = {}
    with _progress(live) as progress:
        tasks = {p: progress.add_task(p, total=n) for p, n in sorted(totals.items())}
        while True:
            states = await inc.job_states(runtime, list(jobs.values()))
            latest = {t: states[j] for t, j in jobs.items()}
            counts: dict[str, Counter[str]] = defaultdict(Counter)
            for target, job in latest.items():
                counts[providers[target]][_bucket(job.state)] += 1
            for provider, task in tasks.items():
                c = counts[provider]
                ended = c["done"] + c["failed"] + c["conflict"]
                text = (
                    f"{provider}: done {c['done']} retrying {c['retrying']} "
                    f"failed {c['failed']} conflict {c['conflict']}"
                )
                progress.update(task, completed=ended, description=text)
            enqueuing = still_enqueuing is not None and not still_enqueuing.done()
            if not enqueuing and all(j.state.terminal for j in latest.values()):
                return latest
            if time.monotonic() >= deadline:
                return latest
            await asyncio.sleep(POLL_SECONDS)


def follow_one(job_id: str, target: str, timeout: float, as_json: bool) -> None:
    """``enqueue --wait``: follow one job to its end and exit with its outcome."""

    async def body(runtime: Runtime) -> Job:
        provider = runtime.config.get().targets[target].provider
        deadline = time.monotonic() + timeout
        live = err.is_terminal and not as_json
        return (await _follow(runtime, {target: job_id}, {target: provider}, deadline, live))[
            target
        ]

    job = with_runtime(body)
    timed_out = not job.state.terminal
    if as_json:
        print_json(
            {
                "job_id": job_id,
                "target": target,
                "state": str(job.state),
                "timed_out": timed_out,
                "last_error_class": job.last_error_class or None,
            }
        )
    else:
        ending = " (timed out waiting; still in flight)" if timed_out else ""
        error = f" {job.last_error_class}" if job.last_error_class else ""
        out.print(plain(f"{job_id} "), styled(job.state.label), plain(error + ending))
    raise typer.Exit(inc.outcome_code([job.state]))


def run_incident(
    *,
    secret: str | None,
    provider: str | None,
    everything: bool,
    dry_run: bool,
    note: str,
    timeout: float,
    as_json: bool,
) -> None:
    """``rotator enqueue --secret/--provider/--all``: see ``rotator.incident``."""
    selection = ", ".join(
        part
        for part in (
            f"secret={secret}" if secret else "",
            f"provider={provider}" if provider else "",
            "all targets" if everything else "",
        )
        if part
    )

    async def body(runtime: Runtime) -> dict[str, Any]:
        specs = runtime.config.get().targets
        if secret is not None and secret not in runtime.config.get().secrets:
            fail(f"no secret named {secret!r} in {runtime.config.get().path}")
        names = inc.select(specs, secret=secret, provider=provider, everything=everything)
        if not names:
            fail(f"no enabled target matches {selection}")
        now = time.time()
        planned = inc.spread(specs, names, now)
        if dry_run:
            return {"dry_run": True, "selection": selection, "planned": _planned(planned, now)}
        incident = await inc.open_incident(
            runtime, planned, operator=actor(), selection=selection, note=note
        )
        providers = {p.target: p.provider for p in planned}
        deadline = time.monotonic() + timeout + max(p.start_at - now for p in planned)
        enqueuing = asyncio.create_task(inc.enqueue_all(runtime, incident, note))
        live = err.is_terminal and not as_json
        expected = Counter(p.provider for p in planned)
        try:
            latest = await _follow(
                runtime, incident.jobs, providers, deadline, live, enqueuing, expected
            )
        finally:
            if not enqueuing.done():
                enqueuing.cancel()
        (failure,) = await asyncio.gather(enqueuing, return_exceptions=True)
        if isinstance(failure, Exception):  # not CancelledError: a timeout cut the spread short
            raise failure
        return _summary(incident, latest, planned, selection)

    summary = with_runtime(body)
    if as_json:
        print_json(summary, indent=2)
    else:
        _print(summary)
    if summary.get("dry_run"):
        return
    states = [JobState(j["state"]) for j in summary["jobs"]]
    code = inc.outcome_code(states) if len(states) == len(summary["planned"]) else 1
    raise typer.Exit(code)


def _planned(planned: list[inc.Planned], now: float) -> list[dict[str, Any]]:
    return [
        {
            "target": p.target,
            "provider": p.provider,
            "priority": p.priority,
            "starts_in_seconds": round(max(0.0, p.start_at - now), 3),
        }
        for p in planned
    ]


def _summary(
    incident: inc.Incident, latest: dict[str, Job], planned: list[inc.Planned], selection: str
) -> dict[str, Any]:
    counts: Counter[str] = Counter(_bucket(j.state) for j in latest.values())
    return {
        "incident": incident.id,
        "selection": selection,
        "planned": _planned(planned, planned[0].start_at if planned else 0.0),
        "counts": dict(counts),
        "timed_out": any(not j.state.terminal for j in latest.values())
        or len(latest) < len(planned),
        "jobs": [
            {
                "target": target,
                "job_id": job.id,
                "state": str(job.state),
                "reused_in_flight_job": target in incident.reused,
                "last_error_class": job.last_error_class or None,
            }
            for target, job in latest.items()
        ],
    }


def _print(summary: dict[str, Any]) -> None:
    if summary.get("dry_run"):
        table = Table("target", "provider", "priority", "starts in", title="dry run: would enqueue")
        for p in summary["planned"]:
            table.add_row(
                plain(p["target"]),
                plain(p["provider"]),
                str(p["priority"]),
                f"{p['starts_in_seconds']:g} s",
            )
        out.print(table)
        return
    table = Table("target", "job", "state", "error", title=f"incident {summary['incident']}")
    for j in summary["jobs"]:
        table.add_row(
            plain(j["target"]),
            plain(j["job_id"]),
            styled(JobState(j["state"]).label),
            plain(j["last_error_class"] or "-"),
        )
    out.print(table)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items()))
    tail = "; timed out waiting" if summary["timed_out"] else ""
    out.print(plain(f"incident {summary['incident']}: {counts}{tail}"))
    out.print(plain(f"postmortem: rotator report --incident {summary['incident']}"))
