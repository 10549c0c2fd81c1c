"""``rotator audit ...`` and ``rotator report``: review the hash-chained audit log.

Mounted by ``rotator.cli``::

    app.add_typer(audit_app, name="audit")
    app.command("report")(report_command)

Exit codes: 0 ok; 1 the chain does not verify (or: no events for ``show``, spool replay
failed); 2 usage or configuration error, or Redis unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import redis
import redis.asyncio as aioredis
import typer
from rich.console import Console
from rich.table import Table

from rotator.audit import (
    ARCHIVE_DIRNAME,
    SPOOL_DIRNAME,
    AuditFilter,
    AuditLog,
    AuditReader,
    StoredEvent,
    VerifyResult,
    open_output,
)
from rotator.config import Settings, load_settings, load_targets, parse_interval
from rotator.errors import AuditUnavailable, ConfigError
from rotator.store.keys import Keys

audit_app = typer.Typer(
    help="Review the tamper-evident audit log: list, show, verify, export, archive.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CHECKPOINT_NAME = "audit-verify.json"


# ---------------------------------------------------------------------------------------------
# plumbing
# ---------------------------------------------------------------------------------------------


def _out() -> Console:
    """Console for human output; piped output gets a wide page rather than 80 columns."""
    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        return Console(width=180)
    return Console()


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        _fail(str(exc))


def _connect(settings: Settings) -> redis.Redis:
    """The state store (tests replace this function)."""
    from rotator.embedded import redis_url_for

    return redis.Redis.from_url(redis_url_for(settings), socket_timeout=60)


def _connect_async(settings: Settings) -> aioredis.Redis:
    from rotator.embedded import redis_url_for

    return aioredis.Redis.from_url(redis_url_for(settings), socket_timeout=60)


@contextlib.contextmanager
def _session() -> Iterator[tuple[Settings, redis.Redis, Keys]]:
    """Settings, a Redis client and the key layout; config/connection errors exit with 2."""
    from rotator.embedded import EmbeddedRedisError

    settings = _settings()
    try:
        client = _connect(settings)
    except (redis.RedisError, EmbeddedRedisError, OSError, ValueError) as exc:
        _fail(f"cannot connect to Redis: {exc}")
    try:
        yield settings, client, Keys(settings.key_prefix)
    except ConfigError as exc:
        _fail(str(exc))
    except redis.RedisError as exc:
        _fail(f"Redis error: {type(exc).__name__}: {exc}")
    finally:
        client.close()


def _audit_key(settings: Settings) -> bytes:
    try:
        return settings.audit_key_bytes()
    except ConfigError as exc:
        _fail(str(exc))


_NUMBER = re.compile(r"^\d+(\.\d+)?$")


def parse_time(text: str, now: float | None = None) -> float:
    """``24h``/``90d`` (that long ago), ``now``, unix seconds, or an ISO date/time (UTC if no
    zone is given)."""
    now = time.time() if now is None else now
    value = text.strip()
    if value == "now":
        return now
    if _NUMBER.match(value):
        return float(value)
    try:
        return now - parse_interval(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time: use 24h / 90d (ago), an ISO date/time, or unix seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _duration(text: str) -> float:
    try:
        return parse_interval(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _styled(outcome: str | None) -> str:
    if not outcome:
        return ""
    colour = {
        "success": "green",
        "noop": "cyan",
        "retry": "yellow",
        "conflict": "yellow",
        "failed": "red",
        "dead": "red",
    }.get(outcome)
    return f"[{colour}]{outcome}[/{colour}]" if colour else outcome


def _summary(record: StoredEvent) -> str:
    e = record.event
    bits = []
    if e.secret_version:
        bits.append(f"version {e.secret_version}")
    if e.remote_version_before or e.remote_version_after:
        bits.append(f"remote {e.remote_version_before or '?'} -> {e.remote_version_after or '?'}")
    if e.error_class:
        bits.append(e.error_class)
    if e.detail:
        bits.append(e.detail)
    return "; ".join(bits)


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _filters(
    target: str | None,
    job: str | None,
    provider: str | None,
    event: list[str] | None,
    outcome: list[str] | None,
    actor: str | None,
    since: str | None,
    until: str | None,
) -> AuditFilter:
    now = time.time()
    return AuditFilter(
        target=target,
        job_id=job,
        provider=provider,
        events=tuple(event or ()),
        outcomes=tuple(outcome or ()),
        actor=actor,
        since=parse_time(since, now) if since else None,
        until=parse_time(until, now) if until else None,
    )


TargetOpt = Annotated[str | None, typer.Option("--target", "-t", help="Target name.")]
JobOpt = Annotated[str | None, typer.Option("--job", "-j", help="Job id.")]
ProviderOpt = Annotated[str | None, typer.Option("--provider", "-p", help="Provider name.")]
EventOpt = Annotated[
    list[str] | None, typer.Option("--event", "-e", help="Event name (repeatable).")
]
OutcomeOpt = Annotated[
    list[str] | None,
    typer.Option("--outcome", "-o", help="success|noop|retry|conflict|failed|dead (repeatable)."),
]
ActorOpt = Annotated[
    str | None, typer.Option("--actor", "-a", help="Actor, e.g. schedule or cli:alice; globs ok.")
]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only events at/after: 24h, 90d, ISO time, unix s.")
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Only events at/before (same forms).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------


@audit_app.command("list")
def list_command(
    target: TargetOpt = None,
    job: JobOpt = None,
    provider: ProviderOpt = None,
    event: EventOpt = None,
    outcome: OutcomeOpt = None,
    actor: ActorOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000)] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Continue after this (from the last page).")
    ] = None,
    page: Annotated[
        int | None, typer.Option("--page", min=1, help="Page number (skips earlier matches).")
    ] = None,
    oldest_first: Annotated[bool, typer.Option("--oldest-first", help="Chain order.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List audit events, newest first, filtered and paged."""
    where = _filters(target, job, provider, event, outcome, actor, since, until)
    if cursor is not None and page is not None:
        raise typer.BadParameter("use either --cursor or --page", param_hint="--page")
    with _session() as (settings, client, keys):
        reader = AuditReader(client, keys)
        try:
            result = reader.query(
                where, limit=limit, cursor=cursor, page=page, newest_first=not oldest_first
            )
        except ValueError as exc:
            _fail(str(exc))
    if as_json:
        _json(
            {
                "events": [r.to_dict() for r in result.events],
                "next_cursor": result.next_cursor,
            }
        )
        return
    table = Table(title=f"Audit events ({len(result.events)})", title_justify="left")
    for name in ("Seq", "Time (UTC)", "Event", "Target", "Job", "Try", "Actor", "Outcome"):
        table.add_column(name, overflow="fold", no_wrap=name in ("Seq", "Time (UTC)"))
    table.add_column("Detail", overflow="fold")
    for r in result.events:
        e = r.event
        table.add_row(
            str(r.seq),
            _iso(e.time),
            e.event,
            e.target or "",
            e.job_id or "",
            "" if e.attempt is None else str(e.attempt),
            e.actor or "",
            _styled(e.outcome),
            _summary(r),
        )
    console = _out()
    console.print(table)
    if result.next_cursor:
        console.print(f"more: --cursor {result.next_cursor}", highlight=False)


