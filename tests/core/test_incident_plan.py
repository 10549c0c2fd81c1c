"""Incident planning: which targets, in what order, and start times within documented limits."""

from __future__ import annotations

import asyncio
import time

from rotator.config import TargetSpecModel
from rotator.incident import select, spread
from rotator.plan.budget import COSTS, LIMITED


def spec(
    provider: str, secret: str = "leaked", priority: int = 0, **extra: object
) -> TargetSpecModel:
    host = {"commercelayer": "https://acme.commercelayer.io"}.get(provider, "https://x.example")
    return TargetSpecModel.model_validate(
        {
            "provider": provider,
            "base_url": host,
            "resource_id": "r",
            "secret": secret,
            "priority": priority,
            **extra,
        }
    )


def test_selection_orders_by_priority_then_name_and_skips_disabled() -> None:
    specs = {
        "b": spec("adobe"),
        "a": spec("adobe"),
        "urgent": spec("uipath", priority=10),
        "other-secret": spec("adobe", secret="fine"),
        "off": spec("adobe", enabled=False),
    }
    assert select(specs, secret="leaked") == ["urgent", "a", "b"]
    assert select(specs, provider="adobe") == ["a", "b", "other-secret"]
    assert select(specs, secret="leaked", provider="uipath") == ["urgent"]
    assert select(specs, everything=True) == ["urgent", "a", "b", "other-secret"]


def test_providers_without_documented_limits_start_at_once() -> None:
    specs = {f"t{i}": spec("adobe") for i in range(100)}
    planned = spread(specs, sorted(specs), now=1000.0)
    assert {p.start_at for p in planned} == {1000.0}


def test_commerce_layer_starts_never_break_a_documented_window() -> None:
    # 300 targets on one Commerce Layer host: more than any window allows at once
    specs = {f"cl{i:03}": spec("commercelayer") for i in range(300)}
    planned = spread(specs, sorted(specs), now=0.0)
    starts = sorted(p.start_at for p in planned)
    assert starts[0] == 0.0 and starts[-1] > 60  # spread over more than a minute
    for kind, cost in COSTS["commercelayer"].items():
        for window, limit in LIMITED["commercelayer"][kind]:
            for i, start in enumerate(starts):
                inside = sum(1 for s in starts[i:] if s < start + window)
                assert inside * cost <= limit, (kind, window, start, inside)
    # ...and in priority order: a later target never starts before an earlier one
    assert [p.start_at for p in planned] == starts


def test_a_small_incident_is_not_slowed_down() -> None:
    specs = {f"cl{i}": spec("commercelayer") for i in range(20)}
    assert {p.start_at for p in spread(specs, sorted(specs), now=5.0)} == {5.0}


class _SlowEnqueue:
    """A runtime whose enqueue takes 10 ms, as a real one does under load."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    async def enqueue(self, target: str, **_: object) -> tuple[str, bool]:
        await asyncio.sleep(0.01)
        self.at[target] = time.monotonic()
        return f"job-{target}", True


def test_a_rate_limited_providers_jobs_keep_their_own_clock() -> None:
    from rotator.incident import Incident, Planned, enqueue_all

    # Given 100 unlimited jobs due now (1 s of enqueueing) and a Commerce Layer job due in 0.2 s
    now = time.time()
    planned = [Planned(f"adobe-{i:03d}", "adobe", 0, now) for i in range(100)]
    planned.append(Planned("cl-late", "commercelayer", 0, now + 0.2))
    runtime = _SlowEnqueue()
    started = time.monotonic()
    # When the incident enqueues them
    asyncio.run(enqueue_all(runtime, Incident("inc", planned), "note"))  # type: ignore[arg-type]
    # Then the Commerce Layer job went at its own time, not after the 100 others
    assert runtime.at["cl-late"] - started < 0.6
    assert len(runtime.at) == 101
