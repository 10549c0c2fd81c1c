"""Intervals (``30s``, ``15m``, ``12h``, ``30d``, ``2w``) and points in time, parsed once for
the settings, the targets file, the CLI and the HTTP API."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def is_interval(text: str) -> bool:
    return _INTERVAL.match(text) is not None


def parse_interval(text: str) -> float:
    match = _INTERVAL.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an interval like 30s, 15m, 12h, 30d, 2w")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


_UNIX_SECONDS = re.compile(r"^\d+(\.\d+)?$")


def parse_point_in_time(text: str, now: float) -> float:
    """``24h``/``90d`` (that long before ``now``), ``now``, unix seconds, or an ISO 8601 time
    (UTC when it names no zone). ValueError for anything else: the CLI and the HTTP API word it
    in their own way."""
    value = text.strip()
    if value == "now":
        return now
    if _UNIX_SECONDS.match(value):
        return float(value)
    try:
        return now - parse_interval(value)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
