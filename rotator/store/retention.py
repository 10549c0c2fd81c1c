"""Retention: what keeps Redis from growing without bound under ``noeviction``.

Redis runs with ``maxmemory-policy noeviction`` (losing a lease or a pending version would
break crash safety), so a full Redis refuses writes: the audit fails closed and nothing rotates.
Everything rotator adds must therefore also go away:

* ended jobs (``job:{id}``, ``job:{id}:journal`` and their ``jobs:index`` / ``jobs:dead``
  entries) are deleted once they ended longer ago than ``ROTATOR_JOB_RETENTION``;
* secret versions beyond ``ROTATOR_SECRET_VERSIONS_KEPT`` go (``rotator.store.secrets``);
* the audit stream is archived to files on a schedule (``rotator.housekeeping``).

Candidates come from ``jobs:index`` (scored by creation time), oldest first, so a sweep reads
only what it may delete; the script re-checks every job, so a job still running, still owing
its terminal audit event or due again is never touched.
"""

from __future__ import annotations

from rotator.store.base import StoreBase
from rotator.store.codec import text
from rotator.store.jobs import TERMINAL_ARG


class RetentionStore(StoreBase):
    async def take_turn(self, task: str, interval: float) -> bool:
        """True for the one caller per ``interval`` seconds that gets to run ``task``."""
        taken = await self.redis.set(
            self.keys.housekeeping(task), "1", nx=True, px=max(1, int(interval * 1000))
        )
        return bool(taken)

    async def expire_ended_jobs(
        self, ended_before: float, *, batch: int = 500, max_batches: int = 20
    ) -> int:
        """Delete jobs that ended before ``ended_before`` (unix time); returns how many.

        At most ``batch * max_batches`` candidates per call, so a large backlog is worked
        off over several housekeeping runs instead of one long script."""
        k = self.keys
        deleted = offset = 0
        for _ in range(max_batches):
            # A job ends after it is created: only jobs created before the cutoff qualify.
            ids = [
                text(i)
                for i in await self.redis.zrangebyscore(
                    k.job_index, "-inf", f"({ended_before}", start=offset, num=batch
                )
            ]
            if not ids:
                break
            job_keys = [key for job_id in ids for key in (k.job(job_id), k.journal(job_id))]
            gone, kept = await self._lua("expire_jobs")(
                keys=[k.job_index, k.dead, k.due, *job_keys],
                args=[ended_before, TERMINAL_ARG, *ids],
            )
            deleted += int(gone)
            offset += int(kept)  # kept jobs stay in the index: page past them
            if len(ids) < batch:
                break
        return deleted
