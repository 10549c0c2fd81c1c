from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from cryptography.fernet import Fernet

from rotator.audit import AuditLog
from rotator.config import Settings, TargetsConfig, load_targets
from rotator.crypto import Vault
from rotator.engine import Engine, EngineOptions
from rotator.retry import RetryPolicy
from rotator.store import RotatorStore
from rotator.store.keys import Keys
from tests.core.fakes import FakeProvider, FakeRemote

CANARY = "canary-7f3a9c1e-do-not-leak"

TARGETS = """
secrets:
  db-password:
    source: file
    path: secret.json
targets:
  crm:
    provider: fake
    base_url: https://fake.example
    resource_id: conn-1
    secret: db-password
    schedule: 1h
"""


@dataclass
class Harness:
    tmp: Path
    store: RotatorStore
    engine: Engine
    remote: FakeRemote
    provider: FakeProvider
    config: TargetsConfig
    redis: Any
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def write_secret(self, value: str) -> None:
        (self.tmp / "secret.json").write_text(json.dumps({"username": "svc", "password": value}))

    def enqueue(self, **kw: Any) -> str:
        job_id, _ = self.run(
            self.store.create_job("crm", kw.pop("reason", "on-demand"), "test", **kw)
        )
        return str(job_id)

    def expire_lease(self) -> None:
        self.run(self.redis.delete(self.store.keys.lease("crm")))

    def audit_events(self) -> list[dict[str, Any]]:
        rows = self.run(self.redis.xrange(self.store.keys.audit))
        return [json.loads(fields[b"event"]) for _id, fields in rows]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    (tmp_path / "rotator.yaml").write_text(TARGETS)
    # fake.example stands in for the provider: the operator-side policy lets it through.
    settings = Settings(insecure_hosts="fake.example:*")
    config = load_targets(tmp_path / "rotator.yaml", ["fake"], settings)
    redis = fakeredis.FakeAsyncRedis()
    keys = Keys("t:")
    vault = Vault([Fernet.generate_key().decode()], b"audit-key")
    store = RotatorStore(redis, keys, vault)
    audit = AuditLog(redis, keys, b"audit-key")
    remote = FakeRemote()
    provider = FakeProvider(remote)
    engine = Engine(
        store,
        audit,
        lambda name: provider,
        lambda: config,
        EngineOptions(lease_ttl=30, retry=RetryPolicy(max_attempts=3, base_delay=0.01)),
    )
    h = Harness(tmp_path, store, engine, remote, provider, config, redis, loop)
    h.write_secret(CANARY)
    yield h
    loop.run_until_complete(redis.aclose())
    loop.close()
