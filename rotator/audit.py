"""Audit events: one fixed schema, written to a Redis stream, optionally a JSONL file and stdout.

Events never carry secret values: only version ids and keyed HMAC fingerprints.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rotator.errors import AuditUnavailable
from rotator.store.keys import Keys

EVENT_FIELDS = (
    "time",
    "event",
    "job_id",
    "target",
    "provider",
    "attempt",
    "actor",
    "reason",
    "secret_version",
    "fingerprint",
    "remote_version_before",
    "remote_version_after",
    "duration_ms",
    "error_class",
    "outcome",
    "detail",
)


@dataclass(frozen=True)
class AuditEvent:
    event: str
    job_id: str | None = None
    target: str | None = None
    provider: str | None = None
    attempt: int | None = None
    actor: str | None = None
    reason: str | None = None
    secret_version: str | None = None
    fingerprint: str | None = None
    remote_version_before: str | None = None
    remote_version_after: str | None = None
    duration_ms: float | None = None
    error_class: str | None = None
    outcome: str | None = None
    detail: str | None = None
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        audit_key: bytes,
        *,
        jsonl_path: Path | None = None,
        stdout: bool = False,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._audit_key = audit_key
        self._jsonl_path = jsonl_path
        self._stdout = stdout

    async def emit(self, event: AuditEvent) -> None:
        """Make the event durable; raise AuditUnavailable when it cannot be (fail closed)."""
        record = event.to_dict()
        line = json.dumps(record, sort_keys=True)
        try:
            await self._redis.xadd(self._keys.audit, {"event": line})
        except RedisError as exc:
            raise AuditUnavailable(f"audit stream unavailable: {type(exc).__name__}") from None
        if self._jsonl_path is not None:
            with self._jsonl_path.open("a") as handle:
                handle.write(line + "\n")
        if self._stdout:
            sys.stdout.write(line + "\n")

    async def aclose(self) -> None:
        return None
