"""``rotator worker``, ``beat`` and ``run --once``: the long-running processes (Celery's, exec'd
in place of this one) and the Celery-free single pass."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from rotator.cli.common import JsonOpt, err, fail, out, print_json, with_runtime
from rotator.cli.progress import activity
from rotator.config import Settings, load_settings

# Job outcomes that make `rotator run --once` exit 1.
_BAD_OUTCOMES = ("failed", "conflict", "dead", "unverified", "quarantined")


def _celery(*args: str) -> None:
    # Our own interpreter and module: nothing here comes from untrusted input.
    argv = [sys.executable, "-m", "celery", "-A", "rotator.app", *args]
    os.execvp(sys.executable, argv)  # noqa: S606


def _check_keys(settings: Settings) -> None:
    """Refuse to start with keys that do not match the store's (one clear error, exit 2)."""
    import asyncio

    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from rotator.embedded import redis_url_for
    from rotator.errors import ConfigError
    from rotator.keycheck import check_keys
    from rotator.store.keys import Keys

    async def check() -> None:
        client = aioredis.Redis.from_url(redis_url_for(settings))
        try:
            await check_keys(client, Keys(settings.key_prefix), settings)
        finally:
            await client.aclose()

    try:
        asyncio.run(check())
    except ConfigError as exc:
        fail(str(exc))
    except (RedisError, OSError) as exc:
        # Redis may come up later: the process checks again before its first write.
        err.print(f"warning: key check skipped, Redis unreachable ({type(exc).__name__})")


def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", metavar="N", help="Worker processes.")
    ] = None,
    loglevel: Annotated[
        str, typer.Option("--loglevel", "-l", metavar="LEVEL", help="Celery log level.")
    ] = "INFO",
) -> None:
    """Start a Celery worker (threads pool; rotations share one event loop per process)."""
    settings = load_settings()
    _check_keys(settings)
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


def beat(
    loglevel: Annotated[
        str, typer.Option("--loglevel", "-l", metavar="LEVEL", help="Celery log level.")
    ] = "INFO",
) -> None:
    """Start Celery beat, which triggers the dispatcher every ROTATOR_DISPATCH_INTERVAL."""
    settings = load_settings()
    _check_keys(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    _celery(
        "beat",
        "--loglevel",
        loglevel,
        "--schedule",
        str(settings.state_dir / "celerybeat-schedule"),
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