@audit_app.command("show")
def show_command(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    as_json: JsonOpt = False,
) -> None:
    """The whole story of one job, step by step."""
    with _session() as (settings, client, keys):
        story = AuditReader(client, keys).job_story(job_id)
    if as_json:
        _json({"job_id": job_id, "events": [r.to_dict() for r in story]})
        if not story:
            raise typer.Exit(1)
        return
    if not story:
        _fail(f"no audit events for job {job_id}", 1)
    first = story[0].event
    final = next((r.event.outcome for r in reversed(story) if r.event.outcome), None)
    console = _out()
    console.print(
        f"[bold]Job {job_id}[/bold]  target {first.target or '-'}  provider "
        f"{next((r.event.provider for r in story if r.event.provider), '-')}  actor "
        f"{first.actor or '-'}  reason {first.reason or '-'}  outcome {_styled(final) or '-'}",
        highlight=False,
    )
    table = Table(show_lines=False)
    for name in ("#", "Seq", "Time (UTC)", "+s", "Event", "Try", "Outcome", "Version"):
        table.add_column(name, overflow="fold")
    for name in ("Fingerprint", "Remote before -> after", "ms", "Error / detail"):
        table.add_column(name, overflow="fold")
    start = first.time
    for step, r in enumerate(story, 1):
        e = r.event
        table.add_row(
            str(step),
            str(r.seq),
            _iso(e.time),
            f"{e.time - start:.3f}",
            e.event,
            "" if e.attempt is None else str(e.attempt),
            _styled(e.outcome),
            e.secret_version or "",
            (e.fingerprint or "")[:12],
            ""
            if not (e.remote_version_before or e.remote_version_after)
            else f"{e.remote_version_before or '?'} -> {e.remote_version_after or '?'}",
            "" if e.duration_ms is None else f"{e.duration_ms:.0f}",
            " ".join(x for x in (e.error_class, e.detail) if x),
        )
    console.print(table)


