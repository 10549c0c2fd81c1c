"""`rotator plan` against the sandbox over real sockets, with a real Redis under a test prefix.

``World`` seeds the five demo targets (``rotator.demo``), writes their targets file, and
snapshots what a plan must leave alone: every seeded resource's history in the sandbox, the
sandbox's update counters, and every Redis key under the test's prefix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from rotator.demo import DemoTarget, demo_targets, sandbox_credentials_env, seed_sandbox
from rotator.sandbox.server import SandboxServer
from tests.integration.conftest import make_env
from tests.integration.conftest import sandbox as sandbox  # the same session-wide fixture


@dataclass
class World:
    tmp: Path
    env: dict[str, str]
    admin: httpx.Client
    redis: redis.Redis
    prefix: str
    targets: list[DemoTarget]

    @property
    def targets_file(self) -> Path:
        return self.tmp / "rotator.yaml"

    def rotator(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rotator", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def plan_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = self.rotator("plan", *args, "--json")
        assert result.stdout, result.stderr
        return result.returncode, json.loads(result.stdout)

    def sandbox_state(self) -> dict[str, Any]:
        """Every seeded resource's full admin view (history included), and the counters of
        updates the sandbox applied."""
        views = {
            t.name: self.admin.get(f"/_sandbox/{t.provider}/resources/{t.resource_id}").json()
            for t in self.targets
        }
        views["ciphertrust-connection"] = self.admin.get(
            "/_sandbox/ciphertrust/connections/sfdc-conn"
        ).json()
        return {
            "resources": views,
            "updates": self.admin.get("/_sandbox/stats").json()["updates_applied"],
        }

    def redis_state(self) -> dict[bytes, bytes | None]:
        keys = sorted(self.redis.scan_iter(match=f"{self.prefix}*", count=1000))
        return {key: self.redis.dump(key) for key in keys}


@pytest.fixture
def world(
    tmp_path: Path, redis_url: str, key_prefix: str, sandbox: SandboxServer
) -> Iterator[World]:
    admin = httpx.Client(base_url=sandbox.url, timeout=10)
    admin.post("/_sandbox/reset").raise_for_status()
    targets = demo_targets(sandbox.url)
    seed_sandbox(admin, targets)
    env = make_env(tmp_path, redis_url, key_prefix, sandbox.url)
    env.update(sandbox_credentials_env())
    env["ROTATOR_LOG_LEVEL"] = "WARNING"
    client = redis.Redis.from_url(redis_url)
    try:
        yield World(tmp_path, env, admin, client, key_prefix, targets)
    finally:
        admin.delete("/_sandbox/faults")
        admin.close()
        client.close()
