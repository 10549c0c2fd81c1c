"""The engine with the real AppFlow adapter against the sandbox: AppFlow's own token refresh.

AppFlow refreshes a profile's OAuth tokens itself, which moves ``lastUpdatedAt`` although no one
updated the profile. A moved ``lastUpdatedAt`` alone must never be called a conflict; a real
out-of-band edit of the profile's settings still is.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fakeredis
import pytest
from cryptography.fernet import Fernet

from rotator.audit import AuditLog
from rotator.config import Settings, load_targets
from rotator.crypto import Vault
from rotator.engine import Engine, EngineOptions, Outcome
from rotator.providers.appflow import AppFlow
from rotator.providers.base import ProviderContext
from rotator.retry import RetryPolicy
from rotator.sandbox import defaults as D
from rotator.store import RotatorStore
from rotator.store.keys import Keys

from .conftest import Admin
from .helpers import CANARY

pytestmark = pytest.mark.integration

PROFILE = "sfdc-refreshing"
PROPS = {"Salesforce": {"instanceUrl": "https://acme.my.salesforce.com"}}

TARGETS = """
secrets:
  sfdc-oauth:
    source: file
    path: secret.json
targets:
  crm:
    provider: appflow
    base_url: {url}
    resource_id: {profile}
    secret: sfdc-oauth
    schedule: 1h
    options: {{region: {region}}}
    credentials:
      aws_access_key_id: env:AKID
      aws_secret_access_key: env:SAK
