"""The schedule: ``{p}schedule`` maps each scheduled target to when it next comes due.

The dispatcher claims due targets with a provisional score (so a dispatcher that dies after
claiming loses nothing), creates their jobs, then sets each target's real next due time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rotator.store.base import StoreBase
from rotator.store.codec import text

# Members per ZADD/ZREM when the whole schedule is synced (see sync_schedule).
SYNC_SLICE = 10_000


class ScheduleStore(StoreBase):
    async def claim_due_targets(
        self, now: float, limit: int, claim_ttl: float
    ) -> list[tuple[str, float]]:
        flat = await self._lua("claim_due_targets")(
            keys=[self.keys.schedule], args=[now, limit, now + claim_ttl]
        )
        return [(text(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def set_next_due(self, due: Mapping[str, float]) -> None:
        if due:
            await self.redis.zadd(self.keys.schedule, dict(due))

    async def due_again_after_failure(self, target: str, at: float) -> None:
        """A scheduled target whose job failed or was dead-lettered comes due again at ``at``
        (``ROTATOR_FAILURE_RETRY_INTERVAL`` away), not a whole period later. XX: an unscheduled
        target stays unscheduled; LT: an earlier due time is kept."""
        await self.redis.zadd(self.keys.schedule, {target: at}, xx=True, lt=True)

    async def sync_schedule(self, first_due: Mapping[str, float]) -> list[str]:
        """Add targets new to the schedule (existing due times are kept) and drop targets no
        longer scheduled; returns the names added. Runs at start-up and on config reload, not
        per dispatch."""
        k = self.keys
        existing = {text(m) for m in await self.redis.zrange(k.schedule, 0, -1)}
        removed = existing - set(first_due)
        due, gone = list(first_due.items()), sorted(removed)
        async with self.redis.pipeline(transaction=True) as pipe:
            # In slices: one command over ~500,000 members passes the 1M-argument limit of
            # Redis before 7 (the embedded one), which drops the connection.
            for start in range(0, len(due), SYNC_SLICE):
                pipe.zadd(k.schedule, dict(due[start : start + SYNC_SLICE]), nx=True)
            for start in range(0, len(gone), SYNC_SLICE):
                pipe.zrem(k.schedule, *gone[start : start + SYNC_SLICE])
            await pipe.execute()
        return sorted(set(first_due) - existing)

    async def resync_schedule(self, first_due: Mapping[str, float | None]) -> list[str]:
        """``sync_schedule`` for some targets only (those a reload changed): each one with a
        time is added unless already scheduled (its due time is kept), each one with None is
        dropped; returns the names added. Other entries are not read or touched."""
        k = self.keys
        names = list(first_due)
        async with self.redis.pipeline(transaction=True) as pipe:
            for name in names:
                when = first_due[name]
                if when is None:
                    pipe.zrem(k.schedule, name)
                else:
                    pipe.zadd(k.schedule, {name: when}, nx=True)
            replies = await pipe.execute() if names else []
        return sorted(
            name
            for name, reply in zip(names, replies, strict=True)
            if first_due[name] is not None and int(reply) == 1
        )

    async def mark_adopted(self, target: str, remote_version: str, at: float) -> bool:
        """Record a live remote version as the target's current state without any write to the
        provider (``first_rotation: adopt``). Only a target with no rotation history is
        adopted: False (nothing changed) when it already has a state."""
        key = self.keys.target(target)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "remote_version", remote_version)
            pipe.hsetnx(key, "last_outcome", "adopted")
            pipe.hsetnx(key, "adopted_at", repr(at))
            first, *_ = await pipe.execute()
        return bool(first)

    async def next_due(self, targets: Iterable[str]) -> dict[str, float | None]:
        names = list(targets)
        if not names:
            return {}
        scores = await self.redis.zmscore(self.keys.schedule, names)
        return dict(zip(names, scores, strict=True))
