"""Issue 14: the per-provider-host circuit breaker, its Redis state and the engine's use of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from rotator.breaker import BreakerPolicy, breaker_host
from rotator.engine import Outcome
from rotator.models import JobState
from rotator.store.breaker import RedisBreaker
from rotator.store.keys import Keys
from tests.core.conftest import Harness
from tests.core.fakes import transient

HOST = "adobe@api.example:443"


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _breakers(
    loop: asyncio.AbstractEventLoop, redis_url: str, key_prefix: str, **policy: float
) -> tuple[RedisBreaker, RedisBreaker, aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    settings = BreakerPolicy(
        # trust_closed 0: every admit and record asks Redis (the cross-process semantics
        # under test); the local trust has its own test below.
        **{"min_calls": 4, "probe_interval": 0.5, "failure_ratio": 0.5, "trust_closed": 0, **policy}
    )  # type: ignore[arg-type]
    # Two breakers on one Redis stand for two worker processes.
    return (
        RedisBreaker(client, Keys(key_prefix), settings),
        RedisBreaker(client, Keys(key_prefix), settings),
        client,
    )


def test_breaker_opens_on_failures_shares_state_and_probes_once_per_interval(
    loop: asyncio.AbstractEventLoop, redis_url: str, key_prefix: str
) -> None:
    one, two, client = _breakers(loop, redis_url, key_prefix)

    async def scenario() -> None:
        # Given a host failing every call seen by two processes
        for breaker in (one, two, one, two):
            assert await breaker.admit(HOST) is None
            await breaker.record(HOST, calls=1, failures=1)
        # Then both processes fail fast, told when the next probe is
        wait = await two.admit(HOST)
        assert wait is not None and 0 < wait <= 0.5
        assert await one.admit(HOST) is not None
        # When the probe interval passes, exactly one caller becomes the probe
        await asyncio.sleep(0.55)
        admitted = [await b.admit(HOST) for b in (one, two, one)]
        assert admitted.count(None) == 1
        # A probe whose calls mostly fail keeps it open; one whose calls mostly succeed closes it
        await one.record(HOST, calls=3, failures=2)
        assert await two.admit(HOST) is not None
        await asyncio.sleep(0.55)
        assert await two.admit(HOST) is None
        await two.record(HOST, calls=3, failures=1)
        assert await one.admit(HOST) is None
        assert await one.admit(HOST) is None
        await client.aclose()

    loop.run_until_complete(scenario())


def test_breaker_stays_closed_below_the_ratio_or_the_minimum(
    loop: asyncio.AbstractEventLoop, redis_url: str, key_prefix: str
) -> None:
    one, _two, client = _breakers(loop, redis_url, key_prefix)

    async def scenario() -> None:
        # Given mostly successes: below the ratio, closed
        await one.record(HOST, calls=3, failures=0)
        await one.record(HOST, calls=2, failures=2)
        assert await one.admit(HOST) is None
        # When failures reach half the calls, it opens
        await one.record(HOST, calls=1, failures=1)
        assert await one.admit(HOST) is not None
        assert (await one.state(HOST))["state"] == "open"
        await client.aclose()

    loop.run_until_complete(scenario())


def test_breaker_window_rolls_over(
    loop: asyncio.AbstractEventLoop, redis_url: str, key_prefix: str
) -> None:
    one, _two, client = _breakers(loop, redis_url, key_prefix, window=0.3)

    async def scenario() -> None:
        await one.record(HOST, calls=3, failures=3)
        await asyncio.sleep(0.35)  # old failures fall out of the window
        await one.record(HOST, calls=1, failures=1)
        assert await one.admit(HOST) is None
        await client.aclose()

    loop.run_until_complete(scenario())


def _trusting(
    redis_url: str, key_prefix: str
) -> tuple[aioredis.Redis, list[float], RedisBreaker, RedisBreaker]:
    """A process trusting a closed breaker for a second (on a clock the test moves), and
    another process that asks Redis every time."""
    client = aioredis.Redis.from_url(redis_url)
    now = [1000.0]
    policy = BreakerPolicy(min_calls=4, failure_ratio=0.5, probe_interval=30, trust_closed=1.0)
    one = RedisBreaker(client, Keys(key_prefix), policy, clock=lambda: now[0])
    other = RedisBreaker(client, Keys(key_prefix), replace(policy, trust_closed=0))
    return client, now, one, other


def test_a_process_trusts_a_closed_breaker_briefly_and_never_holds_back_a_failure(
    loop: asyncio.AbstractEventLoop, redis_url: str, key_prefix: str
) -> None:
    client, now, one, other = _trusting(redis_url, key_prefix)
    sent: list[str] = []
    real_record = one._record

    async def counting(*args: object, **kwargs: object) -> object:
        sent.append("record")
        return await real_record(*args, **kwargs)  # type: ignore[arg-type]

    one._record = counting  # type: ignore[assignment]

    async def scenario() -> None:
        # Given a closed breaker: ten successful attempts within the trust interval cost
        # one admit and no record script call at all
        for _ in range(10):
            assert await one.admit(HOST) is None
            await one.record(HOST, calls=3, failures=0)
            now[0] += 0.05
        assert sent == [] and (await one.state(HOST)) == {}
        # When a failure comes, it is sent at once, with the 30 successful calls held
        await one.record(HOST, calls=3, failures=3)
        assert sent == ["record"]
        state = await one.state(HOST)
        assert (state["calls"], state["failures"]) == ("33", "3")
        # and the next attempt asks Redis: another process opened the breaker meanwhile
        await other.record(HOST, calls=30, failures=30)
        assert await one.admit(HOST) is not None
        await client.aclose()

    loop.run_until_complete(scenario())


def test_a_closed_breaker_opened_elsewhere_is_seen_within_the_trust_interval(
    loop: asyncio.AbstractEventLoop, redis_url: str, key_prefix: str
) -> None:
    client, now, one, other = _trusting(redis_url, key_prefix)

    async def scenario() -> None:
        assert await one.admit(HOST) is None  # closed, trusted for a second
        await other.record(HOST, calls=10, failures=10)  # another process opens it
        now[0] += 1.01
        assert await one.admit(HOST) is not None  # fails fast once the trust ran out
        await client.aclose()

    loop.run_until_complete(scenario())


def test_breaker_host_names_provider_and_host_without_userinfo() -> None:
    assert breaker_host("adobe", "https://u:p@API.example:8443/x") == "adobe@api.example:8443"


def test_a_degraded_host_stays_closed_and_a_host_failing_most_calls_opens(
    loop: asyncio.AbstractEventLoop, redis_url: str, key_prefix: str
) -> None:
    one, _two, client = _breakers(loop, redis_url, key_prefix, min_calls=10)

    async def scenario() -> None:
        # Given a degraded host: attempts of 7 calls, each failing on its 7th (6 of 7 calls
        # succeed, yet every attempt fails): the host is answering, the breaker stays closed
        for _ in range(10):
            await one.record(HOST, calls=7, failures=1)
        assert await one.admit(HOST) is None
        # When the host starts failing most calls (attempts ending at their first call)
        for _ in range(60):
            await one.record(HOST, calls=1, failures=1)
        # Then it opens
        assert await one.admit(HOST) is not None
        await client.aclose()

    loop.run_until_complete(scenario())


class _OpenBreaker:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, int, int]] = []
        self.open = False

    async def admit(self, host: str) -> float | None:
        return 12.0 if self.open else None

    async def record(self, host: str, calls: int, failures: int) -> None:
        self.recorded.append((host, calls, failures))


def test_engine_fails_fast_with_circuit_open_and_counts_transient_failures(
    harness: Harness,
) -> None:
    breaker = _OpenBreaker()
    harness.engine.options.breaker = breaker
    # Given a provider answering 503: the attempt's one call is counted as its host failing
    harness.provider.read_faults.append(transient())
    job_id = harness.enqueue()
    assert harness.run(harness.engine.process(job_id)) is Outcome.RETRY
    assert breaker.recorded == [("fake@fake.example", 1, 1)]
    # When the breaker is open, the next attempt makes no provider call
    breaker.open = True
    reads = harness.provider.reads
    harness.run(harness.redis.zadd(harness.store.keys.due, {job_id: time.time()}))
    assert harness.run(harness.engine.process(job_id)) is Outcome.RETRY
    assert harness.provider.reads == reads
    job = harness.run(harness.store.load_job(job_id))
    assert job.state is JobState.RETRYING
    assert job.last_error_class == "CircuitOpen"
    assert breaker.recorded == [("fake@fake.example", 1, 1)]  # a refusal is not counted
    # Then once closed, the calls of the completing attempt are counted as answered
    breaker.open = False
    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED
    host, calls, failures = breaker.recorded[-1]
    assert (host, failures) == ("fake@fake.example", 0) and calls >= 3  # read, apply, verify


def test_send_tallies_each_call_for_the_breaker() -> None:
    import httpx

    from rotator.breaker import start_tally
    from rotator.errors import TransportError
    from rotator.providers.base import send

    statuses = iter([200, 404, 503, 429])

    def answer(request: httpx.Request) -> httpx.Response:
        status = next(statuses, None)
        if status is None:
            raise httpx.ReadError("reset by peer")
        return httpx.Response(status)

    async def scenario() -> tuple[int, int]:
        tally = start_tally()
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            for _ in range(4):
                await send(client, "fake", "GET", "https://fake.example/x")
            with pytest.raises(TransportError):
                await send(client, "fake", "GET", "https://fake.example/x")
        return tally.calls, tally.failures

    # A 4xx is the host answering; a 5xx, a 429 and a reset are the host failing
    assert asyncio.run(scenario()) == (5, 3)
