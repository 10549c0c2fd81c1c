"""The ``rotator`` command line. It never prints a secret value: versions and fingerprints only."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from rotator.cli_audit import audit_app, report_command
from rotator.config import load_settings, load_targets, targets_json_schema
from rotator.errors import ConfigError
from rotator.models import Job, Reason
from rotator.providers import provider_names

T = TypeVar("T")

app = typer.Typer(
    name="rotator",
    help="Crash-safe credential rotation on Celery + Redis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Validate and describe the targets file.", no_args_is_help=True)
secrets_app = typer.Typer(help="Push secret versions for 'store' sources.", no_args_is_help=True)
keys_app = typer.Typer(help="Master-key maintenance.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(secrets_app, name="secrets")
app.add_typer(keys_app, name="keys")

out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _with_runtime(body: Callable[[Any], Awaitable[T]], *, needs_targets: bool = True) -> T:
    """Run ``body(runtime)`` in a fresh loop with a Runtime built for this command.

    Commands that only read jobs (``needs_targets=False``) still work when the targets file
    is broken, with a warning: that is when an operator needs them most.
    """
    from rotator.runtime import ConfigHolder, Runtime, configure_logging

    try:
        settings = load_settings()
        # Logs go to stderr, so --json output on stdout stays machine-readable.
        configure_logging(settings)
        holder = ConfigHolder(settings, lenient=not needs_targets)
    except ConfigError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits
    if holder.last_error is not None:
        err.print(f"[yellow]warning:[/yellow] targets file not loaded:\n{holder.last_error}")

    async def main() -> T:
        runtime = Runtime(settings, holder)
        try:
            return await body(runtime)
        finally:
            await runtime.aclose()

    try:
        return asyncio.run(main())
    except ConfigError as exc:
        _fail(str(exc))
        raise


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


# -- config ---------------------------------------------------------------------------------


@config_app.command("check")
def config_check(
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Targets file")] = None,
) -> None:
    """Validate settings and the targets file; exit 1 listing every error."""
    try:
        settings = load_settings()
        settings.validate_runtime()
        path = file or settings.targets_file
        config = load_targets(path, provider_names())
    except ConfigError as exc:
        for issue in exc.issues:
            err.print(f"[red]✗[/red] {issue}", highlight=False)
        raise typer.Exit(1) from None
    scheduled = sum(1 for t in config.targets.values() if t.schedule)
    out.print(
        f"[green]✓[/green] {path}: {len(config.secrets)} secrets, {len(config.targets)} targets "
        f"({scheduled} scheduled)",
        highlight=False,
    )


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the targets file."""
    sys.stdout.write(json.dumps(targets_json_schema(), indent=2) + "\n")


# -- secrets --------------------------------------------------------------------------------


@secrets_app.command("put")
def secrets_put(
    name: str,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="JSON object of fields; '-' or unset: stdin")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Store a new version of a secret (encrypted). Prints its version id and fingerprint."""
    if from_file is None or str(from_file) == "-":
        raw = sys.stdin.read()
        origin = "stdin"
    else:
        try:
            raw = from_file.read_text()
        except OSError as exc:
            _fail(f"cannot read {from_file}: {exc.strerror}")
        origin = str(from_file)
    try:
        fields = json.loads(raw)
    except json.JSONDecodeError as exc:
        _fail(f"{origin} is not valid JSON (line {exc.lineno})")
    if not isinstance(fields, dict) or not fields:
        _fail(f"{origin} must hold a non-empty JSON object of fields")

    async def body(runtime: Any) -> tuple[str, str]:
        if name not in runtime.config.get().secrets:
            _fail(f"no secret named {name!r} in {runtime.settings.targets_file}")
        result: tuple[str, str] = await runtime.store.put_secret_version(name, fields)
        return result

    version, fingerprint = _with_runtime(body)
    if as_json:
        sys.stdout.write(
            json.dumps({"secret": name, "version": version, "fingerprint": fingerprint}) + "\n"
        )
    else:
        out.print(f"{name} {version} fingerprint {fingerprint[:16]}", highlight=False)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret version under the first ROTATOR_MASTER_KEY.

    Put the new key first and keep the old ones listed until this has run on the store."""

    async def body(runtime: Any) -> int:
        total = 0
        for name in runtime.config.get().secrets:
            total += await runtime.store.reseal_versions(name)
        return total

    count = _with_runtime(body)
    out.print(f"re-encrypted {count} secret versions under the newest master key")


# -- jobs -----------------------------------------------------------------------------------


