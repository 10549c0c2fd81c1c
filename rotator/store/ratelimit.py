"""Rate budgets shared by every process through Redis (``{p}ratelimit:{budget}``).

``RedisRateLimiter`` is the ``rotator.providers.budget.RateLimiter`` the runtime injects: one
Lua script (``rate_admit``) checks every window of every budget a request needs and counts it
in all of them, or in none, atomically, so N worker processes together never exceed what one
budget allows.

The clock is the Redis server's (``TIME`` inside the script): every process on every host
compares grant times on one clock, so host clock skew cannot widen or narrow a window. The
script takes an explicit time only from tests (``clock``), which then drive windows without
sleeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis

from rotator.providers.budget import Request
from rotator.store import scripts
from rotator.store.codec import text
from rotator.store.keys import Keys


class RedisRateLimiter:
    def __init__(
        self, redis: aioredis.Redis, keys: Keys, clock: Callable[[], float] | None = None
    ) -> None:
        self.redis = redis
        self.keys = keys
        self._clock = clock
        self._admit = redis.register_script(scripts.load("rate_admit"))

    def __repr__(self) -> str:
        return "RedisRateLimiter()"

    async def admit(self, budgets: Sequence[Request]) -> float:
        args: list[str | float | int] = [
            "" if self._clock is None else repr(self._clock()),
            uuid.uuid4().hex,
        ]
        for _name, windows in budgets:
            args.append(len(windows))
            for window, limit in windows:
                args.extend((repr(float(window)), int(limit)))
        reply = text(
            await self._admit(keys=[self.keys.rate_budget(name) for name, _ in budgets], args=args)
        )
        return 0.0 if reply == "ok" else max(float(reply), 0.001)


__all__ = ["RedisRateLimiter"]
