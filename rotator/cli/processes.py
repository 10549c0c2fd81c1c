"""``rotator worker``, ``beat`` and ``run --once``: the long-running processes (Celery's, exec'd
in place of this one) and the Celery-free single pass."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from rotator import preflight
from rotator.cli.common import JsonOpt, fail, out, print_json, with_runtime
from rotator.cli.progress import activity

# Job outcomes that make `rotator run --once` exit 1.
_BAD_OUTCOMES = ("failed", "conflict", "dead", "unverified", "quarantined")


def _celery(*args: str) -> None:
    # Our own interpreter and module: nothing here comes from untrusted input.
    argv = [sys.executable, "-m", "celery", "-A", "rotator.app", *args]
    os.execvp(sys.executable, argv)  # noqa: S606


# `rotator worker -E --autoscale 4,1 --hostname x@%h`: options rotator does not define are
# Celery's; the command is registered with these click settings (rotator.cli) and hands
# ctx.args through unchanged.
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", metavar="N", help="Worker processes.")
    ] = None,
    loglevel: Annotated[
        str, typer.Option("--loglevel", "-l", metavar="LEVEL", help="Celery log level.")
    ] = "INFO",
) -> None:
    """Start a Celery worker (threads pool; rotations share one event loop per process).
    Options rotator does not define (-E, --autoscale, --hostname ...) are passed to Celery."""
    # A worker that cannot work exits here with one line, before Celery reports ready.
    settings = preflight.check_or_exit()
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
        *ctx.args,
    )


def beat(
    ctx: typer.Context,
    loglevel: Annotated[
        str, typer.Option("--loglevel", "-l", metavar="LEVEL", help="Celery log level.")
    ] = "INFO",
) -> None:
    """Start Celery beat, which triggers the dispatcher every ROTATOR_DISPATCH_INTERVAL.
    Options rotator does not define are passed to Celery."""
    settings = preflight.check_or_exit()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    _celery(
        "beat",
        "--loglevel",
        loglevel,
        "--schedule",
        str(settings.state_dir / "celerybeat-schedule"),
        *ctx.args,
    )


def run_once(
    once: Annotated[
        bool, typer.Option("--once", help="Dispatch what is due, process, exit")
    ] = False,
    max_wait: Annotated[
        float,
        typer.Option("--max-wait", metavar="SECONDS", help="Wait this long for scheduled retries"),
    ] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Without Celery: dispatch what is due and process every queued job in this process.
    Exits 1 if any job failed, conflicted or was dead-lettered."""
    if not once:
        fail("only 'rotator run --once' is supported; use 'rotator worker' and 'rotator beat'")
    from rotator.runtime import run_until_idle

    with activity("processing due jobs", enabled=not as_json):
        summary = with_runtime(lambda runtime: run_until_idle(runtime, max_wait=max_wait))
    if as_json:
        print_json(summary)
    else:
        out.print(
            " ".join(f"{k}={v}" for k, v in sorted(summary.items())) or "nothing due",
            highlight=False,
        )
    bad = sum(summary.get(k, 0) for k in _BAD_OUTCOMES)
    raise typer.Exit(1 if bad else 0)
