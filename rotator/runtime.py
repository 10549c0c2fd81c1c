"""Per-process wiring: settings, Redis, store, audit, providers, engine; one event loop.

A Celery worker process gets one ``Runtime``: one asyncio loop on a background thread, one
Redis connection pool, one pooled HTTP client shared by every rotation in flight. Celery's
worker threads hand coroutines to that loop, so nothing creates a client or an event loop per
task. Provider rate budgets and bearer tokens are shared wider, by every process through Redis
(``rotator.store.ratelimit``, ``rotator.store.tokens``): N workers together keep one
provider's documented limits and mint one token per credential set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from rotator.audit import AuditEvent, AuditLog
from rotator.config import (
    Settings,
    TargetsConfig,
    TargetsFile,
    TargetSpecModel,
    load_settings,
)
from rotator.config_snapshot import SnapshotCache, load_targets_cached
from rotator.connections import async_redis, sync_redis
from rotator.crypto import Vault
from rotator.embedded import redis_url_for
from rotator.engine import Engine, EngineOptions, Outcome
from rotator.errors import ConfigError
from rotator.models import Reason
from rotator.notify.queue import QueueNotifier
from rotator.providers import load_provider, provider_names
from rotator.providers.base import Provider, ProviderContext
from rotator.redaction import LogScrubber, hold_process_keys
from rotator.retry import RetryPolicy
from rotator.store import Durability, RotatorStore
from rotator.store.breaker import breaker_for
from rotator.store.keys import Keys
from rotator.store.ratelimit import RedisRateLimiter
from rotator.store.tokens import SharedTokenCache
from rotator.suggest import did_you_mean

if TYPE_CHECKING:
    from rotator.notify.deliver import Deliverer

T = TypeVar("T")
log = structlog.get_logger("rotator.runtime")


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    # The keys as configured (never generated here): no log line may carry them.
    hold_process_keys(
        *(_secret_value(getattr(settings, name, None)) for name in ("master_key", "audit_key"))
    )
    # Celery replaces sys.stderr with a proxy that re-logs every line as
    # "[WARNING/MainProcess] ...": write to the real stream so a line keeps its own level.
    stream = sys.__stderr__ or sys.stderr
    as_json = settings.log_json
    if as_json is None:  # people read a terminal; log shippers read everything else
        as_json = not stream.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            LogScrubber(),  # last line of defence: held secrets and credential shapes
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )


class DispatchChatter(logging.Filter):
    """Celery's lines about each dispatch and notification pass (beat's "Sending due task",
    the worker's "Task received/succeeded"), every few seconds, are DEBUG lines: shown only
    at DEBUG."""

    TASKS = ("rotator.dispatch", "rotator.notify")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not any(task in message for task in self.TASKS):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def quiet_dispatch_chatter() -> None:
    """Celery configures handlers, never loggers' filters: installing these once sticks."""
    for name in ("celery.beat", "celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).addFilter(DispatchChatter())


def _secret_value(value: Any) -> str:
    """A setting's value, plain or pydantic ``SecretStr``."""
    reveal = getattr(value, "get_secret_value", None)
    return str(reveal() if callable(reveal) else value or "")


class ConfigHolder:
    """The targets file, reloaded when it changes; a bad reload keeps the last good config."""

    def __init__(
        self,
        settings: Settings,
        check_interval: float = 1.0,
        *,
        lenient: bool = False,
        snapshots: SnapshotCache | None = None,
    ) -> None:
        """``lenient``: start even if the file is invalid (with no targets), for read-only
        commands such as ``rotator jobs`` that an operator needs most when things are broken.
        ``snapshots``: validated files shared through Redis (``rotator.config_snapshot``).
        """
        self._settings = settings
        self._interval = check_interval
        self._checked = 0.0
        self._snapshots = snapshots
        self.generation = 0
        self.last_error: ConfigError | None = None
        try:
            self._config = self._load()
        except ConfigError as exc:
            if not lenient:
                raise
            self.last_error = exc
            self._config = TargetsConfig(settings.targets_file, TargetsFile(), mtime=-2.0)

    def _load(self) -> TargetsConfig:
        settings = self._settings
        return load_targets_cached(
            settings.targets_file, provider_names(), settings, self._snapshots
        )

    def get(self) -> TargetsConfig:
        now = time.monotonic()
        if now - self._checked >= self._interval:
            self._checked = now
            self._maybe_reload()
        return self._config

    def _maybe_reload(self) -> None:
        try:
            mtime = self._settings.targets_file.stat().st_mtime
        except OSError:
            mtime = -1.0
        if mtime == self._config.mtime:
            return
        try:
            self._config = self._load()
            self.generation += 1
            self.last_error = None
            log.info("targets file reloaded", targets=len(self._config.targets))
        except ConfigError as exc:
            if self.last_error is None or str(self.last_error) != str(exc):
                log.error(
                    "targets file reload failed; keeping the last good configuration",
                    errors=[str(i) for i in exc.issues],
                )
            self.last_error = exc


class Runtime:
    """Everything one process needs; build it inside the event loop that will use it."""

    def __init__(self, settings: Settings, config: ConfigHolder) -> None:
        settings.validate_runtime()
        self.settings = settings
        self.config = config
        self.keys = Keys(settings.key_prefix)
        # Blocking pool: a burst beyond the pool waits for a connection instead of failing
        # with "Too many connections"; headroom covers the audit writer and dispatch.
        # socket_timeout: a Redis that stops answering (half-open connection, paused VM) fails
        # the command instead of hanging the attempt forever; health checks find dead pooled
        # connections before a command is sent on them.
        # A sentinel:// URL gives the same pool, pointed at whichever node is the master.
        self.redis = async_redis(
            redis_url_for(settings),
            blocking=True,
            max_connections=settings.max_in_flight + 32,
            timeout=30,
            socket_timeout=settings.redis_socket_timeout,
            socket_connect_timeout=settings.redis_socket_timeout,
            health_check_interval=settings.redis_health_check_interval,
        )
        self.vault = Vault(settings.master_keys(), settings.audit_key_bytes())
        self.store = RotatorStore(
            self.redis,
            self.keys,
            self.vault,
            Durability(settings.redis_min_replicas, settings.redis_replica_timeout),
        )
        # Spooling to state_dir keeps events written while Redis is unreachable (fail closed).
        self.audit = AuditLog.from_settings(self.redis, settings)
        self.providers = ProviderContext(
            timeout=settings.http_timeout,
            max_connections=settings.max_in_flight,
            max_response_bytes=settings.http_max_response_bytes,
            url_policy=settings.url_policy(),
            rate_limiter=RedisRateLimiter(self.redis, self.keys),
            # The lock outlives any mint: a send is bounded by the HTTP timeout, and the
            # mint's own rate-budget wait by the lease.
            tokens=SharedTokenCache(
                self.redis,
                self.keys,
                self.vault,
                lock_ttl=max(30.0, 2 * settings.http_timeout, settings.lease_ttl),
            ),
        )
        self._adapters: dict[str, Provider] = {}
        self.notifier = QueueNotifier(self.store, config.get, max_queued=settings.notify_max_queued)
        self._deliverer: Deliverer | None = None
        self.engine = Engine(
            self.store,
            self.audit,
            self.provider,
            config.get,
            EngineOptions(
                lease_ttl=settings.lease_ttl,
                remote_write_time=settings.http_timeout,
                breaker=breaker_for(settings, self.redis, self.keys),
                failure_retry_interval=settings.failure_retry_interval,
                notifier=self.notifier,
                retry=RetryPolicy(
                    max_attempts=settings.max_attempts,
                    budget=settings.retry_budget,
                    base_delay=settings.retry_base_delay,
                    max_delay=settings.retry_max_delay,
                    verify_limit=settings.verify_limit,
                ),
            ),
        )
        self._limit = asyncio.Semaphore(settings.max_in_flight)
        self._synced_generation = -1
        self._synced_targets: Mapping[str, TargetSpecModel] | None = None  # as last synced

    def provider(self, name: str) -> Provider:
        adapter = self._adapters.get(name)
        if adapter is None:
            adapter = self._adapters[name] = load_provider(name, self.providers)
        return adapter

    def deliverer(self) -> Deliverer:
        """Sends queued notifications (``rotator.notify.deliver``); made on first use."""
        if self._deliverer is None:
            from rotator.notify.deliver import Deliverer, WebhookClient

            sender = WebhookClient(self.settings.url_policy(), timeout=self.settings.notify_timeout)
            self._deliverer = Deliverer(self.store, self.config.get, sender)
        return self._deliverer

    async def process(self, job_id: str) -> Outcome:
        async with self._limit:
            return await self.engine.process(job_id)

    async def ensure_schedule_synced(self) -> None:
        """The whole schedule at start-up; after a reload, only the targets it changed."""
        from rotator.dispatch import resync_changed, sync_schedule

        config = self.config.get()
        if self._synced_generation != self.config.generation:
            if self._synced_targets is None:
                added = await sync_schedule(self.store, config)
            else:
                added, resynced = await resync_changed(self.store, self._synced_targets, config)
                log.info("schedule resynced", changed_targets=resynced)
            self._synced_generation = self.config.generation
            self._synced_targets = config.targets
            if added:
                log.info("schedule synced", new_targets=len(added))
                from rotator.adopt import adopt_targets

                await adopt_targets(self, added)

    async def enqueue(
        self,
        target: str,
        *,
        reason: Reason = Reason.ON_DEMAND,
        actor: str = "api",
        note: str = "",
        version: str | None = None,
    ) -> tuple[str, bool]:
        """Create an on-demand job (or return the target's queued/running one)."""
        config = self.config.get()
        spec = config.targets.get(target)
        if spec is None:
            hint = did_you_mean(target, config.targets)
            raise KeyError(f"no target named {target!r} in {config.path}{hint}")
        job_id, created = await self.store.create_job(
            target, reason, actor, note=note, requested_version=version
        )
        if created:
            await self.audit.emit(
                AuditEvent(
                    "job.enqueued",
                    job_id=job_id,
                    target=target,
                    provider=spec.provider,
                    actor=actor,
                    reason=str(reason),
                    secret_version=version,
                    detail=note or None,
                )
            )
        return job_id, created

    async def aclose(self) -> None:
        if self._deliverer is not None:
            await self._deliverer.aclose()
        await self.providers.aclose()
        await self.audit.aclose()
        await self.redis.aclose()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it is a dependency on Linux and macOS): less CPU per
    rotation in the loop itself; the stdlib loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    """A private event loop on a daemon thread; sync callers submit coroutines to it."""

    def __init__(self) -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="rotator-loop")
        self._thread.daemon = True
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    # What a caller waits at most when it names no bound of its own (Celery's hard task limit).
    default_timeout: float = 900.0

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait at most ``timeout`` seconds (default
        ``default_timeout``). On timeout the coroutine is cancelled, so it stops holding the
        loop's resources, and ``TimeoutError`` is raised to the (Celery) thread, which is free
        again: the threads pool never enforces ``task_time_limit`` itself."""
        future = self.submit(coro)
        try:
            return future.result(self.default_timeout if timeout is None else timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop, wait for its thread, release the loop's resources."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


_process_lock = threading.Lock()
_process: tuple[LoopThread, Runtime] | None = None
_process_pid: int | None = None
# One loop thread per process, kept across failed builds: a task that fails because Redis is
# down must not leave a loop and its thread behind on every call (50 failing calls used to
# leave 50 threads).
_loop: LoopThread | None = None
_loop_pid: int | None = None


def _process_loop() -> LoopThread:
    global _loop, _loop_pid
    if _loop is None or _loop_pid != os.getpid():
        _loop, _loop_pid = LoopThread(), os.getpid()
    return _loop


def snapshot_cache(settings: Settings) -> SnapshotCache:
    """Where workers and beat share validated targets files: a process (re)loading 100,000
    targets skips the YAML parse and the URL policy. Its client comes from the one place that
    knows every URL form (``rotator.connections``: Sentinel included)."""
    client = sync_redis(
        redis_url_for(settings),
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_socket_timeout,
    )
    return SnapshotCache(client, Keys(settings.key_prefix), settings)


def process_runtime() -> tuple[LoopThread, Runtime]:
    """The process-wide runtime (created on first use; re-created after a fork). A build that
    fails (Redis unreachable, keys refused) closes what it opened and is retried next call."""
    global _process, _process_pid
    with _process_lock:
        if _process is None or _process_pid != os.getpid():
            settings = load_settings()
            configure_logging(settings)
            holder = ConfigHolder(settings, snapshots=snapshot_cache(settings))
            loop = _process_loop()

            async def build() -> Runtime:
                from rotator.keycheck import check_keys

                runtime = Runtime(settings, holder)
                try:
                    await check_keys(runtime.redis, runtime.keys, settings)  # before any write
                except BaseException:
                    await runtime.aclose()  # its pools and clients, not just the loop
                    raise
                return runtime

            _process = (loop, loop.run(build()))
            _process_pid = os.getpid()
        return _process


def shutdown_process_runtime() -> None:
    """Close the process runtime and stop its loop thread (tests, orderly shutdown)."""
    global _process, _process_pid, _loop, _loop_pid
    with _process_lock:
        if _process is not None and _process_pid == os.getpid():
            loop, runtime = _process
            loop.run(runtime.aclose(), timeout=10)
        if _loop is not None and _loop_pid == os.getpid():
            _loop.close()
        _process = _process_pid = _loop = _loop_pid = None


async def deliver_locally(runtime: Runtime, job_ids: Sequence[str]) -> list[Outcome]:
    return list(await asyncio.gather(*(runtime.process(j) for j in job_ids)))


async def run_until_idle(runtime: Runtime, *, max_wait: float = 60.0) -> dict[str, int]:
    """``rotator run --once``: dispatch and process in-process until nothing is due.

    Jobs rescheduled for a retry within ``max_wait`` seconds are waited for; later ones stay
    queued for the next run.
    """
    from rotator.dispatch import dispatch_pass

    counts: dict[str, int] = {}
    deadline = time.time() + max_wait
    batch: list[str] = []

    async def collect(job_ids: Sequence[str]) -> None:
        batch.extend(job_ids)

    while True:
        batch.clear()
        await dispatch_pass(runtime, collect)
        if batch:
            for outcome in await deliver_locally(runtime, list(batch)):
                counts[str(outcome)] = counts.get(str(outcome), 0) + 1
            continue
        soonest = await runtime.store.soonest_due()
        if soonest is None or soonest > deadline:
            break
        await asyncio.sleep(max(0.05, min(1.0, soonest - time.time())))
    # Notifications queued by this run (a delivery retried later stays queued for the next).
    try:
        from rotator.notify.watch import watch

        await watch(runtime)
        await runtime.deliverer().drain()
    except Exception as exc:  # a receiver's trouble never fails the run
        log.warning("notification delivery failed", error=type(exc).__name__)
    # Retries and deferrals were intermediate; report where jobs ended up.
    counts.pop(str(Outcome.RETRY), None)
    counts.pop(str(Outcome.DEFERRED), None)
    counts.pop(str(Outcome.SKIPPED), None)
    return counts
