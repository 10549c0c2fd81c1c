"""Fixtures for the audit tests: fakeredis (with Lua, via lupa) for unit tests, and the shared
Redis at 127.0.0.1:6379 db 11 (or an embedded server when none listens) for integration tests,
isolated by a unique key prefix and cleaned up key by key, never flushed."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import fakeredis
import pytest
import redis
import redis.asyncio as aioredis

from rotator import embedded
from rotator.audit import AuditEvent, AuditLog, StoredEvent
from rotator.store.keys import Keys

T = TypeVar("T")

AUDIT_KEY = b"audit-test-key-0123456789abcdef-32bytes"
SHARED_URL = os.environ.get("ROTATOR_AUDIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class FakeEnv:
    """One fake Redis server shared by sync and async clients."""

    def __init__(self, prefix: str = "t:") -> None:
        self.server = fakeredis.FakeServer()
        self.keys = Keys(prefix)
        self.sync = fakeredis.FakeRedis(server=self.server)

    def client(self) -> aioredis.Redis:
        return fakeredis.aioredis.FakeRedis(server=self.server)

    def log(self, client: aioredis.Redis, **kwargs: Any) -> AuditLog:
        return AuditLog(client, self.keys, kwargs.pop("audit_key", AUDIT_KEY), **kwargs)

    def emit(self, events: Sequence[AuditEvent], **kwargs: Any) -> list[StoredEvent]:
        """Emit concurrently (one task per event) through a fresh AuditLog."""

        async def main() -> list[StoredEvent]:
            client = self.client()
            try:
                log = self.log(client, **kwargs)
                stored = await asyncio.gather(*(log.emit(e) for e in events))
                await log.aclose()
                return list(stored)
            finally:
                await client.aclose()

        return run(main())


@pytest.fixture
def env() -> FakeEnv:
    return FakeEnv()


def rotation_events(
    count: int, *, targets: int = 7, start: float = 1_700_000_000.0, step: float = 1.0
) -> list[AuditEvent]:
    """A deterministic log: rotations of 5 events each across targets, providers, actors."""
    names = ["job.started", "remote.read", "update.intent", "update.applied", "job.completed"]
    events = []
    for i in range(count):
        job = i // len(names)
        name = names[i % len(names)]
        outcome = None
        if name == "job.completed":
            outcome = ("success", "success", "failed", "retry", "dead", "noop")[job % 6]
        events.append(
            AuditEvent(
                name,
                job_id=f"job{job:06d}",
                target=f"target-{job % targets}",
                provider=("adobe", "uipath", "appflow")[job % 3],
                attempt=1,
                actor="schedule" if job % 4 else f"cli:user{job % 3}",
                outcome=outcome,
                secret_version=f"v{job}",
                time=start + i * step,
            )
        )
    return events


@pytest.fixture(scope="session")
def audit_redis_url() -> Iterator[str]:
    try:
        probe = redis.Redis.from_url(SHARED_URL, socket_connect_timeout=0.5)
        try:
            probe.ping()
            reachable = True
        finally:
            probe.close()
    except redis.RedisError:
        reachable = False
    if reachable:
        yield SHARED_URL
        return
    state = Path("/tmp") / f"rotator-audit-test-{uuid.uuid4().hex[:8]}"
    url = embedded.ensure_running(state)
    try:
        yield url
    finally:
        embedded.stop(state)


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    batch: list[Any] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


@pytest.fixture(scope="session")
def session_prefix(audit_redis_url: str) -> Iterator[str]:
    prefix = f"rotator-audit-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(audit_redis_url)
    try:
        delete_prefix(client, prefix)
    finally:
        client.close()


@pytest.fixture
def real_keys(audit_redis_url: str, session_prefix: str) -> Iterator[Keys]:
    prefix = f"{session_prefix}{uuid.uuid4().hex[:8]}:"
    yield Keys(prefix)
    client = redis.Redis.from_url(audit_redis_url)
    try:
        delete_prefix(client, prefix)
    finally:
        client.close()


@pytest.fixture
def real_sync(audit_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(audit_redis_url)
    yield client
    client.close()


Factory = Callable[[], aioredis.Redis]
