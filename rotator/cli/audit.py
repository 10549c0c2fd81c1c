"""``rotator audit ...``: review the hash-chained audit log (list, show, verify, checkpoint,
export, archive, replay-spool). ``rotator report`` (``rotator.cli.report``) shares this module's
Redis session.

Exit codes: 0 ok; 1 the chain does not verify (or: no events for ``show``, spool replay
failed); 2 usage or configuration error, or Redis unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import redis
import redis.asyncio as aioredis
import typer
from rich.table import Table
from rich.text import Text

from rotator.audit import (
    ARCHIVE_DIRNAME,
    SPOOL_DIRNAME,
    AuditFilter,
    AuditLog,
    AuditReader,
    StoredEvent,
    open_output,
)
from rotator.audit.keyring import AuditKeyring
from rotator.cli.audit_filters import filtered
from rotator.cli.common import (
    JsonOpt,
    actor,
    audit_key,
    duration,
    err,
    fail,
    is_id_prefix,
    parse_time,
    plain,
    print_json,
    resolve_job_id_sync,
    settings_or_exit,
    styled,
    utc_time,
    wide_console,
)
from rotator.cli.progress import CountingWriter, activity
from rotator.config import Settings
from rotator.errors import AuditUnavailable, ConfigError
from rotator.models import is_job_id
from rotator.store.keys import Keys

__all__ = ["audit_app", "audit_json", "parse_time", "session"]

audit_app = typer.Typer(
    help="Review the tamper-evident audit log: list, show, verify, export, archive.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CHECKPOINT_NAME = "audit-verify.json"  # the automatic checkpoint `verify` keeps
CHECKPOINTS_NAME = "audit-checkpoints.jsonl"  # the default log of `audit checkpoint`


def _connect(config: Settings) -> redis.Redis:
    """The state store (tests replace this function)."""
    from rotator.connections import sync_redis
    from rotator.embedded import redis_url_for

    return sync_redis(redis_url_for(config), socket_timeout=60)


def _connect_async(config: Settings) -> aioredis.Redis:
    from rotator.connections import async_redis
    from rotator.embedded import redis_url_for

    return async_redis(redis_url_for(config), socket_timeout=60)


@contextlib.contextmanager
def session() -> Iterator[tuple[Settings, redis.Redis, Keys]]:
    """Settings, a Redis client and the key layout; config/connection errors exit with 2."""
    from rotator.errors import EmbeddedRedisError

    config = settings_or_exit()
    try:
        client = _connect(config)
    except (redis.RedisError, EmbeddedRedisError, OSError, ValueError) as exc:
        fail(f"cannot connect to Redis: {exc}")
    try:
        yield config, client, Keys(config.key_prefix)
    except ConfigError as exc:
        fail(str(exc))
    except redis.RedisError as exc:
        fail(f"Redis error: {type(exc).__name__}: {exc}")
    finally:
        client.close()


def audit_json(data: Any) -> None:
    """Audit and report JSON: indented, keys sorted, anything else as its string."""
    print_json(data, indent=2, sort_keys=True, default=str)


def _remote(before: str | None, after: str | None) -> str:
    """``before -> after`` of the remote version, ``?`` for an unknown side; "" when both are."""
    return f"{before or '?'} -> {after or '?'}" if before or after else ""


def _summary(record: StoredEvent) -> str:
    e = record.event
    bits = []
    if e.secret_version:
        bits.append(f"version {e.secret_version}")
    if remote := _remote(e.remote_version_before, e.remote_version_after):
        bits.append(f"remote {remote}")
    if e.error_class:
        bits.append(e.error_class)
    if e.detail:
        bits.append(e.detail)
    return "; ".join(bits)


# -- commands ------------------------------------------------------------------------------------


@audit_app.command("list")
@filtered
def list_command(
    where: AuditFilter,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, max=10000, help="Events per page.")
    ] = 50,
    cursor: Annotated[
        str | None,
        typer.Option(
            "--cursor", metavar="CURSOR", help="Continue after this (from the last page)."
        ),
    ] = None,
    page: Annotated[
        int | None,
        typer.Option("--page", metavar="N", min=1, help="Page number (skips earlier matches)."),
    ] = None,
    oldest_first: Annotated[bool, typer.Option("--oldest-first", help="Chain order.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List audit events, newest first, filtered and paged."""
    if cursor is not None and page is not None:
        raise typer.BadParameter("use either --cursor or --page", param_hint="--page")
    with session() as (settings, client, keys):
        reader = AuditReader(client, keys)
        try:
            result = reader.query(
                where, limit=limit, cursor=cursor, page=page, newest_first=not oldest_first
            )
        except ValueError as exc:
            fail(str(exc))
    if as_json:
        audit_json(
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
            utc_time(e.time, millis=True, zone="Z"),
            plain(e.event),
            plain(e.target),
            plain(e.job_id),
            "" if e.attempt is None else str(e.attempt),
            plain(e.actor),
            styled(e.outcome),
            plain(_summary(r)),
        )
    console = wide_console()
    console.print(table)
    if result.next_cursor:
        console.print(f"more: --cursor {result.next_cursor}", highlight=False)


