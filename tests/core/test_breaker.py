"""Issue 14: the per-provider-host circuit breaker, its Redis state and the engine's use of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

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
        **{"min_calls": 4, "probe_interval": 0.5, "failure_ratio": 0.5, **policy}
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
            await breaker.record(HOST, ok=False)
        # Then both processes fail fast, told when the next probe is
        wait = await two.admit(HOST)
        assert wait is not None and 0 < wait <= 0.5
        assert await one.admit(HOST) is not None
        # When the probe interval passes, exactly one caller becomes the probe
        await asyncio.sleep(0.55)
        admitted = [await b.admit(HOST) for b in (one, two, one)]
        assert admitted.count(None) == 1
        # A failed probe keeps it open; a successful one closes it
        await one.record(HOST, ok=False)
        assert await two.admit(HOST) is not None
        await asyncio.sleep(0.55)
        assert await two.admit(HOST) is None
        await two.record(HOST, ok=True)
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
        for ok in (True, True, True, False, False):
            await one.record(HOST, ok=ok)
        assert await one.admit(HOST) is None
        # When failures reach half the calls, it opens
        await one.record(HOST, ok=False)
        assert await one.admit(HOST) is not None
        assert (await one.state(HOST))["state"] == "open"
        await client.aclose()

    loop.run_until_complete(scenario())


def test_breaker_window_rolls_over(
    loop: asyncio.AbstractEventLoop, redis_url: str, key_prefix: str
) -> None:
    one, _two, client = _breakers(loop, redis_url, key_prefix, window=0.3)

    async def scenario() -> None:
        for _ in range(3):
            await one.record(HOST, ok=False)
        await asyncio.sleep(0.35)  # old failures fall out of the window
        await one.record(HOST, ok=False)
        assert await one.admit(HOST) is None
        await client.aclose()

    loop.run_until_complete(scenario())


def test_breaker_host_names_provider_and_host_without_userinfo() -> None:
    assert breaker_host("adobe", "https://u:p@API.example:8443/x") == "adobe@api.example:8443"


class _OpenBreaker:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, bool]] = []
        self.open = False

    async def admit(self, host: str) -> float | None:
        return 12.0 if self.open else None

    async def record(self, host: str, ok: bool) -> None:
        self.recorded.append((host, ok))


def test_engine_fails_fast_with_circuit_open_and_counts_transient_failures(
    harness: Harness,
) -> None:
    breaker = _OpenBreaker()
    harness.engine.options.breaker = breaker
    # Given a provider answering 503: the attempt is counted as a failure of its host
    harness.provider.read_faults.append(transient())
    job_id = harness.enqueue()
    assert harness.run(harness.engine.process(job_id)) is Outcome.RETRY
    assert breaker.recorded == [("fake@fake.example", False)]
    # When the breaker is open, the next attempt makes no provider call
    breaker.open = True
    reads = harness.provider.reads
    harness.run(harness.redis.zadd(harness.store.keys.due, {job_id: time.time()}))
    assert harness.run(harness.engine.process(job_id)) is Outcome.RETRY
    assert harness.provider.reads == reads
    job = harness.run(harness.store.load_job(job_id))
    assert job.state is JobState.RETRYING
    assert job.last_error_class == "CircuitOpen"
    assert breaker.recorded == [("fake@fake.example", False)]  # a refusal is not counted
    # Then once closed, a success is recorded and the job completes
    breaker.open = False
    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED
    assert breaker.recorded[-1] == ("fake@fake.example", True)