"""


@dataclass
class Rig:
    engine: Engine
    store: RotatorStore
    admin: Admin
    redis: Any
    keys: Keys
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def enqueue(self) -> str:
        job_id, _ = self.run(self.store.create_job("crm", "on-demand", "test"))
        return str(job_id)

    def events(self, job_id: str) -> list[str]:
        rows = self.run(self.redis.xrange(self.keys.audit))
        decoded = [json.loads(fields[b"event"]) for _id, fields in rows]
        return [e["event"] for e in decoded if e["job_id"] == job_id]

    def profile(self) -> Any:
        return self.admin.get("appflow", PROFILE)


@pytest.fixture
def rig(tmp_path: Path, admin: Admin, sandbox_url: str) -> Iterator[Rig]:
    host = urlsplit(sandbox_url).hostname
    (tmp_path / "rotator.yaml").write_text(
        TARGETS.format(url=sandbox_url, profile=PROFILE, region=D.AWS_REGION)
    )
    (tmp_path / "secret.json").write_text(
        json.dumps({"accessToken": "access-" + CANARY, "refreshToken": "refresh-" + CANARY})
    )
    config = load_targets(
        tmp_path / "rotator.yaml", ["appflow"], Settings(insecure_hosts=f"{host}:*")
    )
    loop = asyncio.new_event_loop()
    redis = fakeredis.FakeAsyncRedis()
    keys = Keys("t:")
    vault = Vault([Fernet.generate_key().decode()], b"audit-key")
    store = RotatorStore(redis, keys, vault)
    ctx = ProviderContext(timeout=5.0)
    provider = AppFlow(ctx)
    engine = Engine(
        store,
        AuditLog(redis, keys, b"audit-key"),
        lambda name: provider,
        lambda: config,
        EngineOptions(
            lease_ttl=30,
            retry=RetryPolicy(max_attempts=3, base_delay=0.01),
            environ={"AKID": D.AWS_ACCESS_KEY_ID, "SAK": D.AWS_SECRET_ACCESS_KEY},
        ),
    )
    yield Rig(engine, store, admin, redis, keys, loop)
    loop.run_until_complete(ctx.aclose())
    loop.run_until_complete(redis.aclose())
    loop.close()


def seed(admin: Admin, **extra: Any) -> None:
    admin.put(
        "appflow",
        PROFILE,
        {
            "connectorProfileProperties": PROPS,
            "connectorProfileCredentials": {
                "Salesforce": {"accessToken": "a0", "refreshToken": "r0"}
            },
            **extra,
        },
    )


def refused_update_once(admin: Admin) -> None:
    # Attempt 1 records its intent, then AppFlow throttles the update: nothing applied.
    admin.faults(
        {
            "provider": "appflow",
            "kind": "rate_limit",
            "retry_after": 0,
            "path": "update-connector-profile",
            "count": 1,
        }
    )


def test_refresh_between_attempts_is_not_a_conflict(rig: Rig) -> None:
    # Given a job whose first update was refused after its intent was journalled
    seed(rig.admin)
    refused_update_once(rig.admin)
    job_id = rig.enqueue()
    assert rig.run(rig.engine.process(job_id)) is Outcome.RETRY
    # When AppFlow refreshes the profile's OAuth token before the retry
    before = rig.profile()["lastUpdatedAt"]
    rig.admin.c.post(f"/_sandbox/appflow/resources/{PROFILE}/refresh").raise_for_status()
    assert rig.profile()["lastUpdatedAt"] > before

    # Then the retry rotates: a moved lastUpdatedAt alone is a refresh, not an edit
    assert rig.run(rig.engine.process(job_id)) is Outcome.COMPLETED
    live = rig.profile()["connectorProfileCredentials"]["Salesforce"]
    assert live["refreshToken"] == "refresh-" + CANARY
    assert "job.conflict" not in rig.events(job_id)


def test_refresh_between_every_read_and_write_is_not_a_conflict(rig: Rig) -> None:
    # Given a profile that AppFlow refreshes after every Describe (between read and write)
    seed(rig.admin, refreshOnDescribe=True)
    refused_update_once(rig.admin)
    job_id = rig.enqueue()

    # When a job needs two attempts, each seeing a lastUpdatedAt the previous read did not
    assert rig.run(rig.engine.process(job_id)) is Outcome.RETRY
    assert rig.run(rig.engine.process(job_id)) is Outcome.COMPLETED

    # Then it completed, and the sandbox did refresh in between
    profile = rig.profile()
    assert profile["refreshes"] >= 2
    assert [h["by"] for h in profile["history"]] == ["api"]
    assert "update.replaced_foreign_change" not in rig.events(job_id)


def test_out_of_band_settings_edit_between_attempts_is_still_a_conflict(rig: Rig) -> None:
    # Given a job whose first update was refused after its intent was journalled
    seed(rig.admin)
    refused_update_once(rig.admin)
    job_id = rig.enqueue()
    assert rig.run(rig.engine.process(job_id)) is Outcome.RETRY
    # When an operator edits the profile by hand (a new instance URL) before the retry
    edited = {"Salesforce": {"instanceUrl": "https://other.my.salesforce.com"}}
    rig.admin.oob("appflow", PROFILE, {"connectorProfileProperties": edited})

    # Then the retry refuses to overwrite it
    assert rig.run(rig.engine.process(job_id)) is Outcome.CONFLICT
    profile = rig.profile()
    assert profile["connectorProfileProperties"] == edited
    assert [h["by"] for h in profile["history"]] == ["oob"]


@pytest.mark.parametrize("reuse_error", ["ConflictException", "ValidationException"])
def test_token_reused_with_other_settings_is_a_conflict_either_way(
    rig: Rig, reuse_error: str
) -> None:
    # Given an update that landed but whose answer was lost
    seed(rig.admin, tokenReuseError=reuse_error)
    rig.admin.faults(
        {
            "provider": "appflow",
            "kind": "drop_response",
            "path": "update-connector-profile",
            "count": 1,
        }
    )
    job_id = rig.enqueue()
    assert rig.run(rig.engine.process(job_id)) is Outcome.RETRY
    # When an operator then edits the profile's settings, so the resend carries other
    # parameters under the same clientToken
    edited = {"Salesforce": {"instanceUrl": "https://other.my.salesforce.com"}}
    rig.admin.oob("appflow", PROFILE, {"connectorProfileProperties": edited})

    # Then AppFlow's complaint about the token, in either form, is a conflict, never "failed"
    assert rig.run(rig.engine.process(job_id)) is Outcome.CONFLICT
    profile = rig.profile()
    assert profile["connectorProfileProperties"] == edited
    assert [h["by"] for h in profile["history"]] == ["api", "oob"]
