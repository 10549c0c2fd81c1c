"""Issue 15.1: rate budgets and bearer tokens shared by every process through Redis.

Each test runs against fakeredis and against the real Redis (database 15, its own prefix); two
limiter or cache objects on one Redis stand for two worker processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import fakeredis
import pytest
import redis.asyncio as aioredis
import structlog
from cryptography.fernet import Fernet

from rotator.crypto import Vault
from rotator.errors import RateBudgetExhausted
from rotator.providers import budget as budget_module
from rotator.providers.budget import RateBudget
from rotator.providers.commercelayer import LIMITS
from rotator.providers.tokens import token_digest
from rotator.store.keys import Keys
from rotator.store.ratelimit import RedisRateLimiter
from rotator.store.tokens import SharedTokenCache

HOST = "provisioning.commercelayer.io"
CANARY = "canary-token-5f1d0c-" + "Z" * 24


class FakeTime:
    """One clock for every "process": the limiter is given it instead of the server's TIME."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Granted:
    """Records the time of every grant, as the limiter saw it. (A process's clock moves on
    while another one sleeps, so what the caller sees after its await is later: that
    grant-to-send lag is what the budget's slack covers, not the limiter.)"""

    def __init__(self, inner: RedisRateLimiter, fake: FakeTime, times: list[float]) -> None:
        self.inner, self.fake, self.times = inner, fake, times

    async def admit(self, budgets: Any) -> float:
        at = self.fake.now  # RedisRateLimiter reads the clock before its first await
        wait = await self.inner.admit(budgets)
        if wait == 0.0:
            self.times.append(at)
        return wait


def most_in_any_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