@audit_app.command("show")
def show_command(
    job_id: Annotated[str, typer.Argument(help="Job id, or a unique prefix (8+ hex digits).")],
    as_json: JsonOpt = False,
) -> None:
    """The whole story of one job, step by step."""
    with session() as (settings, client, keys):
        if is_id_prefix(job_id) and not is_job_id(job_id):  # resolved like git's short ids
            job_id = resolve_job_id_sync(client, keys.job_index, job_id)
        story = AuditReader(client, keys).job_story(job_id)
    if as_json:
        audit_json({"job_id": job_id, "events": [r.to_dict() for r in story]})
        if not story:
            raise typer.Exit(1)
        return
    if not story:
        fail(f"no audit events for job {job_id}", 1)
    first = story[0].event
    final = next((r.event.outcome for r in reversed(story) if r.event.outcome), None)
    console = wide_console()
    provider = next((r.event.provider for r in story if r.event.provider), "-")
    console.print(
        Text.assemble(
            (f"Job {job_id}", "bold"),
            "  target ",
            plain(first.target or "-"),
            "  provider ",
            plain(provider),
            "  actor ",
            plain(first.actor or "-"),
            "  reason ",
            plain(first.reason or "-"),
            "  outcome ",
            styled(final) or "-",
        )
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
            utc_time(e.time, millis=True, zone="Z"),
            f"{e.time - start:.3f}",
            plain(e.event),
            "" if e.attempt is None else str(e.attempt),
            styled(e.outcome),
            plain(e.secret_version),
            plain((e.fingerprint or "")[:12]),
            plain(_remote(e.remote_version_before, e.remote_version_after)),
            "" if e.duration_ms is None else f"{e.duration_ms:.0f}",
            plain(" ".join(x for x in (e.error_class, e.detail) if x)),
        )
    console.print(table)


def keyring_or_exit(settings: Settings) -> AuditKeyring:
    keyring = AuditKeyring.parse(audit_key(settings))
    if keyring.too_short():
        fail("ROTATOR_AUDIT_KEY: every audit key must be at least 32 bytes")
    return keyring


@audit_app.command("export")
@filtered
def export_command(
    fmt: Annotated[
        str, typer.Option("--format", "-f", metavar="FORMAT", help="jsonl or csv.")
    ] = "jsonl",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-O", metavar="FILE", help="File to write (default: stdout)."),
    ] = None,
    *,
    where: AuditFilter,
) -> None:
    """Stream events (oldest first) as JSONL or CSV; constant memory."""
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("must be jsonl or csv", param_hint="--format")
    with session() as (settings, client, keys):
        reader = AuditReader(client, keys)
        try:
            with open_output(output) as handle, activity("exporting", unit="lines") as counter:
                writer: Any = CountingWriter(handle, counter)
                count = reader.export(writer, "csv" if fmt == "csv" else "jsonl", where)
                if handle is sys.stdout:
                    handle.flush()  # a closed pipe shows here, not at interpreter exit
        except BrokenPipeError:
            # `audit export | head -1`: the reader has what it wanted. Point stdout at
            # /dev/null so the interpreter's final flush cannot fail, and end quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
    if output is not None and str(output) != "-":
        err.print(f"{count} events written to {output}", highlight=False)


@audit_app.command("archive")
def archive_command(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Archive events stored longer ago than this (default: ROTATOR_AUDIT_RETENTION).",
        ),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="Archive directory (default: <state_dir>/audit-archive).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Move old events to gzip JSONL files, then remove them (and index entries) from Redis."""
    with session() as (settings, client, keys):
        older_than = older_than or settings.audit_retention
        age = duration(older_than)
        target_dir = directory or settings.state_dir / ARCHIVE_DIRNAME
        key = None
        if not dry_run:
            keyring_or_exit(settings)  # refuses a short key before anything is written
            key = audit_key(settings)
        try:
            with activity("archiving audit events", enabled=not as_json):
                result = AuditReader(client, keys, key).archive(
                    time.time() - age, target_dir, dry_run=dry_run, actor=actor()
                )
        except OSError as exc:
            fail(f"cannot write archive in {target_dir}: {exc.strerror or exc}")
        except AuditUnavailable as exc:
            fail(str(exc), 1)
    if as_json:
        audit_json({"dry_run": dry_run, "directory": str(target_dir), **result.to_dict()})
        return
    console = wide_console()
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
        typer.Option("--spool-dir", metavar="DIR", help="Default: <state_dir>/audit-spool."),
    ] = None,
) -> None:
    """Append events spooled while Redis was unreachable, in order."""
    settings = settings_or_exit()
    key = audit_key(settings)
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
        fail(str(exc), 1)
    wide_console().print(f"replayed {count} spooled event(s)", highlight=False)


# verify and checkpoint (rotator/cli/audit_integrity.py) register on audit_app when imported.
from rotator.cli import audit_integrity as _integrity  # noqa: E402, F401
