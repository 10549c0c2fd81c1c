"""Real parts: a Redis server, `rotator worker` / `rotator beat` processes, the sandbox on a socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from cryptography.fernet import Fernet

from rotator.crypto import Vault
from rotator.sandbox import defaults
from rotator.sandbox.server import SandboxServer
from rotator.urlpolicy import insecure_entry
from tools.common import SentinelRedis

CANARY_PREFIX = "canary-3c9e1b-"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as server:
        yield server


@dataclass
class System:
    tmp: Path
    env: dict[str, str]
    sandbox_url: str
    prefix: str
    redis: redis.Redis
    admin: httpx.Client
    logs: list[Path] = field(default_factory=list)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, kind: str, *args: str, name: str | None = None) -> subprocess.Popen[bytes]:
        """Start ``rotator <kind> <args>``, known as ``name`` (default: ``kind``) to ``kill``."""
        log = self.tmp / f"{kind}-{len(self.logs)}.log"
        self.logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "rotator", kind, *args],
            env=self.env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name or kind] = process
        return process

    def kill(self, kind: str) -> None:
        process = self.processes.pop(kind)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for kind in list(self.processes):
            process = self.processes.pop(kind)
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def cli(self, *args: str) -> Any:
        result = subprocess.run(
            [sys.executable, "-m", "rotator", *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def job(self, job_id: str) -> dict[str, str]:
        raw = self.redis.hgetall(f"{self.prefix}job:{job_id}")
        return {k.decode(): v.decode() for k, v in raw.items()}

    def journal(self, job_id: str) -> dict[str, Any]:
        raw = self.redis.hgetall(f"{self.prefix}job:{job_id}:journal")
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        logs = "\n".join(p.read_text()[-3000:] for p in self.logs if p.exists())
        raise AssertionError(f"timed out waiting for {what}\n{logs}")

    def vault(self) -> Vault:
        return Vault([self.env["ROTATOR_MASTER_KEY"]], self.env["ROTATOR_AUDIT_KEY"].encode())

    def current_secret(self, target: str, secret: str) -> dict[str, Any]:
        current = self.redis.hget(f"{self.prefix}target:{target}", "current")
        assert current, f"{target} has no current version"
        token = self.redis.hget(f"{self.prefix}secret:{secret}:versions", current)
        assert token is not None
        return self.vault().open(secret, current.decode(), token)


TARGETS = """
secrets:
  sfdc:
    source: file
    path: sfdc.json
targets:
  adobe-sfdc:
    provider: adobe
    base_url: {adobe}
    resource_id: conn-it-1
    secret: sfdc
    credentials:
      client_id: env:IT_ADOBE_CLIENT_ID
      client_secret: env:IT_ADOBE_CLIENT_SECRET
    options:
      ims_url: {adobe_ims}
      org_id: "{org}"
      updated_client: "sandbox integration"
"""


def seed_adobe(admin: httpx.Client, tmp_path: Path) -> None:
    """A fresh sandbox with the integration connection, and the targets file that points at it."""
    admin.post("/_sandbox/reset").raise_for_status()
    admin.put(
        "/_sandbox/adobe/resources/conn-it-1",
        json={
            "auth": {
                "specName": "Basic Authentication",
                "params": {"username": "etl", "password": "initial"},
            }
        },
    ).raise_for_status()
    urls = defaults.base_urls(str(admin.base_url).rstrip("/"))
    (tmp_path / "rotator.yaml").write_text(
        TARGETS.format(adobe=urls["adobe"], adobe_ims=urls["adobe_ims"], org=defaults.ADOBE_ORG_ID)
    )


def make_env(tmp_path: Path, redis_url: str, key_prefix: str, sandbox_url: str) -> dict[str, str]:
    """The environment of rotator processes under test: fast timings, fresh keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env.update(
        {
            "ROTATOR_REDIS_URL": redis_url,
            "ROTATOR_KEY_PREFIX": key_prefix,
            "ROTATOR_QUEUE": f"{key_prefix}q",
            "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
            "ROTATOR_AUDIT_KEY": "integration-audit-key-at-least-32-bytes",
            "ROTATOR_TARGETS_FILE": str(tmp_path / "rotator.yaml"),
            "ROTATOR_STATE_DIR": str(tmp_path / "state"),
            "ROTATOR_DISPATCH_INTERVAL": "0.5",
            "ROTATOR_RETRY_BASE_DELAY": "0.2",
            "ROTATOR_LEASE_TTL": "4",
            # A remote write must fit in the lease (see rotator.lease).
            "ROTATOR_HTTP_TIMEOUT": "3.5",
            "ROTATOR_LOG_LEVEL": "DEBUG",
            # The operator opts the local sandbox in to plain http (exactly its host:port).
            "ROTATOR_INSECURE_HOSTS": insecure_entry(sandbox_url),
            "IT_ADOBE_CLIENT_ID": defaults.ADOBE_CLIENT_ID,
            "IT_ADOBE_CLIENT_SECRET": defaults.ADOBE_CLIENT_SECRET,
        }
    )
    return env


@pytest.fixture
def system(
    tmp_path: Path, redis_url: str, key_prefix: str, sandbox: SandboxServer
) -> Iterator[System]:
    admin = httpx.Client(base_url=sandbox.url, timeout=10)
    seed_adobe(admin, tmp_path)
    env = make_env(tmp_path, redis_url, key_prefix, sandbox.url)
    client = redis.Redis.from_url(redis_url)
    system = System(tmp_path, env, sandbox.url, key_prefix, client, admin)
    try:
        yield system
    finally:
        system.stop_all()
        admin.delete("/_sandbox/faults")
        admin.close()
        client.close()


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelRedis]:
    """A primary, a replica and three sentinels of our own (stopped after the test)."""
    cluster = SentinelRedis(tmp_path / "redis", tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
