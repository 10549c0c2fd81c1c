"""Helpers for the audit and key attacks: a rotator environment on the shared Redis (unique
prefix), the CLI in a subprocess as an operator or attacker would run it, and a way to put
genuine events in the chain first."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import redis.asyncio as aioredis
from cryptography.fernet import Fernet

from rotator.audit import AuditEvent, AuditLog
from rotator.store.keys import Keys

AUDIT_KEY = "security-audit-key-0123456789-abcdef"  # 36 bytes
TARGETS = """
secrets:
  s1: {source: generate}
  s2: {source: store}
targets:
  t1: {provider: adobe, base_url: "https://a.example", resource_id: r1, secret: s1}
"""


def make_env(tmp_path: Path, redis_url: str, key_prefix: str) -> dict[str, str]:
    (tmp_path / "rotator.yaml").write_text(TARGETS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env.update(
        {
            "ROTATOR_REDIS_URL": redis_url,
            "ROTATOR_KEY_PREFIX": key_prefix,
            "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
            "ROTATOR_AUDIT_KEY": AUDIT_KEY,
            "ROTATOR_TARGETS_FILE": str(tmp_path / "rotator.yaml"),
            "ROTATOR_STATE_DIR": str(tmp_path / "state"),
            "ROTATOR_LOG_JSON": "false",
            # the stand-in host of the targets above (never called by these tests)
            "ROTATOR_ALLOWED_HOSTS": "adobe=a.example",
        }
    )
    return env


def cli(
    env: dict[str, str], *args: str, stdin: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", *args],
        env={**env, **extra},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def emit(env: dict[str, str], events: Sequence[AuditEvent]) -> None:
    """Genuine events, chained by a process holding the real key."""

    async def main() -> None:
        client = aioredis.Redis.from_url(env["ROTATOR_REDIS_URL"])
        try:
            log = AuditLog(
                client, Keys(env["ROTATOR_KEY_PREFIX"]), env["ROTATOR_AUDIT_KEY"].encode()
            )
            for event in events:
                await log.emit(event)
            await log.aclose()
        finally:
            await client.aclose()

    asyncio.run(main())


def events(count: int, target: str = "t1") -> list[AuditEvent]:
    return [
        AuditEvent("job.completed", job_id=f"job{i:04d}", target=target, outcome="success")
        for i in range(count)
    ]
