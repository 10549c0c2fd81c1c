"""Parsing what callers put in paths and query strings: every failure is a ``BadInput`` whose
message names the parameter, which the app turns into a 400 JSON error."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from rotator.audit import AuditFilter, Cursor
from rotator.config import parse_point_in_time
from rotator.errors import BadInput

# The shape of rotator.models.new_job_id() (uuid4 hex). Checked before any Redis read, so a
# path such as /v1/jobs/..%2F or a 10 kB id never reaches a key name.
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
# Target names as the targets file allows them (rotator.config's Name).
TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
VERSION_ID = re.compile(r"^v\d{12}$")
MAX_PARAM_LENGTH = 256
AUDIT_PARAMS = frozenset(
    {"target", "job", "provider", "event", "outcome", "actor", "since", "until", "limit", "cursor"}
)
MAX_AUDIT_LIMIT = 500
MAX_REASON_LENGTH = 500


def job_id(value: str) -> str:
    if not JOB_ID.match(value):
        raise BadInput("job id must be 32 lowercase hex characters")
    return value


def target_name(value: str) -> str:
    if not TARGET_NAME.match(value):
        raise BadInput("target name is not a valid name")
    return value


def when(name: str, text: str, now: float) -> float:
    """``24h``/``90d`` (that long ago), unix seconds, or an ISO 8601 time (UTC if no zone)."""
    try:
        return parse_point_in_time(text, now)
    except ValueError:
        raise BadInput(f"{name}: use 24h / 90d (ago), an ISO 8601 time, or unix seconds") from None


def audit_query(params: Iterable[tuple[str, str]]) -> tuple[AuditFilter, int, Cursor | None]:
    """The filter, page size and cursor of ``GET /v1/audit``; unknown parameters are an error
    (a misspelt ``targte=`` must not silently return everything)."""
    single: dict[str, str] = {}
    repeated: dict[str, list[str]] = {"event": [], "outcome": []}
    for key, value in params:
        if key not in AUDIT_PARAMS:
            raise BadInput(f"unknown query parameter {key[:40]!r}")
        if len(value) > MAX_PARAM_LENGTH:
            raise BadInput(f"{key}: longer than {MAX_PARAM_LENGTH} characters")
        if key in repeated:
            repeated[key].append(value)
        elif key in single:
            raise BadInput(f"{key}: given more than once")
        else:
            single[key] = value
    now = time.time()
    if "job" in single:
        job_id(single["job"])
    if "target" in single:
        target_name(single["target"])
    where = AuditFilter(
        target=single.get("target"),
        job_id=single.get("job"),
        provider=single.get("provider"),
        events=tuple(repeated["event"]),
        outcomes=tuple(repeated["outcome"]),
        actor=single.get("actor"),
        since=when("since", single["since"], now) if "since" in single else None,
        until=when("until", single["until"], now) if "until" in single else None,
    )
    return where, _limit(single.get("limit")), _cursor(single.get("cursor"))


def _limit(text: str | None) -> int:
    if text is None:
        return 50
    if not text.isdigit() or not 1 <= int(text) <= MAX_AUDIT_LIMIT:
        raise BadInput(f"limit: an integer from 1 to {MAX_AUDIT_LIMIT}")
    return int(text)


def _cursor(text: str | None) -> Cursor | None:
    if text is None:
        return None
    try:
        return Cursor.parse(text)
    except ValueError as exc:
        raise BadInput(f"cursor: {exc}") from None


def enqueue_body(data: object) -> tuple[str, str | None]:
    """The (reason, version) of an enqueue body: ``{}``, or ``{"reason": "...", "version":
    "v000000000042"}``."""
    if not isinstance(data, dict):
        raise BadInput("body must be a JSON object")
    unknown = set(data) - {"reason", "version"}
    if unknown:
        raise BadInput(f"unknown body field {sorted(unknown)[0][:40]!r}")
    reason = data.get("reason", "")
    version = data.get("version")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
        raise BadInput(f"reason: a string of at most {MAX_REASON_LENGTH} characters")
    if version is not None and (not isinstance(version, str) or not VERSION_ID.match(version)):
        raise BadInput("version: a version id such as v000000000042")
    return reason, version
