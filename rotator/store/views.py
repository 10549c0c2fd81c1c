"""Read models for the CLI: jobs, journals, the dead and quarantined, target stage pointers.

Nothing here writes. ``StoreReader`` is the synchronous counterpart the report uses, since the
CLI's reporting commands hold a synchronous client.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from rotator.errors import MalformedJob
from rotator.models import Job, check_job_id, is_job_id
from rotator.store.base import StoreBase
from rotator.store.codec import decoded, text
from rotator.store.keys import Keys


class ViewStore(StoreBase):
    async def load_job(self, job_id: str) -> Job:
        raw = await self.redis.hgetall(self.keys.job(check_job_id(job_id)))
        return Job.from_redis(job_id, decoded(raw))

    async def journal(self, job_id: str) -> dict[str, dict[str, Any]]:
        raw = await self.redis.hgetall(self.keys.journal(check_job_id(job_id)))
        return {text(k): json.loads(v) for k, v in raw.items()}

    async def quarantined(self) -> dict[str, dict[str, Any]]:
        raw = await self.redis.hgetall(self.keys.quarantine)
        return {text(k): json.loads(v) for k, v in raw.items()}

    async def quarantined_envelopes(
        self, limit: int = 100, *, with_raw: bool = False
    ) -> list[dict[str, Any]]:
        """Broker envelopes a worker set aside (``rotator.broker``), newest first. The kept
        bytes (``raw_b64``) are left out unless asked for: they are whatever was pushed."""
        records = []
        for item in await self.redis.lrange(self.keys.broker_quarantine, 0, limit - 1):
            try:
                record = json.loads(item)
            except ValueError:
                record = {"reason": "unreadable quarantine record", "size": len(item)}
            if not isinstance(record, dict):
                record = {"reason": "unreadable quarantine record", "size": len(item)}
            if not with_raw:
                record.pop("raw_b64", None)
            records.append(record)
        return records

    async def active_jobs(self, targets: Iterable[str]) -> dict[str, Job | None]:
        """Each target's queued or running job (``target:{name}:active``), if it has one."""
        names = list(targets)
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(self.keys.active(name))
            ids = [text(i) if i else "" for i in await pipe.execute()]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id or "-"))
            rows = await pipe.execute()
        active: dict[str, Job | None] = {}
        for name, job_id, raw in zip(names, ids, rows, strict=True):
            try:
                active[name] = Job.from_redis(job_id, decoded(raw)) if job_id and raw else None
            except MalformedJob:
                active[name] = None
        return active

    async def target_state(self, target: str) -> dict[str, str]:
        return decoded(await self.redis.hgetall(self.keys.target(target)))

    async def target_states(self, targets: Iterable[str]) -> dict[str, dict[str, str]]:
        names = list(targets)
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.keys.target(name))
            results = await pipe.execute()
        return {name: decoded(raw) for name, raw in zip(names, results, strict=True)}

    async def recent_jobs(self, limit: int = 50) -> list[Job | MalformedJob]:
        ids = [text(i) for i in await self.redis.zrevrange(self.keys.job_index, 0, limit - 1)]
        ids = [i for i in ids if is_job_id(i)]  # anything else names some other key
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id))
            rows = await pipe.execute()
        jobs: list[Job | MalformedJob] = []
        for job_id, raw in zip(ids, rows, strict=True):
            try:
                jobs.append(Job.from_redis(job_id, decoded(raw)))
            except MalformedJob as exc:
                jobs.append(exc)
        return jobs

    async def dead_jobs(self, limit: int = 100) -> list[str]:
        return [text(i) for i in await self.redis.zrevrange(self.keys.dead, 0, limit - 1)]


@dataclass(frozen=True)
class TargetView:
    state: dict[str, str]  # the target hash: stage pointers, rotated_at, last outcome...
    next_due: float | None  # its schedule entry; None when it is not scheduled


class StoreReader:
    """Synchronous, read-only access for reports (the report never writes)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def target_states_with_schedule(self, names: Iterable[str]) -> dict[str, TargetView]:
        """Each target's hash and next due time, in one pipelined round trip."""
        names = list(names)
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.target(name))
            pipe.zscore(self.keys.schedule, name)
        replies = pipe.execute()
        views = {}
        for i, name in enumerate(names):
            state, score = replies[2 * i], replies[2 * i + 1]
            views[name] = TargetView(
                decoded(state or {}, "replace"), None if score is None else float(score)
            )
        return views
