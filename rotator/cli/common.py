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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rotator.config import Settings, load_settings, parse_interval, parse_point_in_time
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


def utc_time(value: float | str | None, *, millis: bool = False, zone: str = "Z") -> str:
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


def parse_time(text: str, now: float | None = None) -> float:
    """``24h``/``90d`` (that long ago), ``now``, unix seconds, or an ISO date/time (UTC if no
    zone is given)."""
    try:
        return parse_point_in_time(text, time.time() if now is None else now)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time: use 24h / 90d (ago), an ISO date/time, or unix seconds"
        ) from None


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


# -- job ids: full or a unique prefix, like git ---------------------------------------------

MIN_ID_PREFIX = 8
_ID_PREFIX = re.compile(rf"^[0-9a-f]{{{MIN_ID_PREFIX},32}}$")
_NAME_LIKE = re.compile(r"^[0-9a-z_-]{1,64}$")  # a mistyped id; anything else is refused


def is_id_prefix(text: str) -> bool:
    """Whether ``text`` could be a job id or a short one (8+ lowercase hex digits)."""
    return _ID_PREFIX.match(text.strip().lower()) is not None


def id_prefix(text: str) -> str:
    """The index pattern for a job id or prefix (hex only, so the text can never be a glob
    that matches more than a prefix); anything else is no job, exit 1."""
    value = text.strip().lower()
    if not _NAME_LIKE.match(value):  # "<id>:journal" names another key: an attack shape
        fail(f"{text!r} is not a job id (32 lowercase hex digits, or a unique prefix)")
    if not _ID_PREFIX.match(value):
        fail(
            f"no such job: {text!r} (a job id is 32 hex digits; a unique prefix of at least "
            f"{MIN_ID_PREFIX} also works)",
            1,
        )
    return value


def _pick(text: str, candidates: list[str]) -> str:
    if not candidates:
        fail(f"no such job: {text}", 1)
    if len(candidates) > 1:
        listed = ", ".join(sorted(candidates)[:10]) + (" ..." if len(candidates) > 10 else "")
        fail(f"job id prefix {text!r} is ambiguous: {len(candidates)} jobs match ({listed})")
    return candidates[0]


def _matches(members: Iterable[Any], prefix: str) -> list[str]:
    found = []
    for member in members:
        name = member.decode() if isinstance(member, bytes) else str(member)
        if name.startswith(prefix):
            found.append(name)
    return found


async def resolve_job_id(runtime: Runtime, text: str) -> str:
    """A job id from a full id or a unique prefix of >= 8 hex digits, against the job index:
    unknown exits 1 ("no such job"), ambiguous exits 2 listing the candidates."""
    prefix = id_prefix(text)
    if len(prefix) == 32:  # a whole id: its record decides (an old job may have left the index)
        return prefix
    index = runtime.store.keys.job_index
    members = [m async for m in runtime.redis.zscan_iter(index, match=f"{prefix}*", count=1000)]
    return _pick(text, _matches((m[0] if isinstance(m, tuple) else m for m in members), prefix))


def resolve_job_id_sync(client: Any, index_key: str, text: str) -> str:
    """``resolve_job_id`` for the commands that use a synchronous Redis client."""
    prefix = id_prefix(text)
    members = client.zscan_iter(index_key, match=f"{prefix}*", count=1000)
    return _pick(text, _matches((m[0] if isinstance(m, tuple) else m for m in members), prefix))


# -- tables that fit: whole ids, folded cells --------------------------------------------------

NARROW = 120  # below this many columns, tables switch to the compact layout


def narrow(console: Console | None = None) -> bool:
    return (console or out).width < NARROW


def fitted_table(
    *columns: tuple[str, int | None], ids: Sequence[str] = (), console: Console | None = None
) -> Table:
    """A table that never cuts a cell: every column folds (no ellipsis).

    ``columns`` are (name, width in the compact layout, or None for a share of what is left);
    ``ids`` name the columns holding ids: whole on one line in a wide terminal, and in a narrow
    one folded at 16 characters, so a job id reads as two even halves and copies whole."""
    compact = narrow(console)
    table = Table(box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD, show_edge=not compact)
    for name, width in columns:
        if compact:
            fixed = 16 if name in ids else width
            table.add_column(name, overflow="fold", width=fixed, ratio=None if fixed else 1)
        else:
            table.add_column(name, overflow="fold", no_wrap=name in ids)
    return table
