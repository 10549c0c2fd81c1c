"""A real ``rotator api`` process on a free port, against the shared Redis under its own key
prefix, with four tokens: one per scope and one with every scope."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from cryptography.fernet import Fernet

from tools.common import delete_prefix, free_port

TARGETS = """
secrets:
  s1:
    source: generate
    length: 24
    field: password
targets:
  crm:
    provider: adobe
    base_url: https://127.0.0.1:9/flowservice
    resource_id: conn-1
    secret: s1
    schedule: 30d
  erp:
    provider: adobe
    base_url: https://127.0.0.1:9/flowservice
    resource_id: conn-2
    secret: s1
    schedule: 7d
"""

# token name -> scopes; each token's value is random per run.
TOKENS = {
    "all": ("enqueue", "read", "audit"),
    "bot": ("enqueue",),
    "viewer": ("read",),
    "auditor": ("audit",),
}


@dataclass
class Api:
    url: str
    tokens: dict[str, str]
    prefix: str
    redis: redis.Redis
    log: Path
    process: subprocess.Popen[bytes]

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def api_env(tmp: Path, redis_url: str, prefix: str, tokens: dict[str, str]) -> dict[str, str]:
    (tmp / "rotator.yaml").write_text(TARGETS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    entries = [
        f"{name}:{'+'.join(TOKENS[name])}:{hashlib.sha256(value.encode()).hexdigest()}"
        for name, value in tokens.items()
    ]
    env.update(
        ROTATOR_REDIS_URL=redis_url,
        ROTATOR_KEY_PREFIX=prefix,
        ROTATOR_MASTER_KEY=Fernet.generate_key().decode(),
        ROTATOR_AUDIT_KEY="api-test-audit-key",
        ROTATOR_TARGETS_FILE=str(tmp / "rotator.yaml"),
        ROTATOR_STATE_DIR=str(tmp / "state"),
        ROTATOR_LOG_LEVEL="DEBUG",
        ROTATOR_API_TOKENS=",".join(entries),
        ROTATOR_API_MAX_BODY="2048",
        # the targets point at a closed local port, never called: allow the host, https only
        ROTATOR_ALLOWED_HOSTS="adobe=127.0.0.1",
    )
    return env


def start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rotator", "api", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"rotator api exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/v1/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    stop(process)
    raise AssertionError(f"rotator api did not start:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def api(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("api")
    prefix = f"rotator-test:{uuid.uuid4().hex[:12]}:"
    tokens = {name: f"tok-{name}-{uuid.uuid4().hex}{uuid.uuid4().hex}" for name in TOKENS}
    log = tmp / "api.log"
    process, url = start_api(api_env(tmp, redis_url, prefix, tokens), log)
    client = redis.Redis.from_url(redis_url)
    try:
        yield Api(url, tokens, prefix, client, log, process)
    finally:
        stop(process)
        delete_prefix(client, prefix)
        client.close()