@asynccontextmanager
async def redis_for(backend: str, redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = fakeredis.FakeAsyncRedis() if backend == "fake" else aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


BACKENDS = pytest.mark.parametrize("backend", ["fake", "real"])


def run(backend: str, redis_url: str, scenario: Callable[[aioredis.Redis], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with redis_for(backend, redis_url) as client:
            return await scenario(client)

    return asyncio.run(main())


# --- the limiter ------------------------------------------------------------------------------


@BACKENDS
@pytest.mark.parametrize(
    ("kind", "count", "burst", "per_minute"),
    [("write", 260, 50, 200), ("read", 1100, 250, 1000)],
)
def test_two_processes_together_keep_every_documented_window(
    backend: str,
    redis_url: str,
    key_prefix: str,
    kind: str,
    count: int,
    burst: int,
    per_minute: int,
) -> None:
    fake = FakeTime()
    times: list[float] = []

    async def scenario(client: aioredis.Redis) -> None:
        # Given two processes, each with its own budget object over one Redis
        budgets = [
            RateBudget(
                LIMITS,
                Granted(RedisRateLimiter(client, Keys(key_prefix), clock=fake.clock), fake, times),
                clock=fake.clock,
                sleep=fake.sleep,
                slack=0.0,
            )
            for _ in range(2)
        ]

        async def process(budget: RateBudget, n: int) -> None:
            for _ in range(n):
                await budget.acquire((HOST, kind))
                fake.now += 1 / 1024  # a binary fraction: every sum stays exact

        # When both send as fast as they are let
        await asyncio.gather(process(budgets[0], count // 2), process(budgets[1], count // 2))

    run(backend, redis_url, scenario)
    # Then no 10 s and no 60 s window holds more than the documented limit, and the first
    # burst went out at once
    assert len(times) == count
    assert most_in_any_window(times, 10.0) <= burst
    assert most_in_any_window(times, 60.0) <= per_minute
    assert sorted(times)[burst - 1] - times[0] < 1.0


@BACKENDS
def test_a_request_needing_two_budgets_is_counted_in_both_or_neither(
    backend: str, redis_url: str, key_prefix: str
) -> None:
    fake = FakeTime()
    limits = {"read": ((10.0, 2),), "write": ((10.0, 5),)}

    async def scenario(client: aioredis.Redis) -> tuple[float, int, float]:
        keys = Keys(key_prefix)
        limiter = RedisRateLimiter(client, keys, clock=fake.clock)
        budget = RateBudget(limits, limiter, clock=fake.clock, sleep=fake.sleep, slack=0.0)
        # Given the read budget is spent
        await budget.acquire((HOST, "read"))
        fake.now += 4.0
        await budget.acquire((HOST, "read"))
        # When a write that needs a read as well asks
        wait = await limiter.admit(
            [budget.request((HOST, "write")), budget.request((HOST, "read"))]
        )
        writes = await client.zcard(keys.rate_budget(f"{HOST}:write"))
        # Then it is told to wait until the older read leaves its window, and no write counted
        await budget.acquire((HOST, "write"), (HOST, "read"))
        return wait, int(writes), fake.now

    wait, writes, granted_at = run(backend, redis_url, scenario)
    assert wait == pytest.approx(6.0, abs=0.01)
    assert writes == 0
    assert granted_at == pytest.approx(1_700_000_010.0, abs=0.01)


@BACKENDS
def test_the_server_clock_is_used_when_no_clock_is_given(
    backend: str, redis_url: str, key_prefix: str
) -> None:
    async def scenario(client: aioredis.Redis) -> tuple[list[float], int]:
        keys = Keys(key_prefix)
        limiter = RedisRateLimiter(client, keys)  # production: Redis TIME inside the script
        budget = RateBudget({"write": ((60.0, 3),)}, limiter, slack=0.0)
        request = budget.request((HOST, "write"))
        waits = [await limiter.admit([request]) for _ in range(4)]
        ttl = await client.pttl(keys.rate_budget(f"{HOST}:write"))
        return waits, int(ttl)

    waits, ttl = run(backend, redis_url, scenario)
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 59.0 < waits[3] <= 60.0
    assert 60_000 < ttl <= 61_000  # the log expires once its longest window has passed


@BACKENDS
def test_a_wait_beyond_the_lease_ends_the_attempt_unsent(
    backend: str, redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeTime()
    monkeypatch.setattr(budget_module, "call_time_left", lambda: 3.0)

    async def scenario(client: aioredis.Redis) -> tuple[RateBudgetExhausted, list[float]]:
        limiter = RedisRateLimiter(client, Keys(key_prefix), clock=fake.clock)
        budget = RateBudget(
            {"write": ((10.0, 1),)}, limiter, provider="commercelayer", sleep=fake.sleep, slack=0
        )
        await budget.acquire((HOST, "write"))
        # A wait of 2 s fits the 3 s of lease left: it is waited
        fake.now += 8.0
        await budget.acquire((HOST, "write"))
        # A wait of 10 s does not: the attempt ends, nothing counted
        with pytest.raises(RateBudgetExhausted) as caught:
            await budget.acquire((HOST, "write"))
        return caught.value, fake.slept

    error, slept = run(backend, redis_url, scenario)
    assert slept == [pytest.approx(2.0, abs=0.01)]
    assert error.retry_after == pytest.approx(10.0, abs=0.01)
    assert error.provider == "commercelayer" and error.status == 0


# --- the shared token cache -------------------------------------------------------------------


def vault() -> Vault:
    return Vault([Fernet.generate_key().decode()], b"audit-key-for-token-tests")


KEY = ("commercelayer", "https://auth.commercelayer.io/oauth/token", "client-id-123", "")


class Minter:
    def __init__(self, lifetime: float = 7200.0, delay: float = 0.05) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.delay = delay

    async def __call__(self) -> tuple[str, float]:
        self.calls += 1
        await asyncio.sleep(self.delay)  # the token endpoint takes a moment
        return f"{CANARY}-{self.calls}", self.lifetime


@BACKENDS
def test_one_mint_for_many_callers_in_many_processes_stored_sealed(
    backend: str, redis_url: str, key_prefix: str
) -> None:
    mint = Minter()
    the_vault = vault()

    async def scenario(client: aioredis.Redis) -> tuple[set[str], list[Any], int, list[str]]:
        keys = Keys(key_prefix)
        # Given four processes' caches on one Redis
        caches = [SharedTokenCache(client, keys, the_vault) for _ in range(4)]
        # When 40 calls need the token at once
        with structlog.testing.capture_logs() as logs:
            got = await asyncio.gather(*(caches[i % 4].get(KEY, mint) for i in range(40)))
        stored = await client.get(keys.token(token_digest(KEY)))
        ttl = await client.pttl(keys.token(token_digest(KEY)))
        names = [k.decode() for k in await client.keys(f"{key_prefix}*")]
        return set(got), [stored, repr(caches), logs], int(ttl), names

    values, evidence, ttl, names = run(backend, redis_url, scenario)
    # Then one mint served them all
    assert mint.calls == 1 and values == {f"{CANARY}-1"}
    # And the token is stored encrypted, expiring a margin before the token itself
    stored, shown, logs = evidence
    assert CANARY.encode() not in stored
    assert 7200_000 - 61_000 < ttl <= 7200_000 - 60_000
    # And no key names the client id or any part of the token; no repr or log shows it
    assert all("client-id-123" not in n and CANARY not in n for n in names)
    assert CANARY not in shown and CANARY not in repr(logs)


@BACKENDS
def test_a_lock_holder_that_dies_delays_the_others_only_until_its_lock_expires(
    backend: str, redis_url: str, key_prefix: str
) -> None:
    mint = Minter()

    async def scenario(client: aioredis.Redis) -> tuple[str, float, bool]:
        keys = Keys(key_prefix)
        digest = token_digest(KEY)
        # Given a process took the mint lock and died before storing a token
        await client.set(keys.token_lock(digest), "dead-holder-nonce", px=400)
        cache = SharedTokenCache(client, keys, vault(), poll=0.02)
        # When another process needs the token
        started = time.monotonic()
        value = await cache.get(KEY, mint)
        waited = time.monotonic() - started
        lock_left = bool(await client.exists(keys.token_lock(digest)))
        return value, waited, lock_left

    value, waited, lock_left = run(backend, redis_url, scenario)
    # Then it waited for the dead holder's lock to expire, minted once, released its own lock
    assert value == f"{CANARY}-1" and mint.calls == 1
    assert 0.3 <= waited < 3.0
    assert not lock_left


@BACKENDS
def test_a_failed_mint_releases_the_lock_for_the_next_caller(
    backend: str, redis_url: str, key_prefix: str
) -> None:
    async def failing() -> tuple[str, float]:
        raise RuntimeError("token endpoint down")

    async def scenario(client: aioredis.Redis) -> tuple[bool, str]:
        keys = Keys(key_prefix)
        cache = SharedTokenCache(client, keys, vault())
        with pytest.raises(RuntimeError):
            await cache.get(KEY, failing)
        locked = bool(await client.exists(keys.token_lock(token_digest(KEY))))
        return locked, await cache.get(KEY, Minter())

    locked, value = run(backend, redis_url, scenario)
    assert not locked and value == f"{CANARY}-1"


@BACKENDS
def test_a_401_drops_only_the_token_it_was_seen_with_so_one_process_re_mints(
    backend: str, redis_url: str, key_prefix: str
) -> None:
    mint = Minter()

    async def scenario(client: aioredis.Redis) -> list[str]:
        keys = Keys(key_prefix)
        shared = vault()
        one, two = SharedTokenCache(client, keys, shared), SharedTokenCache(client, keys, shared)
        first = await one.get(KEY, mint)
        assert await two.get(KEY, mint) == first
        # Process one's call is refused: it drops the token and mints the next
        await one.invalidate(KEY, first)
        second = await one.get(KEY, mint)
        # Process two's call with the old token is refused later: the new token stays
        await two.invalidate(KEY, first)
        return [first, second, await two.get(KEY, mint)]

    first, second, seen_by_two = run(backend, redis_url, scenario)
    assert first != second and seen_by_two == second
    assert mint.calls == 2


@BACKENDS
def test_a_token_sealed_under_a_retired_master_key_is_minted_anew(
    backend: str, redis_url: str, key_prefix: str
) -> None:
    mint = Minter()

    async def scenario(client: aioredis.Redis) -> str:
        keys = Keys(key_prefix)
        await SharedTokenCache(client, keys, vault()).get(KEY, mint)
        return await SharedTokenCache(client, keys, vault()).get(KEY, mint)

    assert run(backend, redis_url, scenario) == f"{CANARY}-2"


@BACKENDS
def test_a_process_reuses_the_token_it_read_without_asking_redis_until_refresh(
    backend: str, redis_url: str, key_prefix: str
) -> None:
    mint = Minter(lifetime=2.0)  # refreshed after 1.6 s (a fifth of the lifetime kept back)

    async def scenario(client: aioredis.Redis) -> list[str]:
        keys = Keys(key_prefix)
        cache = SharedTokenCache(client, keys, vault())
        first = await cache.get(KEY, mint)
        # Redis losing the key does not cost this process a call while its copy is fresh
        await client.delete(keys.token(token_digest(KEY)))
        again = await cache.get(KEY, mint)
        await asyncio.sleep(1.7)
        return [first, again, await cache.get(KEY, mint)]

    first, again, later = run(backend, redis_url, scenario)
    assert first == again == f"{CANARY}-1"
    assert later == f"{CANARY}-2" and mint.calls == 2


def test_a_request_the_budget_refused_may_not_have_applied() -> None:
    from rotator.retry import may_have_applied

    refused = RateBudgetExhausted("no room", provider="commercelayer", retry_after=5.0)
    assert not may_have_applied(refused)
