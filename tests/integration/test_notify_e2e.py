"""Notifications end to end: the engine on a real Redis, a webhook receiver on a real socket.

A failed and a conflicted rotation are delivered to two webhooks (generic JSON and Slack),
signed, retried after the receiver's first 500, and deduplicated when the conflict's terminal
event is written a second time (the audit log was down the first time, so a later delivery of
the job writes the owed event and hands it to the notifier again). No payload carries the
secret value (the canary), not even the provider's error quoting it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from cryptography.fernet import Fernet

from rotator.audit import AuditLog
from rotator.config import Settings, load_targets
from rotator.crypto import Vault
from rotator.engine import Engine, EngineOptions
from rotator.errors import AuditUnavailable, BadRequest, TransportError
from rotator.models import Outcome
from rotator.notify.deliver import Deliverer, DeliveryBackoff, WebhookClient, verify
from rotator.notify.queue import QueueNotifier
from rotator.retry import RetryPolicy
from rotator.store import RotatorStore
from rotator.store.keys import Keys
from tests.core.fakes import FakeProvider, FakeRemote
from tests.integration.webhook import Hit, Receiver, receiver

pytestmark = pytest.mark.integration

CANARY = "canary-notify-5b1e7d20c4a9"
KEYS = {"E2E_OPS_KEY": "ops-key-1f0c", "E2E_CHAT_KEY": "chat-key-77ab"}

TARGETS = """
secrets:
  db-password: {{source: file, path: secret.json}}
notify:
  webhooks:
    ops: {{url: "http://127.0.0.1:{port}/ops", secret_env: E2E_OPS_KEY}}
    chat:
      url: "http://127.0.0.1:{port}/chat"
      format: slack
      secret_env: E2E_CHAT_KEY
      events: [conflict]
targets:
  crm:
    provider: fake
    base_url: https://fake.example
    resource_id: conn-1
    secret: db-password
"""


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def test_failed_and_conflicted_rotations_reach_the_webhooks_signed_once_after_a_retry(
    tmp_path: Path, redis_url: str, key_prefix: str, webhook: Receiver
) -> None:
    state, port = webhook, webhook.port
    handed: list[tuple[str, bool]] = []  # (event, queued) for every notice the engine hands on
    # Given a targets file with two webhooks on the receiver, and a secret holding the canary
    (tmp_path / "rotator.yaml").write_text(TARGETS.format(port=port))
    (tmp_path / "secret.json").write_text(json.dumps({"username": "svc", "password": CANARY}))
    settings = Settings(insecure_hosts=f"fake.example:*,127.0.0.1:{port}")
    config = load_targets(tmp_path / "rotator.yaml", ["fake"], settings)

    async def scenario() -> tuple[str, str]:
        client = aioredis.Redis.from_url(redis_url)
        keys = Keys(key_prefix)
        store = RotatorStore(client, keys, Vault([Fernet.generate_key().decode()], b"audit"))
        audit = AuditLog(client, keys, b"audit")
        remote = FakeRemote()
        provider = FakeProvider(remote)
        notifier = QueueNotifier(store, lambda: config)
        queue_notice = notifier.notify

        async def counted(notice: Any) -> bool:
            queued = await queue_notice(notice)
            handed.append((str(notice.kind), queued))
            return queued

        notifier.notify = counted  # type: ignore[method-assign]
        engine = Engine(
            store,
            audit,
            lambda _name: provider,
            lambda: config,
            EngineOptions(lease_ttl=30, retry=RetryPolicy(base_delay=0.01), notifier=notifier),
        )
        sender = WebhookClient(settings.url_policy(), environ=KEYS, timeout=3.0)
        backoff = DeliveryBackoff(base_delay=0.05, max_delay=0.2, max_attempts=5)
        deliverer = Deliverer(store, lambda: config, sender, backoff=backoff)
        try:
            # When one rotation fails: the provider refuses it, quoting the secret value
            provider.apply_faults.append(
                BadRequest(f"value '{CANARY}' at 'password' is invalid", status=400)
            )
            failed, _ = await store.create_job("crm", "on-demand", "test")
            assert await engine.process(failed) is Outcome.FAILED

            # And another ends in a conflict whose terminal audit event could not be written
            provider.apply_faults.append(TransportError("reset", status=0, maybe_applied=False))
            conflicted, _ = await store.create_job("crm", "on-demand", "test")
            assert await engine.process(conflicted) is Outcome.RETRY
            remote.oob_edit()
            real_emit = audit.emit
            down = {"job.conflict"}

            async def audit_down_once(event: Any) -> Any:
                if event.event in down:
                    down.discard(event.event)
                    raise AuditUnavailable("redis stream unavailable")
                return await real_emit(event)

            audit.emit = audit_down_once  # type: ignore[method-assign]
            assert await engine.process(conflicted) is Outcome.CONFLICT
            await store.defer(conflicted, time.time())  # the owed event's next delivery
            assert await engine.process(conflicted) is Outcome.SKIPPED  # writes it, notifies

            # Then the queue drains: every delivery fails once (500), then is delivered
            deadline = time.monotonic() + 20
            while await store.queued_deliveries() and time.monotonic() < deadline:
                await deliverer.drain()
                await asyncio.sleep(0.05)
            assert await store.queued_deliveries() == 0
            assert await store.failed_deliveries() == []
            return failed, conflicted
        finally:
            await deliverer.aclose()
            await client.aclose()

    failed, conflicted = asyncio.run(scenario())
    assert handed == [("failed", True), ("conflict", True), ("conflict", False)]

    # Each delivery was tried twice (500, then 200) under one delivery id: three deliveries
    # (failed -> ops; conflict -> ops and chat), the conflict's second ending deduplicated.
    by_delivery: dict[str, list[Hit]] = {}
    for hit in state.hits:
        by_delivery.setdefault(hit.headers["x-rotator-delivery"], []).append(hit)
    assert len(by_delivery) == 3
    assert all([h.status for h in hits] == [500, 200] for hits in by_delivery.values())

    # Every request is signed with its webhook's key, and carries no secret value
    for hit in state.hits:
        key = KEYS["E2E_OPS_KEY" if hit.path == "/ops" else "E2E_CHAT_KEY"].encode()
        assert verify(key, hit.body, hit.headers["x-rotator-signature"])
        assert CANARY not in hit.body.decode()
        assert json.dumps(CANARY)[1:-1] not in hit.body.decode()

    ops = [json.loads(h.body) for h in state.hits if h.path == "/ops" and h.status == 200]
    assert sorted((p["event"], p["job_id"]) for p in ops) == sorted(
        [("failed", failed), ("conflict", conflicted)]
    )
    for payload in ops:
        assert payload["target"] == "crm" and payload["provider"] == "fake"
        assert payload["secret_version"] and payload["fingerprint"]
    failed_payload = next(p for p in ops if p["event"] == "failed")
    assert failed_payload["error_class"] == "BadRequest"
    assert "[redacted]" in failed_payload["detail"]
    conflict_payload = next(p for p in ops if p["event"] == "conflict")
    assert conflict_payload["remote_version_before"] != conflict_payload["remote_version_after"]
    (chat,) = [json.loads(h.body) for h in state.hits if h.path == "/chat" and h.status == 200]
    assert chat["text"].startswith("[rotator] conflict: target crm") and conflicted in json.dumps(
        chat["blocks"]
    )
