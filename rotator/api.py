"""The Python API for other systems: enqueue a rotation, look at a job, from sync code."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rotator.config import Settings, load_settings
from rotator.models import Job, Reason, check_job_id
from rotator.runtime import ConfigHolder, Runtime

T = TypeVar("T")


def _run(settings: Settings | None, body: Callable[[Runtime], Awaitable[T]]) -> T:
    resolved = settings or load_settings()

    async def main() -> T:
        runtime = Runtime(resolved, ConfigHolder(resolved))
        try:
            return await body(runtime)
        finally:
            await runtime.aclose()

    return asyncio.run(main())


def enqueue(
    target: str,
    *,
    reason: str = "",
    actor: str = "api",
    version: str | None = None,
    settings: Settings | None = None,
) -> str:
    """Queue an on-demand rotation of ``target``; returns the job id.

    While the target already has a job queued or running, that job's id is returned instead
    of a new one. Raises KeyError for a target the targets file does not define.
    """

    async def body(runtime: Runtime) -> str:
        job_id, _created = await runtime.enqueue(
            target, reason=Reason.ON_DEMAND, actor=actor, note=reason, version=version
        )
        return job_id

    return _run(settings, body)


def job(job_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """A job's public record (state, attempts, pinned version, last error): no secrets.
    Raises ``InvalidJobId`` (a ValueError) for an id rotator would never generate."""
    check_job_id(job_id)

    async def body(runtime: Runtime) -> Job:
        return await runtime.store.load_job(job_id)

    return _run(settings, body).public()
