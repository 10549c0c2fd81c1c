"""Plumbing every command shares: consoles, the failure exit, the time and outcome rendering,
JSON output, time options, and the Runtime the job commands run against.

Human output goes through rich; ``--json`` output is written to stdout directly, with logs on
stderr, so it stays machine-readable.

Anything read from Redis (job fields, audit events, journal steps) may hold text a provider or
an attacker chose: it is shown through ``plain``, as literal text with control characters
stripped, never as rich markup (``[/bold]`` in an error message must print, not crash).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from rotator.config import Settings, load_settings, parse_interval
from rotator.errors import ConfigError
from rotator.redaction import strip_controls

if TYPE_CHECKING:
    from rotator.runtime import Runtime

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]

# One colour per job state / audit outcome; anything else prints plain.
_COLOURS = {
    "completed": "green",
    "success": "green",
    "noop": "cyan",
    "retry": "yellow",
    "retrying": "yellow",
    "applied, verifying": "yellow",
    "unverified": "magenta",
    "conflict": "yellow",
    "failed": "red",
    "dead": "red",
}


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit (2: usage/configuration, by default).

    The message is text, not markup: ``rotator[sandbox]`` or ``[uipath] ...`` print as written.
    Never wrapped at the console width: a one-line error stays one line for log collectors.
    """
    err.print(Text.assemble(("error:", "red"), " ", plain(message)), soft_wrap=True)
    raise typer.Exit(code)


def wide_console() -> Console:
    """Console for long tables: piped output gets a wide page rather than 80 columns."""
    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        return Console(width=180)
    return Console()


def utc_time(value: float | str | None, *, millis: bool = False, zone: str = "") -> str:
    """The one time format: ``YYYY-MM-DD HH:MM:SS[.mmm]<zone>`` in UTC, ``-`` when unknown."""
    if value is None or value == "":
        return "-"
    text = datetime.fromtimestamp(float(value), tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return (text[:-3] if millis else text[:-7]) + zone


def plain(value: object, style: str = "") -> Text:
    """Untrusted text as rich renders it literally: no markup, no control characters."""
    return Text(strip_controls("" if value is None else str(value)), style=style)


def styled(outcome: str | None) -> Text:
    """A job state or audit outcome in its colour; empty (falsy) when there is none."""
    return plain(outcome, _COLOURS.get(outcome or "", ""))


def print_json(data: Any, **dumps: Any) -> None:
    """One JSON document on stdout (``dumps`` are ``json.dumps`` options)."""
    sys.stdout.write(json.dumps(data, **dumps) + "\n")


def actor() -> str:
    """Who the audit log names for a command run by hand."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def settings_or_exit() -> Settings:
    """The settings; an invalid environment exits with 2."""
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc))


def audit_key(config: Settings) -> bytes:
    try:
        return config.audit_key_bytes()
    except ConfigError as exc:
        fail(str(exc))


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


def duration(text: str) -> float:
    try:
        return parse_interval(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def with_runtime(
    body: Callable[[Runtime], Awaitable[T]],
    *,
    needs_targets: bool = True,
    rotating_audit: bool = False,
) -> T:
    """Run ``body(runtime)`` in a fresh loop with a Runtime built for this command.

    Commands that only read jobs (``needs_targets=False``) still work when the targets file
    is broken, with a warning: that is when an operator needs them most.
    """
    from rotator.runtime import ConfigHolder, Runtime, configure_logging

    try:
        config = load_settings()
        # Logs go to stderr, so --json output on stdout stays machine-readable.
        configure_logging(config)
        holder = ConfigHolder(config, lenient=not needs_targets)
    except ConfigError as exc:
        fail(str(exc))
    if holder.last_error is not None:
        err.print(
            Text.assemble(
                ("warning:", "yellow"), " targets file not loaded:\n", plain(holder.last_error)
            )
        )

    async def main() -> T:
        from rotator.keycheck import check_keys

        runtime = Runtime(config, holder)
        try:
            # Keys that do not match the store's are refused before anything is written.
            await check_keys(runtime.redis, runtime.keys, config, rotating_audit=rotating_audit)
            return await body(runtime)
        finally:
            await runtime.aclose()

    from redis.exceptions import RedisError

    from rotator.errors import EmbeddedRedisError
    from rotator.preflight import redis_line

    try:
        return asyncio.run(main())
    except ConfigError as exc:
        fail(str(exc))
    except (RedisError, ConnectionError, EmbeddedRedisError) as exc:
        # One line and exit 2, not redis-py's 80-line traceback.
        fail(redis_line(exc))
