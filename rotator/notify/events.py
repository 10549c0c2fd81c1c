"""What a notification says: the event kinds and ``Notice``, built from ids, never values.

A ``Notice`` carries what identifies an event (job id, target, provider, versions, the HMAC
fingerprint of the secret version) and a short redacted detail; the pinned secret never
reaches it. Built from the job's terminal audit event (``Notice.from_event``), whose detail is
already ``rotator.redaction.describe_failure``'s bounded, redacted text; the detail is cleaned
again here (held values, credential shapes), so a notice made anywhere else is held to the
same rule.

Imported by the engine: this module imports no Redis, no HTTP client and no Celery.
"""

from __future__ import annotations

import enum
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from rotator import redaction

if TYPE_CHECKING:
    from rotator.audit import AuditEvent

DETAIL_LIMIT = 300  # characters of detail a notice carries


class EventKind(enum.StrEnum):
    FAILED = "failed"  # a job ended failed: retrying cannot help
    DEAD = "dead"  # a job spent its retry budget
    CONFLICT = "conflict"  # the resource changed out of band; rotator did not overwrite it
    UNVERIFIED = "unverified"  # the update may be live but could not be verified
    QUARANTINED = "quarantined"  # a job record could not be read
    OVERDUE = "overdue"  # a target's credential is older than its schedule allows
    KEY_MISMATCH = "key_mismatch"  # a process holds keys that do not match the store's
    AUDIT_SPOOL = "audit_spool"  # audit events are piling up in the local spool
    TEST = "test"  # `rotator notify test`


# The job states whose terminal audit event becomes a notice.
JOB_ENDINGS = {
    "job.failed": EventKind.FAILED,
    "job.dead": EventKind.DEAD,
    "job.conflict": EventKind.CONFLICT,
    "job.unverified": EventKind.UNVERIFIED,
    "job.quarantined": EventKind.QUARANTINED,
}

# What a `notify:` section sends when it names no events.
DEFAULT_EVENTS: tuple[EventKind, ...] = tuple(k for k in EventKind if k is not EventKind.TEST)


@dataclass(frozen=True)
class Notice:
    """One event to notify about. ``subject`` (a job id, ``target:NAME`` or ``process``) and
    ``kind`` are the dedupe key: one notice per job and event within the dedupe window."""

    kind: EventKind
    subject: str
    job_id: str | None = None
    target: str | None = None
    provider: str | None = None
    outcome: str | None = None
    attempt: int | None = None
    secret_version: str | None = None
    fingerprint: str | None = None
    remote_version_before: str | None = None
    remote_version_after: str | None = None
    error_class: str | None = None
    detail: str | None = None
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.detail is not None:
            detail = redaction.clean(self.detail, DETAIL_LIMIT)
            object.__setattr__(self, "detail", detail)

    @classmethod
    def from_event(cls, kind: EventKind, event: AuditEvent) -> Notice:
        return cls(
            kind=kind,
            subject=event.job_id or (f"target:{event.target}" if event.target else "process"),
            job_id=event.job_id,
            target=event.target,
            provider=event.provider,
            outcome=event.outcome,
            attempt=event.attempt,
            secret_version=event.secret_version,
            fingerprint=event.fingerprint,
            remote_version_before=event.remote_version_before,
            remote_version_after=event.remote_version_after,
            error_class=event.error_class,
            detail=event.detail,
            time=event.time,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notice:
        known = {k: v for k, v in data.items() if k in _FIELDS}
        known["kind"] = EventKind(known["kind"])
        return cls(**known)


_FIELDS = frozenset(Notice.__dataclass_fields__)


class NoNotifier:
    """Notifications off (tests, and processes without a store)."""

    async def notify(self, notice: Notice) -> bool:
        return False


__all__ = ["DEFAULT_EVENTS", "JOB_ENDINGS", "EventKind", "NoNotifier", "Notice"]
