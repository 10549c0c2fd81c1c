"""Per-provider-host circuit breaking: a brownout must not become a self-made rate-limit block.

Every attempt's provider calls go through one breaker per provider host (``adobe@host:port``).
Its state lives in Redis (``rotator.store.breaker``), so every worker process shares it::

    closed --(>= failure_ratio of >= min_calls calls in a window fail)--> open
    open   --(probe_interval passed: ONE attempt is let through)--------> half-open
    half-open --(the probe's calls mostly succeed)--> closed   --(they do not)--> open again

It counts *calls*, not attempts: ``send`` tallies each provider call of the running attempt
(``tally_call``) and the attempt adds its tally to the host's window when it ends (one script
call per attempt, or fewer: see ``BreakerPolicy.trust_closed``). A degraded host (10% 5xx)
fails most multi-call attempts but few calls, and must stay closed; a host failing most calls
is down, and opens it.

While open, attempts fail fast with ``CircuitOpen`` (a ``TransientError`` whose ``retry_after``
is the next probe time): no call is made, nothing may have applied, and ``rotator.retry``
reschedules the job like any other transient failure, within its time budget. Only transient
failures (5xx, 429, transport) count against a host: a 4xx is the host answering.

The engine sees the breaker through the ``Breaker`` Protocol; ``NoBreaker`` is the default for
tests and for ``ROTATOR_BREAKER_ENABLED=false``.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import structlog

from rotator.errors import CircuitOpen

log = structlog.get_logger("rotator.breaker")


@dataclass(frozen=True)
class BreakerPolicy:
    window: float = 60.0  # seconds of calls counted together
    min_calls: int = 10  # fewer calls in a window never open the breaker
    failure_ratio: float = 0.5  # of calls: "fails most calls"
    probe_interval: float = 30.0  # while open: one probe per this many seconds
    # A process trusts a closed breaker this long without asking Redis, and adds its attempts'
    # successful calls to the window together, this often: two script calls per rotation
    # become about one per second per host. A failure is sent at once (with the successes
    # held) and makes the next attempt ask Redis again, so an opening is never held back.
    trust_closed: float = 1.0


class Breaker(Protocol):
    async def admit(self, host: str) -> float | None:
        """None to go ahead (closed, or this caller is the half-open probe); else the seconds
        until the next probe may be tried."""
        ...

    async def record(self, host: str, calls: int, failures: int) -> None:
        """An admitted attempt's provider calls to ``host`` and how many failed transiently."""
        ...


class NoBreaker:
    async def admit(self, host: str) -> float | None:
        return None

    async def record(self, host: str, calls: int, failures: int) -> None:
        return None


@dataclass
class CallTally:
    """The running attempt's provider calls, and how many the host failed (5xx, 429, transport)."""

    calls: int = 0
    failures: int = 0


_tally: contextvars.ContextVar[CallTally | None] = contextvars.ContextVar(
    "rotator_breaker_tally", default=None
)


def start_tally() -> CallTally:
    """Count the provider calls made from here on in this context (one attempt)."""
    tally = CallTally()
    _tally.set(tally)
    return tally


def tally_call(host_failed: bool) -> None:
    """One provider call ended; ``host_failed`` for a 5xx, a 429 or a transport failure.
    Outside an attempt (CLI tools, tests of an adapter alone) nothing is counted."""
    tally = _tally.get()
    if tally is not None:
        tally.calls += 1
        tally.failures += host_failed


def host_failed(status: int) -> bool:
    """A status that is the host failing, not the host answering."""
    return status >= 500 or status == 429


def breaker_host(provider: str, base_url: str) -> str:
    """The breaker's name for a target: its provider and its base URL's host and port."""
    netloc = urlsplit(base_url).netloc.rpartition("@")[2].lower()
    return f"{provider}@{netloc or '-'}"


class Admitted(Protocol):
    """An attempt (``rotator.attempt.Attempt``): it remembers the host it was admitted to and
    tallies its calls."""

    breaker_host: str | None
    calls: CallTally | None


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


async def note_outcome(breaker: Breaker, attempt: Admitted) -> None:
    """Add an admitted attempt's call tally to its host's window. Only transient failures are
    the host failing: a 4xx is the host answering; an attempt refused by the breaker (or ended
    before it was admitted, or before its first call) made no call and is not counted."""
    host, tally = attempt.breaker_host, attempt.calls
    attempt.breaker_host = attempt.calls = None
    if host is None or tally is None or tally.calls == 0:
        return
    try:
        await breaker.record(host, tally.calls, tally.failures)
    except Exception as exc:  # the breaker is advice: it must never decide how a job ends
        log.warning("circuit breaker not updated", error=type(exc).__name__)


__all__ = [
    "Admitted",
    "Breaker",
    "BreakerPolicy",
    "CallTally",
    "NoBreaker",
    "admit",
    "breaker_host",
    "host_failed",
    "note_outcome",
    "start_tally",
    "tally_call",
]
