"""The lease heartbeat (rotator.lease): renewal while an attempt runs, a lost lease stopping the
attempt before its next remote write, and the refusal of a write the lease cannot cover."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from rotator.config import load_settings
from rotator.engine import EngineOptions
from rotator.errors import ConfigError, LeaseLost
from rotator.lease import LeaseKeeper
from rotator.models import Lease, Outcome
from rotator.providers.base import RemoteState, TargetSpec, send
from rotator.retry import RetryPolicy
from tests.core.conftest import Harness
from tests.core.fakes import FakeProvider

LEASE = Lease("crm", "job-1", "1:abc:job-1")


class Renewer:
    """A lease store whose renewals succeed, fail like an unreachable Redis, or find the
    lease taken."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.fail_with = fail_with
        self.calls = 0

    async def renew(self, lease: Lease, lease_ttl: float) -> None:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with


class SlowFirstRead(FakeProvider):
    """The first read takes ``delay`` seconds and runs ``during`` halfway through."""

    def __init__(self, base: FakeProvider, delay: float, during: Any = None) -> None:
        super().__init__(base.remote)
        self.delay = delay
        self.during = during

    async def read(self, target: TargetSpec, journal: Any) -> RemoteState:
        if self.reads == 0:
            await asyncio.sleep(self.delay / 2)
            if self.during is not None:
                await self.during()
            await asyncio.sleep(self.delay / 2)
        return await super().read(target, journal)


def short_lease(harness: Harness, provider: FakeProvider, ttl: float = 0.6) -> None:
    harness.engine.providers = lambda name: provider
    harness.engine.options = EngineOptions(
        lease_ttl=ttl, remote_write_time=0.1, retry=RetryPolicy(max_attempts=3, base_delay=0.01)
    )


def test_heartbeat_keeps_the_lease_and_the_due_score_through_a_long_read(
    harness: Harness,
) -> None:
    # Given a lease of 0.6 s and a remote read that takes 1.5 s (no journal write meanwhile)
    seen: dict[str, Any] = {}
    lease_key = harness.store.keys.lease("crm")

    async def look() -> None:
        await asyncio.sleep(0.5)  # past the first TTL
        seen["pttl"] = await harness.redis.pttl(lease_key)
        seen["due"] = await harness.redis.zscore(harness.store.keys.due, job_id)

    provider = SlowFirstRead(harness.provider, 1.5, look)
    short_lease(harness, provider)
    job_id = harness.enqueue()

    # When the attempt runs, Then the heartbeat renewed the lease and the job's due score, and
    # the rotation completed with one update
    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED
    assert 0 < seen["pttl"] <= 600
    assert seen["due"] > time.time() - 0.5
    assert provider.remote.applies == 1
    assert harness.run(harness.redis.exists(lease_key)) == 0  # released by finish


def test_lost_renewal_stops_the_attempt_before_its_next_remote_write(harness: Harness) -> None:
    # Given an attempt mid-read whose lease is taken over (as after an expiry or a failover)
    lease_key = harness.store.keys.lease("crm")

    async def take_over() -> None:
        await harness.redis.set(lease_key, "99:other:job-2", px=60_000)

    provider = SlowFirstRead(harness.provider, 3.0, take_over)
    short_lease(harness, provider)
    job_id = harness.enqueue()

    # When its next renewal finds the lease gone
    started = time.monotonic()
    outcome = harness.run(harness.engine.process(job_id))

    # Then the attempt stops at once (not after the read), without updating the remote
    assert outcome is Outcome.SKIPPED
    assert time.monotonic() - started < 2.5
    assert provider.remote.applies == 0
    assert harness.run(harness.redis.get(lease_key)) == b"99:other:job-2"
    events = [e["event"] for e in harness.audit_events()]
    assert events[-1] == "lease.lost" and "update.intent" not in events


def test_redis_unreachable_past_the_ttl_cancels_the_attempt() -> None:
    async def scenario() -> float:
        keeper = LeaseKeeper(Renewer(ConnectionError("down")), LEASE, 0.5, write_time=0.1)
        started = time.monotonic()
        with pytest.raises(LeaseLost, match="could not be renewed"):
            async with keeper:
                await asyncio.sleep(10)
        return time.monotonic() - started

    took = asyncio.run(scenario())
    assert 0.45 < took < 1.5


