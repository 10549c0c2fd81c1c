"""Prometheus metrics a worker process counts itself, and the one-line hooks that count them.

What is counted where:

=========================================  =========  =======================================
metric                                     type       labels
=========================================  =========  =======================================
rotator_rotations_total                    counter    provider, outcome (every attempt's end)
rotator_attempt_duration_seconds           histogram  provider, outcome
rotator_provider_requests_total            counter    provider, method, status (HTTP status
                                                      or the failure's class)
rotator_provider_request_duration_seconds  histogram  provider, method
rotator_retries_total                      counter    provider, error_class, state
rotator_lease_takeovers_total              counter    target (an attempt took over a job whose
                                                      previous attempt's lease expired)
=========================================  =========  =======================================

Gauges read from Redis (credential age, due queue, dead letters, ...) are not here: they
describe the deployment, not a process, and ``rotator exporter`` serves them once
(``rotator.exporter``), so N workers do not report them N times.

Multiprocess safety: a worker may fork (``--pool prefork``), and every child counts into
files under ``PROMETHEUS_MULTIPROC_DIR`` that the scrape sums. prometheus-client picks its
value store when it is first imported, so nothing here imports it at module level: the worker
points the variable at ``<state_dir>/metrics/<pid>`` (``use_multiprocess_dir``) before the first
metric exists. Processes that never serve metrics (``rotator run --once``, the API) count into
memory and nobody reads it; that costs microseconds.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

if TYPE_CHECKING:
    import httpx
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from rotator.models import Job

T = TypeVar("T")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Provider calls take milliseconds to tens of seconds; attempts up to the lease (minutes).
_CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_ATTEMPT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)


class _Instruments:
    """The metric objects, created on first use (after the multiprocess directory is set)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.rotations: Counter = Counter(
            "rotator_rotations", "Rotation attempts by how they ended", ["provider", "outcome"]
        )
        self.attempt_seconds: Histogram = Histogram(
            "rotator_attempt_duration_seconds",
            "Wall time of one rotation attempt",
            ["provider", "outcome"],
            buckets=_ATTEMPT_BUCKETS,
        )
        self.calls: Counter = Counter(
            "rotator_provider_requests",
            "Provider HTTP calls by status (or failure class)",
            ["provider", "method", "status"],
        )
        self.call_seconds: Histogram = Histogram(
            "rotator_provider_request_duration_seconds",
            "Provider HTTP call latency, body read included",
            ["provider", "method"],
            buckets=_CALL_BUCKETS,
        )
        self.retries: Counter = Counter(
            "rotator_retries",
            "Attempts rescheduled, by the error that caused it",
            ["provider", "error_class", "state"],
        )
        self.takeovers: Counter = Counter(
            "rotator_lease_takeovers",
            "Attempts that resumed a job whose previous attempt's lease expired",
            ["target"],
        )


_lock = threading.Lock()
_instruments: _Instruments | None = None


def instruments() -> _Instruments:
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = _Instruments()
    return _instruments


# The names exported by this process and by the exporter: deploy/ rules and dashboards are
# tested against this list (tests/metrics).
WORKER_METRICS = (
    "rotator_rotations_total",
    "rotator_attempt_duration_seconds",
    "rotator_provider_requests_total",
    "rotator_provider_request_duration_seconds",
    "rotator_retries_total",
    "rotator_lease_takeovers_total",
)


# -- multiprocess --------------------------------------------------------------------------


def use_multiprocess_dir(state_dir: Path) -> Path:
    """Point prometheus-client at a fresh per-worker directory (before any metric exists).

    The directory is named after this (the worker's main) process: forked children inherit
    the variable, and a restarted worker starts from zero instead of summing a dead one's
    files, which is what a counter reset looks like to Prometheus anyway."""
    root = state_dir / "metrics"
    path = root / str(os.getpid())
    shutil.rmtree(path, ignore_errors=True)
    for stale in root.glob("*"):  # directories of workers that are gone
        if stale.name.isdigit() and not _alive(int(stale.name)):
            shutil.rmtree(stale, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not ours to clean up
        return True
    return True


def registry() -> CollectorRegistry:
    """What /metrics renders: the files of every process of this worker, or this process."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return REGISTRY
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
    return merged


# -- hooks (each called from one line elsewhere) ------------------------------------------


def observe_rotation(
    process: Callable[[Any, str], Awaitable[T]],
) -> Callable[[Any, str], Coroutine[Any, Any, T]]:
    """Decorates ``Engine.process``: log lines of the attempt carry ``job_id`` (and, once the
    engine binds them, ``target`` and ``provider``); the outcome and duration are counted."""

    @functools.wraps(process)
    async def wrapper(self: Any, job_id: str) -> T:
        started = time.monotonic()
        outcome: object = "error"  # the engine raised (Redis unreachable, cancelled, ...)
        with structlog.contextvars.bound_contextvars(job_id=job_id):
            try:
                result = outcome = await process(self, job_id)
            finally:
                provider = structlog.contextvars.get_contextvars().get("provider") or "unknown"
                structlog.contextvars.unbind_contextvars("target", "provider")
                m = instruments()
                m.rotations.labels(provider, str(outcome)).inc()
                if provider != "unknown":  # an attempt ran (not a refused or quarantined job)
                    elapsed = time.monotonic() - started
                    m.attempt_seconds.labels(provider, str(outcome)).observe(elapsed)
        return result

    return wrapper


def bind_attempt(target: str, provider: str) -> None:
    """The engine knows the target's provider: every later line of the attempt names both."""
    structlog.contextvars.bind_contextvars(target=target, provider=provider)


def lease_taken(job: Job) -> None:
    """``job`` as loaded before its lease was taken: ``running`` means the previous attempt
    died or stalled and its lease expired."""
    if str(job.state) == "running":
        instruments().takeovers.labels(job.target).inc()


def retried(provider: str | None, error_class: str, state: object) -> None:
    instruments().retries.labels(provider or "unknown", error_class, str(state)).inc()


def metered(
    exchange: Callable[..., Awaitable[httpx.Response]],
) -> Callable[..., Coroutine[Any, Any, httpx.Response]]:
    """Wraps ``providers.bounded.exchange`` (client, method, url, cap, provider, ...): one
    provider call's latency, and its HTTP status or the failure's class."""

    async def call(client: Any, method: str, url: str, cap: int, provider: str, *rest: Any) -> Any:
        started = time.monotonic()
        status = "error"
        try:
            response = await exchange(client, method, url, cap, provider, *rest)
            status = str(response.status_code)
            return response
        except asyncio.CancelledError:
            status = "cancelled"  # the call's deadline, or the attempt's lease was lost
            raise
        except BaseException as exc:
            status = type(exc).__name__
            raise
        finally:
            m = instruments()
            m.calls.labels(provider, method.upper(), status).inc()
            m.call_seconds.labels(provider, method.upper()).observe(time.monotonic() - started)

    return call


async def record_dispatch(redis: Any, keys: Any) -> None:
    """The beat dispatcher ran: its time, for the exporter's "no dispatch" gauge and the beat's
    readiness (a stalled beat is otherwise silent: nothing is due, nothing fails)."""
    await redis.set(keys.last_dispatch, repr(time.time()))