def _read_checkpoint(path: Path) -> tuple[int, str] | None:
    try:
        data = json.loads(path.read_text())
        return int(data["seq"]), str(data["hash"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        _fail(f"{path}: not a verification checkpoint")


def _write_checkpoint(path: Path, result: VerifyResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps({"seq": result.last_seq, "hash": result.last_hash, "verified_at": time.time()})
    )
    tmp.replace(path)


@audit_app.command("verify")
def verify_command(
    archive_dir: Annotated[
        Path | None,
        typer.Option("--archive-dir", help="Verify archived files first, from the first event."),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="Where the last verified (seq, hash) is kept; a later run checks it is still "
            "there, which catches events cut from the end. Default: <state_dir>/" + CHECKPOINT_NAME,
        ),
    ] = None,
    use_checkpoint: Annotated[
        bool, typer.Option("--use-checkpoint/--no-checkpoint", help="Read/update checkpoint.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Walk the hash chain; report the first broken link, gap or reordering (exit 1)."""
    with _session() as (settings, client, keys):
        key = _audit_key(settings)
        path = checkpoint or settings.state_dir / CHECKPOINT_NAME
        expect = _read_checkpoint(path) if use_checkpoint else None
        result = AuditReader(client, keys, key).verify(archive_dir=archive_dir, expect=expect)
    if result.ok and use_checkpoint and result.last_seq > 0:
        with contextlib.suppress(OSError):
            _write_checkpoint(path, result)
    if as_json:
        _json(result.to_dict())
    else:
        console = _out()
        scope = (
            f"{result.archive_files} archive file(s) + live stream"
            if archive_dir is not None
            else "live stream"
            + (f" (anchored at archived seq {result.anchor_seq})" if result.anchor_seq else "")
        )
        if result.ok:
            console.print(
                f"[green]OK[/green] {result.checked} events verified ({scope}); chain ends at "
                f"seq {result.last_seq} in {result.seconds:.2f}s",
                highlight=False,
            )
        else:
            first = result.problems[0]
            console.print(
                f"[red]FAILED[/red] {result.problem_count} problem(s) in {result.checked} events "
                f"({scope}). First: {first.kind} at seq {first.seq} ({first.where}): "
                f"{first.message}",
                highlight=False,
            )
            table = Table(title="Problems", title_justify="left")
            for name in ("Kind", "Seq", "Stream id", "Where", "Message"):
                table.add_column(name, overflow="fold")
            for p in result.problems:
                table.add_row(p.kind, str(p.seq or "-"), p.id or "-", p.where, p.message)
            console.print(table)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def export_command(
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-O", help="File to write (default: stdout).")
    ] = None,
    target: TargetOpt = None,
    job: JobOpt = None,
    provider: ProviderOpt = None,
    event: EventOpt = None,
    outcome: OutcomeOpt = None,
    actor: ActorOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
) -> None:
    """Stream events (oldest first) as JSONL or CSV; constant memory."""
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("must be jsonl or csv", param_hint="--format")
    where = _filters(target, job, provider, event, outcome, actor, since, until)
    with _session() as (settings, client, keys):
        reader = AuditReader(client, keys)
        try:
            with open_output(output) as handle:
                count = reader.export(handle, "csv" if fmt == "csv" else "jsonl", where)
        except OSError as exc:
            _fail(f"cannot write {output}: {exc.strerror or exc}")
    if output is not None and str(output) != "-":
        Console(stderr=True).print(f"{count} events written to {output}", highlight=False)


@audit_app.command("archive")
def archive_command(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Archive events stored longer ago than this (default: ROTATOR_AUDIT_RETENTION).",
        ),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Archive directory (default: <state_dir>/audit-archive)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Move old events to gzip JSONL files, then remove them (and index entries) from Redis."""
    with _session() as (settings, client, keys):
        older_than = older_than or settings.audit_retention
        age = _duration(older_than)
        target_dir = directory or settings.state_dir / ARCHIVE_DIRNAME
        try:
            result = AuditReader(client, keys).archive(
                time.time() - age, target_dir, dry_run=dry_run
            )
        except OSError as exc:
            _fail(f"cannot write archive in {target_dir}: {exc.strerror or exc}")
    if as_json:
        _json({"dry_run": dry_run, "directory": str(target_dir), **result.to_dict()})
        return
    console = _out()
    if not result.archived and not result.removed:
        console.print(f"nothing older than {older_than} to archive", highlight=False)
        return
    verb = "would archive" if dry_run else "archived"
    console.print(
        f"{verb} {result.archived} events (seq {result.first_seq}..{result.last_seq})"
        + ("" if dry_run else f", removed {result.removed} from Redis"),
        highlight=False,
    )
    for name in result.files:
        console.print(f"  {name}", highlight=False)


@audit_app.command("replay-spool")
def replay_spool_command(
    spool_dir: Annotated[
        Path | None,
        typer.Option("--spool-dir", help="Default: <state_dir>/audit-spool."),
    ] = None,
) -> None:
    """Append events spooled while Redis was unreachable, in order."""
    settings = _settings()
    key = _audit_key(settings)
    directory = spool_dir or settings.state_dir / SPOOL_DIRNAME

    async def run() -> int:
        client = _connect_async(settings)
        try:
            log = AuditLog(client, Keys(settings.key_prefix), key, spool_dir=directory)
            return await log.replay_spool()
        finally:
            await client.aclose()

    try:
        count = asyncio.run(run())
    except AuditUnavailable as exc:
        _fail(str(exc), 1)
    _out().print(f"replayed {count} spooled event(s)", highlight=False)


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
    from rotator.report import build_report, human_duration, iso, render_html

    start = parse_time(since)
    grace_seconds = _duration(grace)
    with _session() as (settings, client, keys):
        config = load_targets(settings.targets_file, provider_names())
        report = build_report(client, keys, config, since=start, grace=grace_seconds)
    if html_file is not None:
        try:
            html_file.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot write {html_file}: {exc.strerror or exc}")
    if as_json:
        _json(report.to_dict())
        return
    console = _out()
    summary = report.summary
    table = Table(
        title=f"Rotation report since {iso(report.since)} ({summary['targets']} targets, "
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
            iso(t.rotated_at),
            human_duration(t.age_seconds),
            iso(t.next_due),
            _styled(t.last_outcome) or "-",
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
