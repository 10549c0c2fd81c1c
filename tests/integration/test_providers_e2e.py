"""Every provider through the whole engine, over real HTTP against the sandbox, real Redis.

For each provider and each documented failure path the job must end in the right outcome, and
the provider's live state must then equal rotator's `current` (or be left untouched).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from rotator.config import Settings
from rotator.demo import (
    DemoTarget,
    demo_targets,
    sandbox_credentials_env,
    seed_sandbox,
    write_targets,
)
from rotator.engine import Outcome
from rotator.runtime import ConfigHolder, Runtime, run_until_idle
from rotator.sandbox.server import SandboxServer
from rotator.urlpolicy import insecure_entry

pytestmark = pytest.mark.integration

# The request that carries each provider's update (what a fault rule must hit).
UPDATE = {
    "adobe": ("PATCH", "/connections/"),
    "appflow": ("POST", "/update-connector-profile"),
    "uipath": ("PUT", "/RobotAccount/"),
    "commercelayer": ("PATCH", "/api_credentials/"),
    "ciphertrust": ("PATCH", "/cckm/sfdc/organizations/"),
}
PROVIDERS = sorted(UPDATE)


def live_secret_matches(
    provider: str, admin: httpx.Client, target: DemoTarget, fields: dict[str, Any]
) -> bool:
    """Does the sandbox's live state carry exactly these secret fields?"""
    state = admin.get(f"/_sandbox/{provider}/resources/{target.resource_id}").json()
    if provider == "adobe":
        return all(state["auth"]["params"].get(k) == v for k, v in fields.items())
    if provider == "appflow":
        creds = state["connectorProfileCredentials"]["Salesforce"]
        return all(creds.get(k) == v for k, v in fields.items())
    if provider == "uipath":
        return sorted(state["groupIds"]) == sorted(fields["groupIds"])
    if provider == "commercelayer":
        return state["reference"] == fields["reference"] and state["role_id"] == fields["role_id"]
    conn = admin.get(
        f"/_sandbox/ciphertrust/connections/{ciphertrust_id(admin, state['connection'])}"
    )
    return all(conn.json().get(k) == v for k, v in fields.items())


