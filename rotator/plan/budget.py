"""Rate budget: do the rotations due within the horizon fit the provider's documented limits?

Only Commerce Layer publishes numbers (reads 1000/min and 250 per 10 s, writes 200/min and 50
per 10 s, per API host and shared by every process of one client; IPs over them get blocked).
The adapter holds requests back rather than break a limit (``RateBudget``, one budget shared
by every worker process through Redis), so a burst of rotations larger than a window allows
does not get blocked, it gets late: attempts wait for budget, those whose wait would outlast
their lease end unsent and retry, and the same burst comes back every cycle. The plan
reports every target caught in such a burst, with the numbers, so the operator spreads the
schedules (jitter) before enabling them.

A rotation costs what the engine and the adapter send: ``COSTS`` (Commerce Layer: the engine's
read, the compare-before-write read, the PATCH and the verifying read). Due times come from the
schedule in Redis; a target not scheduled yet comes due at the next sync within its jitter
(``rotator.dispatch.sync_schedule``), counted here as spread evenly over that jitter, which is
what the random draw does on average.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from rotator.config import TargetSpecModel
from rotator.dispatch import first_due as dispatch_first_due
from rotator.providers.commercelayer import LIMITS as COMMERCELAYER_LIMITS

Limits = Mapping[str, Sequence[tuple[float, int]]]  # method class -> (window s, max requests)

LIMITED: Mapping[str, Limits] = {"commercelayer": COMMERCELAYER_LIMITS}
# Requests per rotation, per method class (see the module docstring).
COSTS: Mapping[str, Mapping[str, int]] = {"commercelayer": {"read": 3, "write": 1}}
MAX_OCCURRENCES = 10_000  # per target within the horizon: a 1 s schedule must not hang the plan


@dataclass(frozen=True)
class Event:
    at: float
    target: str


def occurrences(spec: TargetSpecModel, first: float, until: float) -> list[float]:
    """When the target comes due from ``first`` up to ``until`` (jitter at its mean)."""
    schedule = spec.parsed_schedule
    times: list[float] = []
    due = first
    while schedule is not None and due <= until and len(times) < MAX_OCCURRENCES:
        times.append(due)
        due = schedule.next_after(due, 0.5)
    return times


def first_due(
    specs: Mapping[str, TargetSpecModel], scheduled: Mapping[str, float | None], now: float
) -> dict[str, float | None]:
    """Each target's next due time: the schedule's, else its first due time once synced
    (``rotator.dispatch.first_due``, with the jitter spread evenly over the unscheduled
    targets); None for disabled or unscheduled targets."""
    due: dict[str, float | None] = {}
    pending = sorted(n for n, s in specs.items() if s.enabled and s.parsed_schedule)
    position = {n: i for i, n in enumerate(n for n in pending if scheduled.get(n) is None)}
    for name, spec in specs.items():
        schedule = spec.parsed_schedule
        if not spec.enabled or schedule is None:
            due[name] = None
        elif scheduled.get(name) is not None:
            due[name] = scheduled[name]
        else:  # not synced yet: when the dispatcher will first schedule it
            share = (position[name] + 0.5) / len(position)
            due[name] = dispatch_first_due(spec, now, share)
    return due


def _windows_over(
    events: list[Event], window: float, limit: int, cost: int
) -> tuple[int, set[str]]:
    """The most requests any ``window`` holds, and the targets in windows over ``limit``."""
    over: set[str] = set()
    peak = left = added = 0
    for right, event in enumerate(events):
        while event.at - events[left].at >= window:
            left += 1
        count = (right - left + 1) * cost
        peak = max(peak, count)
        if count > limit:
            over.update(e.target for e in events[max(left, added) : right + 1])
            added = right + 1
    return peak, over


def check(
    specs: Mapping[str, TargetSpecModel],
    due: Mapping[str, float | None],
    now: float,
    horizon: float,
) -> dict[str, str]:
    """target -> why its rotations would exceed a documented rate limit."""
    groups: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for name, spec in specs.items():
        first = due.get(name)
        if spec.provider not in LIMITED or first is None:
            continue
        host = urlsplit(spec.base_url).netloc
        for at in occurrences(spec, max(first, now), now + horizon):
            groups[(spec.provider, host)].append(Event(at, name))
    problems: dict[str, str] = {}
    for (provider, host), events in groups.items():
        events.sort(key=lambda e: e.at)
        for kind, cost in COSTS[provider].items():
            for window, limit in LIMITED[provider][kind]:
                peak, over = _windows_over(events, window, limit, cost)
                for target in over:
                    problems.setdefault(
                        target,
                        f"rate budget exceeded: {peak} {kind} requests ({peak // cost} "
                        f"rotations) due within {window:g} s on {host}, documented limit "
                        f"{limit} per {window:g} s; spread the schedules (jitter)",
                    )
    return problems


__all__ = ["COSTS", "LIMITED", "check", "first_due", "occurrences"]