@app.command()
def enqueue(
    target: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log)")] = "",
    version: Annotated[
        str | None, typer.Option("--version", help="Roll to this stored version")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Queue an on-demand rotation; prints the job id (an existing queued/running job's id if
    one is already in flight for the target)."""

    async def body(runtime: Any) -> tuple[str, bool]:
        try:
            result: tuple[str, bool] = await runtime.enqueue(
                target, reason=Reason.ON_DEMAND, actor=_actor(), note=reason, version=version
            )
        except KeyError as exc:
            _fail(str(exc.args[0]))
            raise
        return result

    job_id, created = _with_runtime(body)
    if as_json:
        sys.stdout.write(
            json.dumps({"job_id": job_id, "created": created, "target": target}) + "\n"
        )
    else:
        note = "" if created else " (already queued or running)"
        out.print(f"{job_id}{note}", highlight=False)


@app.command()
def jobs(
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    state: Annotated[str | None, typer.Option("--state")] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Only dead-lettered jobs")] = False,
    quarantined: Annotated[bool, typer.Option("--quarantined")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent jobs, newest first; --dead shows the dead-letter set."""

    async def body(runtime: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if quarantined:
            return [], await runtime.store.quarantined()
        if dead:
            ids = await runtime.store.dead_jobs(limit)
            rows = [(await runtime.store.load_job(i)).public() for i in ids]
            return rows, {}
        found: list[dict[str, Any]] = []
        for item in await runtime.store.recent_jobs(limit):
            if isinstance(item, Job) and (state is None or str(item.state) == state):
                found.append(item.public())
        return found, {}

    rows, quarantine = _with_runtime(body, needs_targets=False)
    if quarantined:
        if as_json:
            sys.stdout.write(json.dumps(quarantine, indent=2) + "\n")
            return
        table = Table("job", "reason", "quarantined at")
        for job_id, record in quarantine.items():
            table.add_row(job_id, str(record.get("reason")), _ts(record.get("at")))
        out.print(table)
        return
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table("job", "target", "reason", "state", "attempts", "version", "updated", "error")
    for row in rows:
        table.add_row(
            row["id"],
            row["target"],
            row["reason"],
            _state_style(row["state"]),
            str(row["attempts"]),
            row["secret_version"] or "-",
            _ts(row["updated_at"]),
            (row["last_error_class"] or "")
            + (": " + row["last_error"] if row["last_error"] else ""),
        )
    out.print(table)


@app.command()
def job(job_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One job with its step journal."""

    async def body(runtime: Any) -> dict[str, Any]:
        record: dict[str, Any] = (await runtime.store.load_job(job_id)).public()
        record["journal"] = await runtime.store.journal(job_id)
        return record

    try:
        record = _with_runtime(body, needs_targets=False)
    except Exception as exc:  # noqa: BLE001 - unknown or malformed id
        _fail(str(exc))
        raise
    if as_json:
        sys.stdout.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
        return
    for key in (
        "id",
        "target",
        "reason",
        "actor",
        "state",
        "attempts",
        "secret_version",
        "last_error_class",
        "last_error",
    ):
        out.print(f"[bold]{key}[/bold]: {record.get(key) or '-'}", highlight=False)
    table = Table("step", "recorded")
    for step, data in sorted(record["journal"].items(), key=lambda kv: kv[1].get("at", 0)):
        table.add_row(step, json.dumps(data, sort_keys=True))
    out.print(table)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each target's current version, last rotation, next due time and state."""

    async def body(runtime: Any) -> list[dict[str, Any]]:
        config = runtime.config.get()
        names = sorted(config.targets)
        states = await runtime.store.target_states(names)
        due = await runtime.store.next_due(names)
        rows = []
        for name in names:
            state = states.get(name, {})
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
                }
            )
        return rows

    rows = _with_runtime(body)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table("target", "provider", "current", "pending", "rotated", "next due", "last outcome")
    for row in rows:
        table.add_row(
            row["target"],
            row["provider"],
            row["current"] or "-",
            row["pending"] or "-",
            _ts(row["rotated_at"]),
            _ts(row["next_due"]),
            _state_style(row["last_outcome"] or "-"),
        )
    out.print(table)


# -- processes ------------------------------------------------------------------------------


def _celery(*args: str) -> None:
    # Our own interpreter and module: nothing here comes from untrusted input.
    argv = [sys.executable, "-m", "celery", "-A", "rotator.app", *args]
    os.execvp(sys.executable, argv)  # noqa: S606


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c")] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO",
) -> None:
    """Start a Celery worker (threads pool; rotations share one event loop per process)."""
    settings = load_settings()
    _celery(
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency or settings.worker_concurrency),
        "--queues",
        settings.queue,
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    )


@app.command()
def beat(loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO") -> None:
    """Start Celery beat, which triggers the dispatcher every ROTATOR_DISPATCH_INTERVAL."""
    settings = load_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    _celery(
        "beat",
        "--loglevel",
        loglevel,
        "--schedule",
        str(settings.state_dir / "celerybeat-schedule"),
    )


@app.command("run")
def run_once(
    once: Annotated[
        bool, typer.Option("--once", help="Dispatch what is due, process, exit")
    ] = False,
    max_wait: Annotated[
        float, typer.Option("--max-wait", help="Wait this long for scheduled retries")
    ] = 60.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Without Celery: dispatch what is due and process every queued job in this process.
    Exits 1 if any job failed, conflicted or was dead-lettered."""
    if not once:
        _fail("only 'rotator run --once' is supported; use 'rotator worker' and 'rotator beat'")
    from rotator.runtime import run_until_idle

    summary = _with_runtime(lambda runtime: run_until_idle(runtime, max_wait=max_wait))
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        out.print(
            " ".join(f"{k}={v}" for k, v in sorted(summary.items())) or "nothing due",
            highlight=False,
        )
    bad = sum(summary.get(k, 0) for k in ("failed", "conflict", "dead", "quarantined"))
    raise typer.Exit(1 if bad else 0)


@app.command()
def sandbox(
    port: Annotated[int, typer.Option("--port")] = 8765,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    seed: Annotated[int | None, typer.Option("--seed")] = None,
) -> None:
    """Serve the local imitation of all provider APIs (with fault injection)."""
    from rotator.sandbox.server import serve

    serve(host=host, port=port, seed=seed)


@app.command()
def demo() -> None:
    """Embedded Redis + sandbox + worker + beat: rotations, a conflict, a retried fault."""
    from rotator.demo import run_demo

    raise typer.Exit(run_demo())


def _ts(value: Any) -> str:
    if value in (None, ""):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(value)))


def _state_style(state: str) -> str:
    colour = {
        "completed": "green",
        "success": "green",
        "conflict": "yellow",
        "retrying": "yellow",
        "failed": "red",
        "dead": "red",
    }.get(state)
    return f"[{colour}]{state}[/{colour}]" if colour else state


# The audit review commands live in their own module.
app.add_typer(audit_app, name="audit")
app.command("report")(report_command)


def main() -> None:
    app()
