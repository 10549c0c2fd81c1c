"""Jobs, their states, the lease a running attempt holds, and secret-version identities.

Job states and the only transitions allowed between them::

    queued ──► running ──► completed        (remote carries the new version; promoted)
                 │  ▲  ├──► conflict        (the resource changed out of band: never overwritten)
                 │  │  ├──► failed          (permanent error, stale version, bad config)
                 │  │  ├──► dead            (transient errors exhausted the retry budget)
                 │  │  └──► unverified      (applied or maybe applied, but never verified:
                 ▼  │                        ROTATOR_VERIFY_LIMIT passed, or a permanent error)
              retrying / verifying          (``rotator.retry`` chooses among all of these)
    (any record that cannot be parsed is moved to the quarantine hash instead)

``verifying`` ("applied, verifying") is ``retrying`` once the job's update has applied or may
have applied: the ordinary attempt budget no longer ends the job, because giving up would leave
the provider holding a secret that rotator's ``current`` does not name. It re-reads with capped
backoff until the remote state decides (ours: completed; someone else's: conflict), and only
after ``ROTATOR_VERIFY_LIMIT`` (default 24h) since it entered ``verifying`` does it end
``unverified``: terminal, so the target is free for the next job, alert-worthy, and never shown
as failed. The pending version stays pinned on the target (never cleared), so the next job
checks whether it is live and promotes it if so. ``failed`` and ``dead`` are only reached
while no update may have applied.

``queued``, ``retrying`` and ``verifying`` jobs sit in the due set with the time they may run; a
``running`` job sits there with its lease expiry, so a job whose worker died runs again after
the lease.
"""

from __future__ import annotations

import enum
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from rotator.errors import InvalidJobId, MalformedJob


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    VERIFYING = "verifying"  # the update applied or may have: re-reading until decided
    COMPLETED = "completed"
    CONFLICT = "conflict"
    FAILED = "failed"
    DEAD = "dead"
    UNVERIFIED = "unverified"  # gave up verifying; the pending version stays pinned

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def label(self) -> str:
        """How the CLI shows the state to people."""
        return "applied, verifying" if self is JobState.VERIFYING else str(self)


TERMINAL_STATES = frozenset(
    {JobState.COMPLETED, JobState.CONFLICT, JobState.FAILED, JobState.DEAD, JobState.UNVERIFIED}
)


class Outcome(enum.StrEnum):
    """What one attempt of a job came to (``Engine.process``'s answer)."""

    COMPLETED = "completed"
    NOOP = "noop"
    RETRY = "retry"
    CONFLICT = "conflict"
    FAILED = "failed"
    DEAD = "dead"
    UNVERIFIED = "unverified"
    QUARANTINED = "quarantined"
    DEFERRED = "deferred"  # another job holds the target; runs again shortly
    SKIPPED = "skipped"  # duplicate delivery of a finished or running job


class Reason(enum.StrEnum):
    SCHEDULED = "scheduled"
    ON_DEMAND = "on-demand"


def new_job_id() -> str:
    return uuid.uuid4().hex


# Exactly what ``new_job_id`` makes. Ids are pasted into key names (``job:{id}``), so an id
# with a ":" in it would name another key: ``<id>:journal`` is that job's journal hash.
_JOB_ID = re.compile(r"[0-9a-f]{32}")


def is_job_id(value: object) -> bool:
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


def check_job_id(value: object) -> str:
    """``value`` when it is a job id rotator could have made; else ``InvalidJobId``."""
    if not is_job_id(value):
        raise InvalidJobId(value)
    return str(value)


@dataclass(frozen=True)
class Job:
    id: str
    target: str
    reason: Reason
    actor: str
    state: JobState = JobState.QUEUED
    requested_version: str | None = None  # None: whatever the source yields when the job runs
    secret_version: str | None = None  # pinned at the first attempt, reused by every retry
    attempts: int = 0
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    next_run_at: float | None = None
    note: str = ""  # operator-supplied reason text
    last_error: str = ""
    last_error_class: str = ""
    first_remote_version: str | None = None  # what the job saw before its first update
    verifying_since: float | None = None  # when its update first may have applied

    def to_redis(self) -> dict[str, str]:
        raw = asdict(self)
        return {k: "" if v is None else str(v) for k, v in raw.items()}

    @classmethod
    def from_redis(cls, job_id: str, raw: Mapping[str, str]) -> Job:
        """Parse a job hash; anything unexpected raises MalformedJob (the job is quarantined)."""
        try:
            if not raw:
                raise ValueError("record is empty")

            def opt(key: str) -> str | None:
                value = raw.get(key, "")
                return value or None

            return cls(
                id=raw["id"],
                target=_nonempty(raw, "target"),
                reason=Reason(raw["reason"]),
                actor=raw.get("actor", ""),
                state=JobState(raw["state"]),
                requested_version=opt("requested_version"),
                secret_version=opt("secret_version"),
                attempts=int(raw.get("attempts") or 0),
                created_at=float(raw["created_at"]),
                updated_at=float(raw.get("updated_at") or raw["created_at"]),
                next_run_at=float(raw["next_run_at"]) if raw.get("next_run_at") else None,
                note=raw.get("note", ""),
                last_error=raw.get("last_error", ""),
                last_error_class=raw.get("last_error_class", ""),
                first_remote_version=opt("first_remote_version"),
                verifying_since=_opt_float(raw, "verifying_since"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise MalformedJob(job_id, detail) from None

    def public(self) -> dict[str, Any]:
        """What CLI --json and the API show (there is nothing secret in a job)."""
        data = asdict(self)
        data["reason"] = str(self.reason)
        data["state"] = str(self.state)
        return data


def _opt_float(raw: Mapping[str, str], key: str) -> float | None:
    value = raw.get(key, "")
    return float(value) if value else None


def _nonempty(raw: Mapping[str, str], key: str) -> str:
    value = raw[key]
    if not value:
        raise ValueError(f"field {key!r} is empty")
    return value


def version_id(seq: int) -> str:
    """Version ids sort as strings and as numbers: v000000000042."""
    return f"v{seq:012d}"


def version_seq(version: str) -> int:
    if not version.startswith("v") or not version[1:].isdigit():
        raise ValueError(f"not a version id: {version!r}")
    return int(version[1:])


@dataclass(frozen=True)
class Lease:
    """A job's hold on its target; ``fence`` is the fencing token every write is checked against."""

    target: str
    job_id: str
    fence: str


@dataclass(frozen=True)
class Begun:
    """What a job attempt starts from, read atomically with taking the lease."""

    lease: Lease
    job: Job
    journal: dict[str, dict[str, Any]]
    target_state: dict[str, str]


@dataclass(frozen=True)
class BeginRefused:
    reason: str  # "missing" | "terminal" | "busy"
    detail: str = ""
    lease_ms: int = 0  # busy: how long the current holder's lease still runs
    audit_owed: str = ""  # terminal: the job's terminal audit event, if never written
