"""Notification fixtures: a targets file with a notify section, a fakeredis store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from cryptography.fernet import Fernet

from rotator.config import Settings, TargetsConfig, load_targets
from rotator.crypto import Vault
from rotator.store import RotatorStore
from rotator.store.keys import Keys

TARGETS = """
secrets:
  db-password: {source: file, path: secret.json}
notify:
  webhooks:
    ops:
      url: https://hooks.example.com/rotator
      secret_env: NOTIFY_OPS_KEY
    chat:
      url: https://hooks.slack.com/services/T0/B0/x
      format: slack
      secret_env: NOTIFY_CHAT_KEY
      events: [conflict, dead]
      rate_per_minute: 60
      burst: 2
  dedupe_window: 10m
targets:
  crm:
    provider: fake
    base_url: https://fake.example
    resource_id: conn-1
    secret: db-password
    schedule: 1h
  erp:
    provider: fake
    base_url: https://fake.example
    resource_id: conn-2
    secret: db-password
    notify: {webhooks: [chat], events: [conflict]}
"""

SETTINGS = Settings(insecure_hosts="fake.example:*", allowed_hosts="notify=hooks.example.com")


def load(tmp: Path, text: str = TARGETS, settings: Settings = SETTINGS) -> TargetsConfig:
    (tmp / "rotator.yaml").write_text(text)
    return load_targets(tmp / "rotator.yaml", ["fake"], settings)


@dataclass
class Queue:
    store: RotatorStore
    config: TargetsConfig
    redis: Any
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def due(self) -> dict[str, float]:
        rows = self.run(self.redis.zrange(self.store.keys.notify_due, 0, -1, withscores=True))
        return {k.decode(): score for k, score in rows}


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[Queue]:
    loop = asyncio.new_event_loop()
    redis = fakeredis.FakeAsyncRedis()
    store = RotatorStore(redis, Keys("n:"), Vault([Fernet.generate_key().decode()], b"k"))
    yield Queue(store, load(tmp_path), redis, loop)
    loop.run_until_complete(redis.aclose())
    loop.close()
