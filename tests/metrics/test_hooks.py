"""The one-line hooks: what they count and the log context they bind."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from rotator import metrics


def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


class FakeEngine:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    @metrics.observe_rotation
    async def process(self, job_id: str) -> str:
        structlog.get_logger("t").info("loaded")
        metrics.bind_attempt("crm", "hookprov")
        structlog.get_logger("t").info("applied")
        if self.fail:
            raise ConnectionError("redis went away")
        return "completed"


def test_rotation_counted_and_its_lines_carry_job_and_target() -> None:
    before = sample("rotator_rotations_total", provider="hookprov", outcome="completed")
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        assert asyncio.run(FakeEngine().process("job-1")) == "completed"
        structlog.get_logger("t").info("after")
    assert [(e["event"], e.get("job_id"), e.get("target")) for e in logs] == [
        ("loaded", "job-1", None),
        ("applied", "job-1", "crm"),
        ("after", None, None),
    ]
    assert sample("rotator_rotations_total", provider="hookprov", outcome="completed") == before + 1
    assert (
        sample("rotator_attempt_duration_seconds_count", provider="hookprov", outcome="completed")
        >= 1
    )


def test_an_engine_that_raises_is_counted_as_error() -> None:
    before = sample("rotator_rotations_total", provider="hookprov", outcome="error")
    with pytest.raises(ConnectionError):
        asyncio.run(FakeEngine(fail=True).process("job-2"))
    assert sample("rotator_rotations_total", provider="hookprov", outcome="error") == before + 1


def test_provider_calls_counted_by_status_and_failure() -> None:
    async def answer(*args: Any) -> httpx.Response:
        return httpx.Response(429)

    async def cancelled(*args: Any) -> httpx.Response:
        raise asyncio.CancelledError

    call = ("client", "patch", "https://x", 1024, "callprov", True, {})
    asyncio.run(metrics.metered(answer)(*call))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(metrics.metered(cancelled)(*call))
    assert (
        sample("rotator_provider_requests_total", provider="callprov", method="PATCH", status="429")
        == 1
    )
    assert (
        sample(
            "rotator_provider_requests_total",
            provider="callprov",
            method="PATCH",
            status="cancelled",
        )
        == 1
    )
    assert (
        sample(
            "rotator_provider_request_duration_seconds_count", provider="callprov", method="PATCH"
        )
        == 2
    )
