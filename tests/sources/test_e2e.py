"""End to end: a real worker rotates the sandbox's Adobe connection to a secret read from a real
OpenBao or a real moto Secrets Manager, including a retry after a lost PATCH response while the
secret store moves on: the retry applies the version the job pinned, the next job the new one."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from rotator.sandbox.server import SandboxServer
from tests.integration.conftest import CANARY_PREFIX, System, make_env, seed_adobe
from tests.sources.conftest import Bao, Moto, unique

pytestmark = pytest.mark.integration


@dataclass
class Store:
    secret_yaml: str  # the `secrets.sfdc` entry of the targets file
    env: dict[str, str]
    write: Callable[[dict[str, str]], str]  # a new value -> the store's version id
    origin: Callable[[str], str]  # the store's version id -> the journalled origin


def _insecure(*urls: str) -> str:
    return ",".join(httpx.URL(u).host + f":{httpx.URL(u).port}" for u in urls)


def vault_store(bao: Bao) -> Store:
    path = unique("apps/sfdc")
    spec = f"""
    source: vault
    vault:
      address: {bao.url}
      path: {path}
      fields: [username, password]
      credentials: {{token: env:IT_VAULT_TOKEN}}
"""
    return Store(
        spec,
        {"IT_VAULT_TOKEN": bao.root_token},
        lambda value: str(bao.put(path, value)),
        lambda kv_version: f"vault secret/{path} version {kv_version}",
    )


def aws_store(moto: Moto) -> Store:
    name = unique("prod/sfdc")
    client = moto.client()
    client.create_secret(Name=name, Description="rotator e2e")
    spec = f"""
    source: aws-secrets-manager
    aws_secrets_manager:
      secret_id: {name}
      region: {moto.region}
      endpoint_url: {moto.url}
      credentials: {{access_key_id: env:IT_AWS_KEY, secret_access_key: env:IT_AWS_SECRET}}
"""

    def write(value: dict[str, str]) -> str:
        return str(
            client.put_secret_value(SecretId=name, SecretString=json.dumps(value))["VersionId"]
        )

    return Store(
        spec,
        {"IT_AWS_KEY": "testing", "IT_AWS_SECRET": "testing"},
        write,
        lambda version_id: f"aws-secrets-manager {name} VersionId {version_id}",
    )


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as server:
        yield server


@pytest.fixture(params=["vault", "aws-secrets-manager"])
def rig(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    key_prefix: str,
    sandbox: SandboxServer,
) -> Iterator[tuple[System, Store]]:
    if request.param == "vault":
        bao: Bao = request.getfixturevalue("bao")
        store, server_url = vault_store(bao), bao.url
    else:
        moto: Moto = request.getfixturevalue("moto")
        store, server_url = aws_store(moto), moto.url
    admin = httpx.Client(base_url=sandbox.url, timeout=10)
    seed_adobe(admin, tmp_path)
    targets = tmp_path / "rotator.yaml"
    text = targets.read_text()
    head, _, rest = text.partition("targets:")
    targets.write_text("secrets:\n  sfdc:" + store.secret_yaml + "targets:" + rest)
    env = make_env(tmp_path, redis_url, key_prefix, sandbox.url)
    env.update(store.env)
    env["ROTATOR_INSECURE_HOSTS"] = _insecure(server_url, sandbox.url)
    client = redis.Redis.from_url(redis_url)
    system = System(tmp_path, env, sandbox.url, key_prefix, client, admin)
    try:
        yield system, store
    finally:
        system.stop_all()
        admin.delete("/_sandbox/faults")
        admin.close()
        client.close()


def applied_passwords(system: System) -> list[str]:
    state = system.admin.get("/_sandbox/adobe/resources/conn-it-1").json()
    return [h["secret"].get("password") for h in state["history"] if h["by"] == "api"]


def test_retry_after_a_lost_response_applies_the_pinned_version(
    rig: tuple[System, Store],
) -> None:
    system, store = rig
    first = CANARY_PREFIX + uuid.uuid4().hex
    second = CANARY_PREFIX + uuid.uuid4().hex
    first_version = store.write({"username": "etl", "password": first})
    # Given the PATCH is slow (a window to change the store) and its response is lost
    patch = {"provider": "adobe", "methods": ["PATCH"], "count": 1}
    system.admin.put(
        "/_sandbox/faults",
        json={
            "rules": [
                {**patch, "kind": "latency", "ms": 1500},
                {**patch, "kind": "drop_response"},
            ]
        },
    ).raise_for_status()
    system.start("worker", "--concurrency", "2")
    system.start("beat")

    # When a job pins the secret, and the store gets a new value while its PATCH is in flight
    job_id = system.cli("enqueue", "adobe-sfdc")["job_id"]
    system.wait("intent journalled", lambda: "intent" in system.journal(job_id), timeout=60)
    store.write({"username": "etl", "password": second})
    system.wait("job completed", lambda: system.job(job_id).get("state") == "completed", timeout=90)

    # Then the retry applied the pinned value, once, and the journal names the store's version
    job = system.job(job_id)
    assert int(job["attempts"]) == 2
    assert applied_passwords(system) == [first]
    assert system.current_secret("adobe-sfdc", "sfdc") == {"username": "etl", "password": first}
    assert system.journal(job_id)["secret"]["origin"] == store.origin(first_version)

    # And the next job takes the store's new value
    next_id = system.cli("enqueue", "adobe-sfdc")["job_id"]
    system.wait(
        "next job completed", lambda: system.job(next_id).get("state") == "completed", timeout=90
    )
    assert applied_passwords(system) == [first, second]
    assert system.current_secret("adobe-sfdc", "sfdc")["password"] == second

    # And no value shows in the worker's logs
    system.stop_all()
    for log in system.logs:
        text = log.read_text(errors="replace")
        assert first not in text and second not in text, log
