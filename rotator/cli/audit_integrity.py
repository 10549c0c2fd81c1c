"""``rotator audit verify`` and ``rotator audit checkpoint``: proving the chain is whole.

Verification trusts nothing Redis says about where the chain starts or ends: anchors and
checkpoints are signed with the audit key, and ``--checkpoint FILE`` (signed heads kept outside
Redis) proves that nothing before them was rewritten or dropped.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rotator.audit import (
    AuditReader,
    VerifyResult,
)
from rotator.audit.checkpoint import (
    append_checkpoint,
    read_checkpoints,
    replace_checkpoint,
    signed_line,
)
from rotator.audit.keyring import AuditKeyring
from rotator.cli.audit import (
    CHECKPOINT_NAME,
    CHECKPOINTS_NAME,
    audit_app,
    audit_json,
    keyring_or_exit,
    session,
)
from rotator.cli.common import (
    JsonOpt,
    audit_key,
    fail,
    print_json,
    settings_or_exit,
    wide_console,
)
from rotator.cli.progress import activity
from rotator.config import Settings
from rotator.errors import CheckpointError


def _expected(paths: list[Path], keyring: AuditKeyring) -> list[tuple[int, str]]:
    """(seq, hash) of every signed checkpoint in ``paths``; a forged one is a failed verify."""
    expected: list[tuple[int, str]] = []
    for path in paths:
        try:
            expected.extend((p.seq, p.hash) for p in read_checkpoints(path, keyring))
        except CheckpointError as exc:
            fail(f"verification FAILED: {exc}", 1)
    return expected


def _verify(
    archive_dir: Path | None, paths: list[Path]
) -> tuple[Settings, AuditKeyring, VerifyResult]:
    with session() as (settings, client, keys):
        keyring = keyring_or_exit(settings)
        expect = _expected(paths, keyring)
        reader = AuditReader(client, keys, audit_key(settings))
        result = reader.verify(archive_dir=archive_dir, expect=expect)
    return settings, keyring, result


@audit_app.command("verify")
def verify_command(
    archive_dir: Annotated[
        Path | None,
        typer.Option(
            "--archive-dir",
            metavar="DIR",
            help="Verify from the first event: the archive files, then the live stream.",
        ),
    ] = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            metavar="FILE",
            help="A file of signed checkpoints (`rotator audit checkpoint`); the chain must "
            "still hold every one (repeatable; the file is only read).",
        ),
    ] = None,
    use_checkpoint: Annotated[
        bool,
        typer.Option(
            "--use-checkpoint/--no-checkpoint",
            help="Also check, then update, the automatic checkpoint <state_dir>/"
            + CHECKPOINT_NAME
            + ", which catches events cut from the end since the last verify.",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Walk the hash chain; report the first broken link, gap or reordering (exit 1)."""
    settings = settings_or_exit()
    automatic = settings.state_dir / CHECKPOINT_NAME
    paths = list(checkpoint or []) + ([automatic] if use_checkpoint else [])
    with activity("verifying the audit chain", enabled=not as_json):
        settings, keyring, result = _verify(archive_dir, paths)
    if result.ok and use_checkpoint and result.last_seq > 0:
        with contextlib.suppress(OSError):
            replace_checkpoint(automatic, signed_line(keyring, result.last_seq, result.last_hash))
    if as_json:
        audit_json(result.to_dict())
    else:
        _print_verify(result, archive_dir)
    if not result.ok:
        raise typer.Exit(1)


def _print_verify(result: VerifyResult, archive_dir: Path | None) -> None:
    console = wide_console()
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
        return
    first = result.problems[0]
    console.print(
        f"[red]FAILED[/red] {result.problem_count} problem(s) in {result.checked} events "
        f"({scope}). First: {first.kind} at seq {first.seq} ({first.where}): "
        f"{escape(first.message)}",
        highlight=False,
    )
    table = Table(title="Problems", title_justify="left")
    for name in ("Kind", "Seq", "Stream id", "Where", "Message"):
        table.add_column(name, overflow="fold")
    for p in result.problems:
        table.add_row(p.kind, str(p.seq or "-"), p.id or "-", escape(p.where), escape(p.message))
    console.print(table)


@audit_app.command("checkpoint")
def checkpoint_command(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-O",
            metavar="FILE",
            help="Checkpoint log to append to ('-': stdout). Keep it outside Redis, ideally "
            "append-only or off-host. Default: <state_dir>/" + CHECKPOINTS_NAME,
        ),
    ] = None,
    archive_dir: Annotated[
        Path | None,
        typer.Option(
            "--archive-dir", metavar="DIR", help="Verify from the first event before signing."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify the chain, then sign its head (seq, hash, time) into a checkpoint log.

    `rotator audit verify --checkpoint FILE` later proves that nothing up to each checkpoint was
    rewritten, dropped or erased."""
    settings = settings_or_exit()
    to_stdout = output is not None and str(output) == "-"
    path = output or settings.state_dir / CHECKPOINTS_NAME
    settings, keyring, result = _verify(archive_dir, [] if to_stdout else [path])
    if not result.ok:
        _print_verify(result, archive_dir)
        fail("the chain does not verify: no checkpoint written", 1)
    line = signed_line(keyring, result.last_seq, result.last_hash)
    if to_stdout:
        print_json(json.loads(line))
        return
    try:
        append_checkpoint(path, line)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    if as_json:
        audit_json({"file": str(path), **json.loads(line)})
    else:
        wide_console().print(
            f"checkpoint seq {result.last_seq} hash {result.last_hash[:16]}... appended to {path}",
            highlight=False,
        )
