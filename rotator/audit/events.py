"""The audit event schema and the hash chain over it.

Events never carry secret values: only version ids and keyed HMAC fingerprints.

Chain
    Every event gets a sequence number ``seq`` (1, 2, 3 ...) and
    ``hash_n = HMAC-SHA256(chain_key, hash_{n-1} || canonical(event_n))`` where ``hash_0`` is
    64 zeros, ``hash`` values are lowercase hex (the ASCII hex of ``hash_{n-1}`` is what is
    concatenated), ``canonical`` is JSON with sorted keys, no spaces, UTF-8, null fields left
    out and ``seq`` included, and ``chain_key = HKDF(audit_key, "rotator audit chain v1")``.
    Editing, deleting, inserting or reordering an event breaks the chain; nobody without the
    audit key can recompute it. Removing events from the tail is caught by ``verify`` against
    the head record and a checkpoint of an earlier verification.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field, fields
from typing import Any

from rotator.crypto import canonical_json, derive_key
from rotator.store.audit import RawEntry

CHAIN_LABEL = "rotator audit chain v1"

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

# Columns of exports: where the event sits in the chain, then the event itself.
EXPORT_FIELDS = ("id", "seq", "hash", *EVENT_FIELDS)


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
        # Every field is a plain scalar: no need for asdict's recursive deep copy (hot path).
        return {name: getattr(self, name) for name in _EVENT_ORDER}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditEvent:
        values = {k: data[k] for k in EVENT_FIELDS if k in data and data[k] is not None}
        values.setdefault("event", "")
        values.setdefault("time", 0.0)
        return cls(**values)


_EVENT_ORDER = tuple(f.name for f in fields(AuditEvent))


@dataclass(frozen=True)
class StoredEvent:
    """An event as it sits in the chain."""

    id: str
    seq: int
    hash: str
    event: AuditEvent

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "hash": self.hash, **self.event.to_dict()}


def chain_key(audit_key: bytes) -> bytes:
    return derive_key(audit_key, CHAIN_LABEL)


def canonical_record(event: AuditEvent, seq: int) -> bytes:
    """The exact bytes the chain covers (and the stream stores) for one event."""
    record = {name: value for name in _EVENT_ORDER if (value := getattr(event, name)) is not None}
    record["seq"] = seq
    return canonical_json(record)


def canonical_payload(record: dict[str, Any]) -> bytes:
    """Canonical bytes of an exported/archived record (``id``/``hash`` and nulls dropped)."""
    return canonical_json(
        {k: v for k, v in record.items() if v is not None and k not in ("id", "hash", "payload")}
    )


def chain_hash(key: bytes, prev_hash: str, payload: bytes) -> str:
    return hmac.new(key, prev_hash.encode() + payload, hashlib.sha256).hexdigest()


def parse_entry(entry: RawEntry) -> StoredEvent:
    """A stream entry as an event; an unreadable payload becomes a ``<corrupt>`` placeholder."""
    try:
        data = json.loads(entry.payload)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        seq = data.get("seq")
        return StoredEvent(
            entry.id, seq if isinstance(seq, int) else -1, entry.hash, AuditEvent.from_dict(data)
        )
    except (ValueError, TypeError):
        return StoredEvent(entry.id, -1, entry.hash, AuditEvent("<corrupt>", time=0.0))
