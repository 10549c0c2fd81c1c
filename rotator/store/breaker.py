"""Circuit-breaker state in Redis (``{p}breaker:{host}``), shared by every worker process.

Two scripts keep each transition atomic across processes: ``breaker_admit`` (closed, or hand
out the one half-open probe per interval) and ``breaker_record`` (add an attempt's calls to
the current window; open past the failure ratio of calls, close on a probe whose calls mostly
succeed). The policy is described in ``rotator.breaker``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis

from rotator.breaker import Breaker, BreakerPolicy, NoBreaker
from rotator.config import Settings
from rotator.store import scripts
from rotator.store.codec import text
from rotator.store.keys import Keys

_CLOSED = -1  # breaker_admit's answer for a closed breaker (-2: this caller is the probe)


class RedisBreaker:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        policy: BreakerPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.policy = policy
        self._clock = clock
        self._admit = redis.register_script(scripts.load("breaker_admit"))
        self._record = redis.register_script(scripts.load("breaker_record"))
        # Per host: until when a closed answer from Redis is trusted (policy.trust_closed),
        # and successful calls not yet added to the window, with when the first was held.
        self._closed_until: dict[str, float] = {}
        self._held: dict[str, tuple[int, float]] = {}

    async def admit(self, host: str) -> float | None:
        now = self._clock()
        if now < self._closed_until.get(host, 0.0):
            return None
        wait = await self._admit(
            keys=[self.keys.breaker(host)], args=[time.time(), self.policy.probe_interval]
        )
        if isinstance(wait, int) and wait < 0:
            if wait == _CLOSED and self.policy.trust_closed > 0:
                self._closed_until[host] = now + self.policy.trust_closed
            return None
        return max(0.0, float(text(wait)))

    async def record(self, host: str, calls: int, failures: int) -> None:
        now = self._clock()
        held, since = self._held.pop(host, (0, now))
        if now - since > self.policy.window:
            held = 0  # successes from before this window would dilute its failures
        if failures == 0 and now < self._closed_until.get(host, 0.0):
            if now - since < self.policy.trust_closed:
                self._held[host] = (held + calls, since)
                return
        elif failures:
            self._closed_until.pop(host, None)  # the next attempt asks Redis again
        await self._send(host, held + calls, failures)

    async def _send(self, host: str, calls: int, failures: int) -> None:
        p = self.policy
        # The state outlives a quiet spell of a few windows, never forever.
        ttl = int(max(p.window, p.probe_interval) * 10) + 1
        state = await self._record(
            keys=[self.keys.breaker(host)],
            args=[
                time.time(),
                calls,
                failures,
                p.window,
                p.min_calls,
                p.failure_ratio,
                p.probe_interval,
                ttl,
            ],
        )
        if text(state) == "open":
            self._closed_until.pop(host, None)

    async def state(self, host: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys.breaker(host))
        return {text(k): text(v) for k, v in raw.items()}


def breaker_for(settings: Settings, redis: aioredis.Redis, keys: Keys) -> Breaker:
    """The process's breaker, from ``ROTATOR_BREAKER_*``."""
    if not settings.breaker_enabled:
        return NoBreaker()
    policy = BreakerPolicy(
        window=settings.breaker_window,
        min_calls=settings.breaker_min_calls,
        failure_ratio=settings.breaker_failure_ratio,
        probe_interval=settings.breaker_probe_interval,
    )
    return RedisBreaker(redis, keys, policy)


__all__ = ["RedisBreaker", "breaker_for"]
