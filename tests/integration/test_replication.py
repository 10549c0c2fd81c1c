"""Durable writes against real replication: a primary, a replica and three sentinels.

The store is built from a ``sentinel://`` URL as the worker builds it. A durable journal write
waits for the replica (``WAIT`` on the write's own connection); with the replica gone it raises
``WriteNotDurable`` once the timeout passes; and after ``kill -9`` of the primary the same
client finds the promoted replica, which holds every write that was acknowledged as durable.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from cryptography.fernet import Fernet

from rotator.connections import async_redis
from rotator.crypto import Vault
from rotator.errors import WriteNotDurable
from rotator.models import Begun, Reason
from rotator.store import Durability, RotatorStore
from rotator.store.keys import Keys
from tools.common import SentinelRedis

pytestmark = pytest.mark.integration


async def _scenario(cluster: SentinelRedis) -> None:
    client = async_redis(
        cluster.url, blocking=True, max_connections=8, timeout=10, socket_timeout=5
    )
    keys = Keys("repl:")
    store = RotatorStore(
        client,
        keys,
        Vault([Fernet.generate_key().decode()], b"k"),
        Durability(min_replicas=1, timeout=0.5),
    )
    try:
        job_id, _ = await store.create_job("crm", Reason.ON_DEMAND, "test")
        begun = await store.begin(job_id, "crm", 30)
        assert isinstance(begun, Begun)

        # Given a replica that answers: a durable write returns once it has it
        await store.record(begun.lease, 30, "intent", {"expected": "e1"}, durable=True)

        # When the replica is gone, a durable write waits out the timeout and is refused
        replica = next(
            n
            for n, p in zip(cluster.nodes, cluster.node_ports, strict=True)
            if p != cluster.primary_port()
        )
        replica.kill()
        started = time.monotonic()
        with pytest.raises(WriteNotDurable, match="0 of 1 replica"):
            await store.record(begun.lease, 30, "intent", {"expected": "e2"}, durable=True)
        assert 0.4 < time.monotonic() - started < 5
        # (it is on the primary, which is what "not durable" means) and a plain write is not held
        assert b"e2" in await client.hget(keys.journal(job_id), "intent")
        with pytest.raises(WriteNotDurable, match="job: 0 of 1"):
            await store.create_job("other", Reason.ON_DEMAND, "test")
        await store.record(begun.lease, 30, "note", {"n": 1})

        # And the replica back, durable again; then kill -9 of the primary
        cluster.restart()
        deadline = time.monotonic() + 30
        while True:
            try:
                await store.record(begun.lease, 30, "intent", {"expected": "e3"}, durable=True)
                break
            except WriteNotDurable:
                assert time.monotonic() < deadline, "the replica did not come back"
        cluster.kill9()
        while not cluster.ready_to_restart():
            await asyncio.sleep(0.2)

        # Then the same client reaches the promoted replica, which has the durable intent
        deadline = time.monotonic() + 30
        while True:
            try:
                intent = await client.hget(keys.journal(job_id), "intent")
                break
            except (ConnectionError, OSError, Exception) as exc:  # the failover in progress
                assert time.monotonic() < deadline, f"no new primary: {exc!r}"
                await asyncio.sleep(0.2)
        assert intent is not None and b"e3" in intent
    finally:
        await client.aclose()


@pytest.mark.timeout(120)
def test_durable_writes_wait_for_the_replica_and_survive_a_failover(
    sentinel: SentinelRedis,
) -> None:
    asyncio.run(_scenario(sentinel))
