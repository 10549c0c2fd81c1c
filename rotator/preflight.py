"""Startup checks: a worker or beat that cannot work exits before it reports ready.

A worker started without ``ROTATOR_MASTER_KEY`` used to log ``celery@host ready.`` and then
raise on every task while staying up, so ``restart: unless-stopped`` (or a Deployment) never
reacted. Now ``rotator worker`` / ``rotator beat`` run these checks before they exec Celery,
and ``rotator.app`` runs them again from Celery's ``worker_init`` / ``beat_init`` signals, so
``celery -A rotator.app worker`` is held to the same rules. The checks, in order (the first
failure is the one reported)::

    settings     the ROTATOR_* environment parses (Settings)
    keys         master and audit keys present and well-formed (validate_runtime, keyring)
    targets      the targets file loads and validates
    redis        the state store answers PING; one that is unreachable is retried for
                 ROTATOR_REDIS_STARTUP_WAIT (10 s; behind Sentinel at least FAILOVER_WAIT), so
                 a Redis restart or a failover is not a crash loop
    key check    the keys match the store's check values (rotator.keycheck)

A failure is ONE line on stderr (``error: <what>; <how many more>``) and exit code 2: the
process never reports ready. Nothing here prints a key or a Redis password.
"""

from __future__ import annotations

import asyncio
import sys
from typing import NoReturn

from rotator.config import Settings, load_settings
from rotator.errors import ConfigError, StartupRefused
from rotator.redaction import strip_controls

EXIT_CODE = 2
# A closed port refuses at once; a black-holed host must not hold startup much longer.
CONNECT_TIMEOUT = 5.0
STARTUP_RETRY_EVERY = 0.5
# How long a Sentinel deployment may have no reachable master at startup (a failover in
# progress: down-after-milliseconds plus the election, a few seconds) before startup fails.
FAILOVER_WAIT = 20.0


def one_line(exc: ConfigError) -> str:
    """A ConfigError's first issue, and how many more there are."""
    first = str(exc.issues[0]) if exc.issues else str(exc)
    more = len(exc.issues) - 1
    if more > 0:
        first += f" (and {more} more: run `rotator config check`)"
    return first


def redis_line(exc: BaseException) -> str:
    """An unreachable or failing Redis as one line. redis-py's messages name host and port
    (``Error 111 connecting to 127.0.0.1:1. Connection refused.``), never the password."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"cannot reach Redis: {text}"


async def _check_store(settings: Settings) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from rotator.connections import async_redis, is_sentinel
    from rotator.embedded import redis_url_for
    from rotator.keycheck import check_keys
    from rotator.store.keys import Keys

    url = redis_url_for(settings)
    client = async_redis(
        url,
        socket_timeout=min(CONNECT_TIMEOUT, settings.redis_socket_timeout),
        socket_connect_timeout=min(CONNECT_TIMEOUT, settings.redis_socket_timeout),
    )
    # A Redis restarting, or behind Sentinel a failover (no master for a few seconds): a
    # process (re)started meanwhile waits for it rather than exiting into a crash loop.
    loop = asyncio.get_running_loop()
    wait = settings.redis_startup_wait
    deadline = loop.time() + (max(wait, FAILOVER_WAIT) if is_sentinel(url) else wait)
    try:
        while True:
            try:
                await client.ping()
                break
            except (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError):
                if loop.time() + STARTUP_RETRY_EVERY > deadline:
                    raise
                await asyncio.sleep(STARTUP_RETRY_EVERY)
        try:
            await check_keys(client, Keys(settings.key_prefix), settings)
        except ConfigError as exc:  # the webhooks hear of it (rotator.notify.watch)
            from rotator.notify.watch import queue_key_mismatch

            await queue_key_mismatch(client, settings, exc)
            raise
    finally:
        await client.aclose()


def check(*, targets: bool = True) -> Settings:
    """Run every startup check; ``StartupRefused`` names the first that fails."""
    from redis.exceptions import RedisError

    from rotator.audit.keyring import AuditKeyring
    from rotator.crypto import MIN_AUDIT_KEY_BYTES
    from rotator.errors import EmbeddedRedisError

    try:
        settings = load_settings()
        settings.validate_runtime()
        settings.master_keys()
        if AuditKeyring.parse(settings.audit_key_bytes()).too_short():
            raise StartupRefused(
                f"environment: ROTATOR_AUDIT_KEY: every audit key must be at least "
                f"{MIN_AUDIT_KEY_BYTES} bytes"
            )
        if targets:
            from rotator.config import load_targets
            from rotator.providers import provider_names

            load_targets(settings.targets_file, provider_names(), settings)
        asyncio.run(_check_store(settings))
    except ConfigError as exc:
        raise StartupRefused(one_line(exc)) from None
    # ConnectionError: the OS's refusal where redis-py does not wrap it (unix sockets).
    except (RedisError, ConnectionError, TimeoutError, EmbeddedRedisError) as exc:
        raise StartupRefused(redis_line(exc)) from None
    return settings


def check_or_exit(*, targets: bool = True) -> Settings:
    """``check()``, or the one line on stderr and exit code 2."""
    try:
        return check(targets=targets)
    except StartupRefused as exc:
        refuse(str(exc))


def refuse(line: str) -> NoReturn:
    # Plain write, not rich: a console would wrap the line at 80 columns.
    sys.stderr.write(f"error: {' '.join(strip_controls(line).split())}\n")
    sys.stderr.flush()
    raise SystemExit(EXIT_CODE)