def test_a_remote_write_is_refused_when_too_little_lease_is_left() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(200, json={})

    async def scenario() -> None:
        renewer = Renewer(ConnectionError("down"))
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        # Given a 1 s lease that Redis stopped renewing, and writes that take up to 0.5 s
        async with LeaseKeeper(renewer, LEASE, 1.0, write_time=0.5) as keeper:
            await send(client, "fake", "PATCH", "https://fake.example/x")  # 1 s left: fine
            await asyncio.sleep(0.6)
            # When a write would outlast the lease, Then it is refused before it is sent
            # (after one more renewal was tried), while reads go on
            with pytest.raises(LeaseLost, match=r"only 0\.\ds of the target lease left"):
                await send(client, "fake", "PATCH", "https://fake.example/x")
            await send(client, "fake", "GET", "https://fake.example/x")
            assert keeper.lost is None  # short, not lost: the attempt may still read
            # and once Redis answers again, writes are possible again
            renewer.fail_with = None
            await send(client, "fake", "PUT", "https://fake.example/x")
        await client.aclose()

    asyncio.run(scenario())
    assert calls == ["PATCH", "GET", "PUT"]


def test_a_lost_lease_refuses_writes_even_before_the_attempt_is_cancelled() -> None:
    async def scenario() -> None:
        keeper = LeaseKeeper(Renewer(LeaseLost("gone")), LEASE, 30.0, write_time=0.1)
        keeper.expires = keeper._clock() + 0.05  # as if the last renewal was long ago
        async with keeper:
            with pytest.raises(LeaseLost, match="expired or was taken over"):
                await keeper.ensure()

    asyncio.run(scenario())


def test_writes_after_release_are_not_checked() -> None:
    # Post-promotion cleanup runs after finish deleted the lease, by design.
    async def scenario() -> None:
        renewer = Renewer(LeaseLost("gone"))
        async with LeaseKeeper(renewer, LEASE, 0.3, write_time=1.0) as keeper:
            await keeper.release()
            await asyncio.sleep(0.4)  # no heartbeat cancels us now
            await keeper.ensure()
        assert renewer.calls == 0

    asyncio.run(scenario())


def test_an_outside_cancellation_stays_a_cancellation() -> None:
    async def scenario() -> None:
        async with LeaseKeeper(Renewer(), LEASE, 30.0, write_time=0.1):
            await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(scenario())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


class CancelSwallowingRenewer(Renewer):
    """A renewal whose client turns a cancellation into a timeout error, as a Redis client can
    when its own read deadline fires in the same loop turn as the cancel (seen in the chaos
    run: the heartbeat outlived its attempt and renewed the lease for minutes)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_renewal = asyncio.Event()

    async def renew(self, lease: Lease, lease_ttl: float) -> None:
        self.calls += 1
        self.in_renewal.set()
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            raise TimeoutError("read timed out") from None


def test_the_heartbeat_stops_with_its_attempt_even_if_a_renewal_swallows_the_cancel() -> None:
    # Given a 0.3 s lease whose renewals take 50 ms and swallow a cancellation
    renewer = CancelSwallowingRenewer()

    async def scenario() -> None:
        # When the attempt fails while a renewal is in flight
        with pytest.raises(RuntimeError, match="apply failed"):
            async with LeaseKeeper(renewer, LEASE, 0.3, write_time=0.01):
                await renewer.in_renewal.wait()
                raise RuntimeError("apply failed")
        # Then the attempt's failure path runs at once, and no renewal follows: the lease is
        # left to expire instead of being held by an orphaned heartbeat
        calls = renewer.calls
        await asyncio.sleep(0.5)
        assert renewer.calls == calls

    asyncio.run(asyncio.wait_for(scenario(), 3))


def test_default_lease_is_short_and_must_cover_an_http_call(tmp_path: Any) -> None:
    assert load_settings(state_dir=tmp_path).lease_ttl == 30.0
    with pytest.raises(ConfigError, match="ROTATOR_HTTP_TIMEOUT.*shorter than ROTATOR_LEASE_TTL"):
        load_settings(state_dir=tmp_path, lease_ttl=4, http_timeout=8)
