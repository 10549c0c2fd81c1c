"""Per-provider-host circuit breaking: a brownout must not become a self-made rate-limit block.

Every attempt's provider calls go through one breaker per provider host (``adobe@host:port``).
Its state lives in Redis (``rotator.store.breaker``), so every worker process shares it::

    closed --(>= failure_ratio of >= min_calls calls in a window fail)--> open
    open   --(probe_interval passed: ONE attempt is let through)--------> half-open
    half-open --(the probe succeeds)--> closed      --(it fails)--> open again

While open, attempts fail fast with ``CircuitOpen`` (a ``TransientError`` whose ``retry_after``
is the next probe time): no call is made, nothing may have applied, and ``rotator.retry``
reschedules the job like any other transient failure, within its time budget. Only transient
failures (5xx, 429, transport) count against a host: a 4xx is the host answering.

The engine sees the breaker through the ``Breaker`` Protocol; ``NoBreaker`` is the default for
tests and for ``ROTATOR_BREAKER_ENABLED=false``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import structlog

from rotator.errors import CircuitOpen, TransientError

log = structlog.get_logger("rotator.breaker")


@dataclass(frozen=True)
class BreakerPolicy:
    window: float = 60.0  # seconds of calls counted together
    min_calls: int = 10  # fewer calls in a window never open the breaker
    failure_ratio: float = 1.0  # per attempt: a degraded host (some calls fail) stays closed
    probe_interval: float = 30.0  # while open: one probe per this many seconds


class Breaker(Protocol):
    async def admit(self, host: str) -> float | None:
        """None to go ahead (closed, or this caller is the half-open probe); else the seconds
        until the next probe may be tried."""
        ...

    async def record(self, host: str, ok: bool) -> None:
        """The outcome of an admitted attempt's calls to ``host``."""
        ...


class NoBreaker:
    async def admit(self, host: str) -> float | None:
        return None

    async def record(self, host: str, ok: bool) -> None:
        return None


def breaker_host(provider: str, base_url: str) -> str:
    """The breaker's name for a target: its provider and its base URL's host and port."""
    netloc = urlsplit(base_url).netloc.rpartition("@")[2].lower()
    return f"{provider}@{netloc or '-'}"


class Admitted(Protocol):
    """An attempt (``rotator.attempt.Attempt``): it remembers the host it was admitted to."""

    breaker_host: str | None


async def admit(breaker: Breaker, provider: str, base_url: str) -> str:
    """The attempt's breaker host, or ``CircuitOpen`` (no call made) while it is open."""
    host = breaker_host(provider, base_url)
    wait = await breaker.admit(host)
    if wait is not None:
        raise CircuitOpen(
            f"circuit open: {provider} fails most calls; next probe in {wait:.0f}s",
            provider=provider,
            retry_after=wait,
        )
    return host


async def note_outcome(breaker: Breaker, attempt: Admitted, error: BaseException | None) -> None:
    """Count an admitted attempt against its host. Only transient provider failures are the
    host failing: a 4xx is the host answering, and an attempt refused by the breaker (or ended
    before it was admitted) made no call and is not counted."""
    if attempt.breaker_host is None:
        return
    failed = isinstance(error, TransientError) and not isinstance(error, CircuitOpen)
    try:
        await breaker.record(attempt.breaker_host, not failed)
    except Exception as exc:  # the breaker is advice: it must never decide how a job ends
        log.warning("circuit breaker not updated", error=type(exc).__name__)
    attempt.breaker_host = None


__all__ = [
    "Admitted",
    "Breaker",
    "BreakerPolicy",
    "NoBreaker",
    "admit",
    "breaker_host",
    "note_outcome",
]