def ciphertrust_id(admin: httpx.Client, name: str) -> str:
    """Organizations name their connection; the admin view is by id: ask the API, as a user would."""
    from rotator.sandbox import defaults as d

    token = admin.post(
        "/api/v1/auth/tokens/",
        json={
            "grant_type": "password",
            "username": d.CIPHERTRUST_USERNAME,
            "password": d.CIPHERTRUST_PASSWORD,
        },
    ).json()["jwt"]
    found = admin.get(
        "/api/v1/connectionmgmt/services/salesforce/connections",
        params={"name": name},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    return str(found["resources"][0]["id"])


def api_changes(provider: str, admin: httpx.Client, target: DemoTarget) -> int:
    state = admin.get(f"/_sandbox/{provider}/resources/{target.resource_id}").json()
    return sum(1 for h in state["history"] if h["by"] == "api")


class Rig:
    def __init__(self, tmp: Path, redis_url: str, prefix: str, url: str) -> None:
        self.admin = httpx.Client(base_url=url, timeout=10)
        self.targets = {t.provider: t for t in demo_targets(url)}
        self.settings = Settings(
            redis_url=redis_url,
            key_prefix=prefix,
            targets_file=tmp / "rotator.yaml",
            state_dir=tmp / "state",
            master_key=Fernet.generate_key().decode(),
            audit_key="e2e-audit-key-at-least-32-bytes-long",
            retry_base_delay=0.05,
            retry_max_delay=0.5,
            max_attempts=5,
            http_timeout=1.0,
            lease_ttl=10,
            insecure_hosts=insecure_entry(url),
        )
        write_targets(self.settings.targets_file, list(self.targets.values()))
        self.loop = asyncio.new_event_loop()
        self.runtime = self.run(self._build())

    async def _build(self) -> Runtime:
        runtime = Runtime(self.settings, ConfigHolder(self.settings))
        fields = {"displayName": "ETL robot", "groupIds": ["g-etl", "g-shared"]}
        await runtime.store.put_secret_version("robot-access", fields)
        return runtime

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def enqueue(self, provider: str) -> str:
        job_id, _ = self.run(self.runtime.enqueue(self.targets[provider].name, actor="test"))
        return str(job_id)

    def job(self, job_id: str) -> Any:
        return self.run(self.runtime.store.load_job(job_id))

    def current_fields(self, provider: str) -> dict[str, Any]:
        target = self.targets[provider]
        state = self.run(self.runtime.store.target_state(target.name))
        return dict(
            self.run(self.runtime.store.load_secret_version(target.secret_name, state["current"]))
        )

    def faults(self, provider: str, kind: str, **rule: Any) -> None:
        method, path = UPDATE[provider]
        body = {
            "rules": [
                {
                    "provider": provider,
                    "kind": kind,
                    "methods": [method],
                    "path": path,
                    "count": 1,
                    **rule,
                }
            ]
        }
        self.admin.put("/_sandbox/faults", json=body).raise_for_status()

    def close(self) -> None:
        self.run(self.runtime.aclose())
        self.loop.close()
        self.admin.close()


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as server:
        yield server


@pytest.fixture
def rig(
    tmp_path: Path,
    redis_url: str,
    key_prefix: str,
    sandbox_server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Rig]:
    for key, value in sandbox_credentials_env().items():
        monkeypatch.setenv(key, value)
    admin = httpx.Client(base_url=sandbox_server.url, timeout=10)
    admin.post("/_sandbox/reset").raise_for_status()
    seed_sandbox(admin, demo_targets(sandbox_server.url))
    admin.close()
    rig = Rig(tmp_path, redis_url, key_prefix, sandbox_server.url)
    yield rig
    rig.close()


def converge(rig: Rig) -> dict[str, int]:
    return dict(rig.run(run_until_idle(rig.runtime, max_wait=30)))


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("none", {}),
        ("error", {"status": 503}),
        ("rate_limit", {"retry_after": 0.1}),
        ("drop_response", {}),
        ("reset", {}),
        ("timeout", {"ms": 2500}),
    ],
)
def test_faults_on_the_update_are_retried_to_success(
    rig: Rig, provider: str, kind: str, rule: dict[str, Any]
) -> None:
    if kind != "none":
        rig.faults(provider, kind, **rule)
    job_id = rig.enqueue(provider)

    counts = converge(rig)

    job = rig.job(job_id)
    assert str(job.state) == "completed", (counts, job.last_error_class, job.last_error)
    assert job.attempts == (1 if kind == "none" else 2)
    target = rig.targets[provider]
    assert live_secret_matches(provider, rig.admin, target, rig.current_fields(provider))
    # Applied exactly once, whatever happened to the response.
    assert api_changes(provider, rig.admin, target) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_out_of_band_edit_during_a_retry_is_a_conflict(rig: Rig, provider: str) -> None:
    # A refused update (429) proves nothing was applied; then someone edits the resource.
    rig.faults(provider, "rate_limit", retry_after=0)
    job_id = rig.enqueue(provider)
    target = rig.targets[provider]
    claimed = rig.run(rig.runtime.store.claim_due_jobs(time.time(), 10, 60))
    assert claimed == [job_id]
    assert rig.run(rig.runtime.process(job_id)) is Outcome.RETRY
    edit: dict[str, Any] | None = None
    if provider == "ciphertrust":
        # Re-point the organization at a connection made by hand (a random re-point could
        # pick the connection this job just created, which would be ours after all).
        rig.admin.put(
            "/_sandbox/ciphertrust/connections/hand-made", json={"name": "hand-made"}
        ).raise_for_status()
        edit = {"connection": "hand-made"}
    elif provider == "appflow":
        # A credentials-only edit looks exactly like AppFlow's own token refresh: edit a setting.
        edit = {"connectorProfileProperties": {"Salesforce": {"instanceUrl": "https://x.test"}}}
    rig.admin.post(
        f"/_sandbox/{provider}/resources/{target.resource_id}/oob", json=edit
    ).raise_for_status()
    time.sleep(0.6)

    converge(rig)

    job = rig.job(job_id)
    assert str(job.state) == "conflict", (job.last_error_class, job.last_error)
    state = rig.admin.get(f"/_sandbox/{provider}/resources/{target.resource_id}").json()
    assert state["history"][-1]["by"] == "oob"  # never overwritten
    assert api_changes(provider, rig.admin, target) == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_missing_resource_fails_permanently(rig: Rig, provider: str) -> None:
    target = rig.targets[provider]
    rig.settings.targets_file.write_text(
        rig.settings.targets_file.read_text().replace(
            f"resource_id: {target.resource_id}", "resource_id: does-not-exist"
        )
    )
    rig.runtime.config = ConfigHolder(rig.settings)
    rig.runtime.engine.config = rig.runtime.config.get
    job_id = rig.enqueue(provider)

    converge(rig)

    job = rig.job(job_id)
    assert str(job.state) == "failed"
    assert job.attempts == 1
    assert job.last_error_class in {"NotFound", "BadRequest"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rejected_management_credentials_fail_with_auth_error(
    rig: Rig, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in sandbox_credentials_env():
        if "SECRET" in key or "PASSWORD" in key:
            monkeypatch.setenv(key, "wrong-" + uuid.uuid4().hex)
    job_id = rig.enqueue(provider)

    converge(rig)

    job = rig.job(job_id)
    assert str(job.state) == "failed"
    assert job.last_error_class == "AuthError"
    assert "wrong-" not in job.last_error


def test_many_rotations_mint_one_token_per_provider(rig: Rig) -> None:
    rig.admin.post("/_sandbox/reset").raise_for_status()
    seed_sandbox(rig.admin, list(rig.targets.values()))
    for _round in range(4):
        for provider in PROVIDERS:
            rig.enqueue(provider)
        converge(rig)
    minted = rig.admin.get("/_sandbox/stats").json()["tokens_minted"]
    # AppFlow signs requests (SigV4) and has no token endpoint.
    assert {p: minted.get(p, 0) for p in PROVIDERS if p != "appflow"} == {
        "adobe": 1,
        "ciphertrust": 1,
        "commercelayer": 1,
        "uipath": 1,
    }


def test_fifty_targets_across_five_providers_converge_under_faults(
    tmp_path: Path,
    redis_url: str,
    key_prefix: str,
    sandbox_server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in sandbox_credentials_env().items():
        monkeypatch.setenv(key, value)
    admin = httpx.Client(base_url=sandbox_server.url, timeout=10)
    admin.post("/_sandbox/reset").raise_for_status()
    base = demo_targets(sandbox_server.url)
    targets: list[DemoTarget] = []
    for i in range(10):
        for t in base:
            rid = f"{t.resource_id}-{i}"
            targets.append(
                dataclasses.replace(
                    t, name=f"{t.name}-{i}", secret_name=f"{t.secret_name}-{i}", resource_id=rid
                )
            )
    seed_sandbox(admin, targets)
    rules = [
        {
            "provider": "*",
            "kind": kind,
            "rate": 0.15,
            "methods": ["PATCH", "PUT", "POST"],
            "path": "connections/|update-connector|RobotAccount/|api_credentials/|organizations/",
            **extra,
        }
        for kind, extra in [
            ("error", {"status": 503}),
            ("drop_response", {}),
            ("reset", {}),
            ("rate_limit", {"retry_after": 0.05}),
        ]
    ]
    admin.put("/_sandbox/faults", json={"seed": 7, "rules": rules}).raise_for_status()
    rig = Rig.__new__(Rig)
    rig.admin = admin
    rig.targets = {}
    rig.settings = Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        targets_file=tmp_path / "rotator.yaml",
        state_dir=tmp_path / "state",
        master_key=Fernet.generate_key().decode(),
        audit_key="e2e-audit-key-at-least-32-bytes-long",
        retry_base_delay=0.05,
        retry_max_delay=0.3,
        max_attempts=12,
        http_timeout=1.0,
        lease_ttl=10,
        insecure_hosts=insecure_entry(str(admin.base_url)),
    )
    write_targets(rig.settings.targets_file, targets)
    rig.loop = asyncio.new_event_loop()
    rig.runtime = rig.run(_runtime_with_robot_versions(rig.settings, targets))
    try:
        job_ids = [rig.run(rig.runtime.enqueue(t.name, actor="test"))[0] for t in targets]
        random.Random(3).shuffle(job_ids)
        converge(rig)
        states = [str(rig.job(j).state) for j in job_ids]
        assert states.count("completed") == len(targets), states
        for t in targets:
            tstate = rig.run(rig.runtime.store.target_state(t.name))
            fields = rig.run(
                rig.runtime.store.load_secret_version(t.secret_name, tstate["current"])
            )
            assert live_secret_matches(t.provider, admin, t, dict(fields)), t.name
            assert api_changes(t.provider, admin, t) == 1, t.name
        injected = admin.get("/_sandbox/stats").json()["faults_injected"]
        assert sum(injected.values()) > 0
    finally:
        admin.delete("/_sandbox/faults")
        rig.close()


async def _runtime_with_robot_versions(settings: Settings, targets: list[DemoTarget]) -> Runtime:
    runtime = Runtime(settings, ConfigHolder(settings))
    for t in targets:
        if t.provider == "uipath":
            await runtime.store.put_secret_version(
                t.secret_name, {"displayName": "ETL robot", "groupIds": ["g-etl", t.name]}
            )
    return runtime
