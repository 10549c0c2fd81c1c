"""Owed terminal events: signed when the job ends, checked before they are chained.

A job's terminal event waits in the job hash (``audit_owed``) between the durable finish and
the append, so a crash in between is repaired by the next delivery. That field sits in Redis:
without a signature anyone who can write Redis could mint an authentic-looking
``job.completed`` (any actor, any time) and have a worker chain it with the real key. The
record is ``{"event": {...}, "kid": ..., "mac": ...}`` signed over the canonical event; one that
does not verify (or names another job) is refused: never chained, reported instead.
"""

from __future__ import annotations

import json
from typing import Any

from rotator.audit.events import AuditEvent
from rotator.audit.keyring import AuditKeyring

OWED_LABEL = "owed"
FORGERY_EVENT = "audit.forgery_refused"


def seal_owed(keyring: AuditKeyring, event: AuditEvent) -> str:
    data = event.to_dict()
    return json.dumps({"event": data, **keyring.sign(OWED_LABEL, data)}, sort_keys=True)


def open_owed(keyring: AuditKeyring, job_id: str, raw: str) -> AuditEvent | None:
    """The owed event, or None when ``raw`` is not one this deployment signed for ``job_id``."""
    try:
        record: Any = json.loads(raw)
        data = record["event"]
        if not isinstance(data, dict) or data.get("job_id") != job_id:
            return None
        if not keyring.signed(OWED_LABEL, data, record["kid"], record["mac"]):
            return None
        return AuditEvent.from_dict(data)
    except (ValueError, TypeError, KeyError):
        return None


def forgery_event(job_id: str) -> AuditEvent:
    """What is chained instead of a refused owed event: the fact, not the forged content."""
    return AuditEvent(
        FORGERY_EVENT,
        job_id=job_id,
        actor="rotator",
        outcome="refused",
        detail="the job's owed terminal audit event failed authentication and was not chained",
    )
