"""Client-side rate budgets: never send a request that would break a provider's documented limit.

A provider that blocks over-eager clients (Commerce Layer blocks the IP) must be budgeted by the
client, and the budget belongs to the client as the provider sees it (one IP, one application),
not to one process: N worker processes that each kept their own budget would send N times the
limit. So the budget is split in two:

* ``RateLimiter`` (a small Protocol) answers one question atomically: may one more request go
  under these budgets now? If so it is counted at once; if not, nothing is counted and the
  answer is how long until it would fit. The runtime injects ``rotator.store.ratelimit.
  RedisRateLimiter`` (one Lua script, shared by every process); ``LocalRateLimiter`` is the
  in-process one for tests and for CLI commands that run without Redis.
* ``RateBudget`` is what an adapter calls before each request: it asks the limiter and waits
  the delay it returns, but only while the attempt's lease covers the wait
  (``rotator.lease.call_time_left``). A delay beyond that ends the attempt with
  ``RateBudgetExhausted`` (nothing sent; ``retry_after`` is the delay) rather than holding a
  lease and a worker slot for a slot that may be a minute away.

Both keep a *sliding log* of grant times per budget (``{host}:{method class}``), not a
refilling token bucket: a bucket of 50 refilling at 200/min would admit 83 requests in one
10 s window, while the log guarantees that no window of any length in the limits table ever
holds more than its limit. ``slack`` widens every window: a request reaches the provider a
little after its grant (pool wait, network, the provider's own queue), and without the slack
those delays could squeeze a few requests of two bursts into one of the provider's windows.
The slack must exceed that grant-to-arrival time; 1 s costs ~2% of the documented rate.

A compare-before-write that needs a read and then a write asks for both at once
(``acquire(write, read)``): both are granted together, so no wait can open between the fresh
read and the write, and neither grant sits idle while the other waits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from rotator.errors import RateBudgetExhausted
from rotator.lease import call_time_left

Windows = Sequence[tuple[float, int]]  # (window seconds, max requests in any such window)
Limits = Mapping[str, Windows]  # method class -> its windows
# One budget a request is counted against: (its name, e.g. "host:write", and its windows).
Request = tuple[str, Windows]

DEFAULT_SLACK = 1.0


class RateLimiter(Protocol):
    async def admit(self, budgets: Sequence[Request]) -> float:
        """Count one request against every budget if it fits all their windows now (0.0);
        otherwise count nothing and return the seconds until it would fit."""
        ...


class LocalRateLimiter:
    """A sliding log per budget, in this process only (tests, CLI without Redis)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sent: dict[str, deque[float]] = {}

    def __repr__(self) -> str:
        return f"LocalRateLimiter(budgets={len(self._sent)})"

    def delay(self, name: str, windows: Windows) -> float:
        """Seconds until one more request under ``name`` fits every window."""
        sent = self._sent.get(name)
        if not sent:
            return 0.0
        now = self._clock()
        wait = 0.0
        for span, limit in windows:
            in_window = sum(1 for t in sent if t > now - span)
            if in_window >= limit:
                # The request ``limit`` places back must leave the window first.
                wait = max(wait, sent[-limit] + span - now)
        return wait

    def count(self, name: str) -> int:
        return len(self._sent.get(name, ()))

    async def admit(self, budgets: Sequence[Request]) -> float:
        wait = max((self.delay(name, windows) for name, windows in budgets), default=0.0)
        if wait > 0:
            return wait
        now = self._clock()
        for name, windows in budgets:
            sent = self._sent.setdefault(name, deque())
            sent.append(now)
            longest = max(span for span, _ in windows)
            while sent and sent[0] <= now - longest:
                sent.popleft()
        return 0.0


class RateBudget:
    """Waits for room under a provider's documented limits, per (host, method class).

    ``limits`` maps a method class to its windows; ``acquire`` takes budget keys ``(host,
    method class)`` and returns once one request under each has been counted.
    """

    def __init__(
        self,
        limits: Limits,
        limiter: RateLimiter | None = None,
        *,
        provider: str = "",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        slack: float = DEFAULT_SLACK,
    ) -> None:
        self.limits = limits
        self.limiter: RateLimiter = limiter if limiter is not None else LocalRateLimiter(clock)
        self.provider = provider
        self._sleep = sleep
        self._slack = slack
        self._locks: dict[tuple[tuple[str, str], ...], asyncio.Lock] = {}
        self.waited = 0.0  # total seconds spent waiting (for tests and metrics)

    def __repr__(self) -> str:
        return f"RateBudget(provider={self.provider!r}, limiter={self.limiter!r})"

    def request(self, key: tuple[str, str]) -> Request:
        """The limiter's view of one budget key: its name and its windows widened by slack."""
        host, kind = key
        return f"{host}:{kind}", tuple((w + self._slack, n) for w, n in self.limits[kind])

    def delay(self, key: tuple[str, str]) -> float:
        """Seconds until one more request fits (``LocalRateLimiter`` only; 0.0 otherwise)."""
        if isinstance(self.limiter, LocalRateLimiter):
            return self.limiter.delay(*self.request(key))
        return 0.0

    async def acquire(self, *keys: tuple[str, str]) -> None:
        """Count one request under each of ``keys`` (together), waiting for room first.

        ``RateBudgetExhausted`` (nothing counted, nothing sent) when the wait would outlast
        what is left of the attempt's lease."""
        budgets = [self.request(key) for key in keys]
        lock = self._locks.setdefault(tuple(keys), asyncio.Lock())
        # FIFO within the process: concurrent callers take turns instead of all polling.
        async with lock:
            while (wait := await self.limiter.admit(budgets)) > 0:
                left = call_time_left()
                if left is not None and wait > left:
                    raise RateBudgetExhausted(
                        f"client-side rate budget for {'+'.join(k[1] for k in keys)} requests "
                        f"to {keys[0][0]} has room in {wait:.1f}s, beyond the attempt's lease",
                        provider=self.provider,
                        retry_after=wait,
                    )
                self.waited += wait
                await self._sleep(wait)


__all__ = [
    "DEFAULT_SLACK",
    "Limits",
    "LocalRateLimiter",
    "RateBudget",
    "RateLimiter",
    "Request",
    "Windows",
]
