"""Attack (issue 10.13): a repeated fencing counter lets one lease holder pass for another.

After a Redis failover to a replica that missed the last writes, or an AOF rollback, the
target's fence counter goes back and a later ``begin`` hands out a counter an older, still
running attempt also holds. The fence check used to compare only that counter, so the old
attempt could renew, journal and even promote under the new holder's lease. The lease value
now carries a per-lease random nonce and the job id, and every fenced script compares all of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from cryptography.fernet import Fernet

from rotator.crypto import Vault
from rotator.errors import LeaseLost
from rotator.models import Begun, JobState, Lease, Reason
from rotator.store import RotatorStore
from rotator.store.keys import Keys

pytestmark = pytest.mark.integration


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def begin(store: RotatorStore, job_id: str) -> Lease:
    begun = await store.begin(job_id, "crm", 30)
    assert isinstance(begun, Begun), begun
    return begun.lease


async def failover(client: aioredis.Redis, keys: Keys) -> None:
    """What a replica promoted before it received the last lease writes looks like: the
    counter and the lease are back to before the old holder's ``begin``."""
    await client.delete(keys.lease("crm"))
    await client.hdel(keys.target("crm"), "fence")


@pytest.mark.parametrize("same_job", [False, True], ids=["other-job", "same-job-redelivered"])
def test_old_holder_cannot_use_a_new_lease_with_the_same_counter(
    redis_url: str, key_prefix: str, loop: asyncio.AbstractEventLoop, same_job: bool
) -> None:
    async def attack() -> None:
        client = aioredis.Redis.from_url(redis_url)
        keys = Keys(key_prefix)
        store = RotatorStore(client, keys, Vault([Fernet.generate_key().decode()], b"k" * 32))
        try:
            first, _ = await store.create_job("crm", Reason.ON_DEMAND, "test")
            old = await begin(store, first)
            # Given a failover rolled the fence counter back under the running old holder
            await failover(client, keys)
            # and a new attempt (another job, or the same job delivered again) took the target
            second = first
            if not same_job:
                await client.hset(keys.job(first), "state", JobState.FAILED.value)
                await client.delete(keys.active("crm"))
                second, _ = await store.create_job("crm", Reason.ON_DEMAND, "test")
            new = await begin(store, second)
            assert new.fence.split(":")[0] == old.fence.split(":")[0]  # the counter repeated
            held = await client.get(keys.lease("crm"))

            # When the old holder renews, journals and finishes under its stale lease
            # Then every write is refused and the new holder's lease is untouched
            with pytest.raises(LeaseLost):
                await store.renew(old, 300)
            with pytest.raises(LeaseLost):
                await store.record(old, 300, "intent", {"expected": "forged"})
            with pytest.raises(LeaseLost):
                await store.finish(old, JobState.COMPLETED, promote_version="v000000000009")
            assert await client.get(keys.lease("crm")) == held
            assert 0 < await client.pttl(keys.lease("crm")) <= 30_000
            assert await client.hget(keys.target("crm"), "current") is None
            journal = await client.hgetall(keys.journal(first))
            assert b"intent" not in journal
            # while the new holder still can
            await store.renew(new, 30)
            await store.record(new, 30, "intent", {"expected": "v1"})
        finally:
            await client.aclose()

    loop.run_until_complete(attack())
