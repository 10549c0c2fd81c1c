"""All Redis state behind one class; the key layout is documented in ``rotator.store.keys``.

Every change that touches more than one key is one Lua script, so a worker killed between two
Redis calls never leaves half a transition behind. Writes made on behalf of a running job are
*fenced*: the script first checks that the target's lease still holds the job's fencing token,
so a worker that stalled past its lease can no longer change anything.

Hot paths are O(log n): claims use ZRANGEBYSCORE with LIMIT on sorted sets; nothing scans keys.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis

from rotator.crypto import Vault
from rotator.errors import LeaseLost, MalformedJob
from rotator.models import BeginRefused, Begun, Job, JobState, Lease, Reason, new_job_id, version_id
from rotator.store.keys import Keys

# Fencing check shared by every fenced script: KEYS[1] is the lease key, ARGV[1] the fence.
_FENCE_CHECK = """
local lease = redis.call('GET', KEYS[1])
if (not lease) or (string.sub(lease, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ':') then
  return redis.error_reply('LEASE_LOST')
end
"""

_TERMINAL = (
    "{" + ",".join(f"['{s}']=true" for s in ("completed", "conflict", "failed", "dead")) + "}"
)

# KEYS: active, job, due, index   ARGV: job_id, now, then field/value pairs of the new job
_CREATE_JOB = f"""
local terminal = {_TERMINAL}
local existing = redis.call('GET', KEYS[1])
if existing then
  local state = redis.call('HGET', '{{prefix}}job:' .. existing, 'state')
  if state and not terminal[state] then
    return {{existing, 0}}
  end
end
local fields = {{}}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return {{ARGV[1], 1}}
"""

# KEYS: due   ARGV: now, limit, visibility deadline
_CLAIM_DUE_JOBS = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""

# KEYS: schedule   ARGV: now, limit, provisional score (re-claimable if the dispatcher dies)
_CLAIM_DUE_TARGETS = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[2]))
for i = 1, #due, 2 do redis.call('ZADD', KEYS[1], ARGV[3], due[i]) end
return due
"""

# KEYS: lease, fence, job, journal, target, due
# ARGV: job_id, lease_ms, now, due_score
_BEGIN = """
local raw = redis.call('HGETALL', KEYS[3])
if #raw == 0 then return {'missing'} end
local state = redis.call('HGET', KEYS[3], 'state')
if state == 'completed' or state == 'conflict' or state == 'failed' or state == 'dead' then
  return {'terminal', state, redis.call('HGET', KEYS[3], 'audit_owed') or ''}
end
local lease = redis.call('GET', KEYS[1])
if lease then return {'busy', lease, tostring(redis.call('PTTL', KEYS[1]))} end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence .. ':' .. ARGV[1], 'PX', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'attempts', 1)
redis.call('HSET', KEYS[3], 'state', 'running', 'updated_at', ARGV[3])
redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])
return {'ok', tostring(fence), redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4]),
  redis.call('HGETALL', KEYS[5])}
"""

# KEYS: lease, journal, job   ARGV: fence, lease_ms, step, json, job field/value pairs...
_RECORD = (
    _FENCE_CHECK
    + """
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
if #ARGV > 4 then
  local fields = {}
  for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[3], unpack(fields))
end
return 1
"""
)

# KEYS: lease, target, journal   ARGV: fence, lease_ms, field/value pairs for the target hash,
# then '|' then journal step, json
_STAGE = (
    _FENCE_CHECK
    + """
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local i = 3
local fields = {}
while ARGV[i] ~= '|' do fields[#fields + 1] = ARGV[i]; i = i + 1 end
if #fields > 0 then redis.call('HSET', KEYS[2], unpack(fields)) end
redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2])
return 1
"""
)

# Finish a job: KEYS: lease, job, due, active, target, dead
# ARGV: fence, job_id, state, now, promote(0/1), version, remote_version, dead(0/1),
#       clear_pending(0/1), owed terminal audit event (JSON), settle deadline,
#       then job field/value pairs
# The terminal audit event is owed until `settle`: the job stays in the due set until then, so
# a worker killed between this write and the audit write leaves a job that a later delivery
# finds terminal with its event still owed, and writes it.
_FINISH = (
    _FENCE_CHECK
    + """
local fields = {}
for i = 12, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'updated_at', ARGV[4], 'audit_owed', ARGV[10],
  unpack(fields))
if ARGV[10] == '' then
  redis.call('ZREM', KEYS[3], ARGV[2])
else
  redis.call('ZADD', KEYS[3], ARGV[11], ARGV[2])
end
if redis.call('GET', KEYS[4]) == ARGV[2] then redis.call('DEL', KEYS[4]) end
if ARGV[5] == '1' then
  local current = redis.call('HGET', KEYS[5], 'current')
  if current and current ~= ARGV[6] then redis.call('HSET', KEYS[5], 'previous', current) end
  redis.call('HSET', KEYS[5], 'current', ARGV[6], 'rotated_at', ARGV[4],
    'remote_version', ARGV[7])
end
if ARGV[9] == '1' or (ARGV[5] == '1' and redis.call('HGET', KEYS[5], 'pending') == ARGV[6]) then
  redis.call('HSET', KEYS[5], 'pending', '', 'pending_job', '')
end
redis.call('HSET', KEYS[5], 'last_job', ARGV[2], 'last_outcome', ARGV[3])
if ARGV[8] == '1' then redis.call('ZADD', KEYS[6], ARGV[4], ARGV[2]) end
redis.call('DEL', KEYS[1])
return 1
"""
)

# Put a job back in the due set: KEYS: lease, job, due   ARGV: fence, job_id, state, run_at,
# now, job field/value pairs
_RESCHEDULE = (
    _FENCE_CHECK
    + """
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'updated_at', ARGV[5], 'next_run_at', ARGV[4],
  unpack(fields))
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
redis.call('DEL', KEYS[1])
return 1
"""
)

# Version lookup or reservation: KEYS: fingerprints, seq   ARGV: fingerprint
_RESERVE_VERSION = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {1, existing} end
return {0, redis.call('INCR', KEYS[2])}
"""

# Version commit: KEYS: fingerprints, versions   ARGV: fingerprint, version, token
_COMMIT_VERSION = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return existing end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return ARGV[2]
"""

# Quarantine: KEYS: job, quarantine, due, index   ARGV: job_id, json record
_QUARANTINE = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
"""


def _pairs(mapping: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in mapping.items():
        out.extend((key, "" if value is None else str(value)))
    return out


def _as_dict(flat: list[Any]) -> dict[str, str]:
    items = [x.decode() if isinstance(x, bytes) else str(x) for x in flat]
    return dict(zip(items[::2], items[1::2], strict=True))


class RotatorStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, vault: Vault) -> None:
        self.redis = redis
        self.keys = keys
        self.vault = vault
        self._create_job = redis.register_script(_CREATE_JOB.replace("{prefix}", keys.prefix))
        self._claim_jobs = redis.register_script(_CLAIM_DUE_JOBS)
        self._claim_targets = redis.register_script(_CLAIM_DUE_TARGETS)
        self._begin = redis.register_script(_BEGIN)
        self._record = redis.register_script(_RECORD)
        self._stage = redis.register_script(_STAGE)
        self._finish = redis.register_script(_FINISH)
        self._reschedule = redis.register_script(_RESCHEDULE)
        self._reserve_version = redis.register_script(_RESERVE_VERSION)
        self._commit_version = redis.register_script(_COMMIT_VERSION)
        self._quarantine = redis.register_script(_QUARANTINE)

    # -- jobs ------------------------------------------------------------------------------

    async def create_job(
        self,
        target: str,
        reason: Reason,
        actor: str,
        *,
        note: str = "",
        requested_version: str | None = None,
        now: float | None = None,
    ) -> tuple[str, bool]:
        """Create a queued job, or return the target's queued/running one (created=False)."""
        now = time.time() if now is None else now
        job = Job(
            id=new_job_id(),
            target=target,
            reason=reason,
            actor=actor,
            note=note,
            requested_version=requested_version,
            created_at=now,
            updated_at=now,
            next_run_at=now,
        )
        k = self.keys
        job_id, created = await self._create_job(
            keys=[k.active(target), k.job(job.id), k.due, k.job_index],
            args=[job.id, now, *_pairs(job.to_redis())],
        )
        return _s(job_id), bool(int(created))

    async def create_scheduled_jobs(
        self, targets: list[str], now: float | None = None
    ) -> list[tuple[str, str, bool]]:
        """Scheduled jobs for many targets in one pipelined round trip: (target, id, created)."""
        if not targets:
            return []
        now = time.time() if now is None else now
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for target in targets:
                job = Job(
                    id=new_job_id(),
                    target=target,
                    reason=Reason.SCHEDULED,
                    actor="schedule",
                    created_at=now,
                    updated_at=now,
                    next_run_at=now,
                )
                await self._create_job(
                    keys=[k.active(target), k.job(job.id), k.due, k.job_index],
                    args=[job.id, now, *_pairs(job.to_redis())],
                    client=pipe,
                )
            results = await pipe.execute()
        return [
            (target, _s(job_id), bool(int(created)))
            for target, (job_id, created) in zip(targets, results, strict=True)
        ]

    async def load_job(self, job_id: str) -> Job:
        raw = await self.redis.hgetall(self.keys.job(job_id))
        return Job.from_redis(job_id, _as_dict([x for kv in raw.items() for x in kv]))

    async def journal(self, job_id: str) -> dict[str, dict[str, Any]]:
        raw = await self.redis.hgetall(self.keys.journal(job_id))
        return {_s(k): json.loads(v) for k, v in raw.items()}

    async def quarantine(self, job_id: str, reason: str) -> None:
        raw = await self.redis.hgetall(self.keys.job(job_id))
        record = json.dumps(
            {"reason": reason, "raw": {_s(k): _s(v) for k, v in raw.items()}, "at": time.time()}
        )
        k = self.keys
        await self._quarantine(
            keys=[k.job(job_id), k.quarantine, k.due, k.job_index], args=[job_id, record]
        )

    async def quarantined(self) -> dict[str, dict[str, Any]]:
        raw = await self.redis.hgetall(self.keys.quarantine)
        return {_s(k): json.loads(v) for k, v in raw.items()}

    async def claim_due_jobs(self, now: float, limit: int, visibility: float) -> list[str]:
        """Take up to ``limit`` due jobs; each comes back due after ``visibility`` seconds
        unless a worker takes it first, so a lost Celery message delays a job, never loses it."""
        ids = await self._claim_jobs(keys=[self.keys.due], args=[now, limit, now + visibility])
        return [_s(i) for i in ids]

    async def begin(
        self, job_id: str, target: str, lease_ttl: float, now: float | None = None
    ) -> Begun | BeginRefused:
        now = time.time() if now is None else now
        k = self.keys
        result = await self._begin(
            keys=[
                k.lease(target),
                k.fence(target),
                k.job(job_id),
                k.journal(job_id),
                k.target(target),
                k.due,
            ],
            args=[job_id, int(lease_ttl * 1000), now, now + lease_ttl + 1],
        )
        status = _s(result[0])
        if status == "terminal":
            return BeginRefused(status, _s(result[1]), audit_owed=_s(result[2]))
        if status != "ok":
            detail = _s(result[1]) if len(result) > 1 else ""
            lease_ms = int(_s(result[2])) if len(result) > 2 else 0
            return BeginRefused(status, detail, max(0, lease_ms))
        lease = Lease(target, job_id, _s(result[1]))
        job_raw = _as_dict(result[2])
        journal = {k2: json.loads(v) for k2, v in _as_dict(result[3]).items()}
        return Begun(lease, Job.from_redis(job_id, job_raw), journal, _as_dict(result[4]))

    async def record(
        self,
        lease: Lease,
        lease_ttl: float,
        step: str,
        data: Mapping[str, Any],
        job_fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Journal a step (and optionally job fields), fenced, renewing the lease."""
        k = self.keys
        await self._fenced(
            self._record,
            keys=[k.lease(lease.target), k.journal(lease.job_id), k.job(lease.job_id)],
            args=[
                lease.fence,
                int(lease_ttl * 1000),
                step,
                json.dumps(data, sort_keys=True),
                *_pairs(job_fields or {}),
            ],
        )

    async def stage(
        self,
        lease: Lease,
        lease_ttl: float,
        target_fields: Mapping[str, Any],
        step: str,
        data: Mapping[str, Any],
    ) -> None:
        """Set target stage pointers (e.g. pending) and journal the step in one write."""
        k = self.keys
        await self._fenced(
            self._stage,
            keys=[k.lease(lease.target), k.target(lease.target), k.journal(lease.job_id)],
            args=[
                lease.fence,
                int(lease_ttl * 1000),
                *_pairs(target_fields),
                "|",
                step,
                json.dumps(data, sort_keys=True),
            ],
        )

    async def finish(
        self,
        lease: Lease,
        state: JobState,
        *,
        promote_version: str | None = None,
        remote_version: str = "",
        clear_pending: bool = False,
        job_fields: Mapping[str, Any] | None = None,
        audit_owed: str = "",
        settle_within: float = 60.0,
        now: float | None = None,
    ) -> None:
        """End a job in a terminal state; promotion and lease release happen in the same write.

        ``audit_owed`` is the terminal audit event (JSON) still to be written; until
        ``settle()`` the job comes due again after ``settle_within`` seconds."""
        assert state.terminal
        now = time.time() if now is None else now
        k = self.keys
        await self._fenced(
            self._finish,
            keys=[
                k.lease(lease.target),
                k.job(lease.job_id),
                k.due,
                k.active(lease.target),
                k.target(lease.target),
                k.dead,
            ],
            args=[
                lease.fence,
                lease.job_id,
                str(state),
                now,
                "1" if promote_version else "0",
                promote_version or "",
                remote_version,
                "1" if state is JobState.DEAD else "0",
                "1" if clear_pending else "0",
                audit_owed,
                now + settle_within,
                *_pairs(job_fields or {}),
            ],
        )

    async def settle(self, job_id: str) -> None:
        """The job's terminal audit event is written: nothing is owed, nothing is due."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.job(job_id), "audit_owed")
            pipe.zrem(self.keys.due, job_id)
            await pipe.execute()

    async def reschedule(
        self,
        lease: Lease,
        run_at: float,
        state: JobState,
        job_fields: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> None:
        """Put the job back in the due set at ``run_at`` and release the lease."""
        now = time.time() if now is None else now
        k = self.keys
        await self._fenced(
            self._reschedule,
            keys=[k.lease(lease.target), k.job(lease.job_id), k.due],
            args=[lease.fence, lease.job_id, str(state), run_at, now, *_pairs(job_fields or {})],
        )

    async def defer(self, job_id: str, run_at: float) -> None:
        """Unfenced: push a job we could not start (target busy) to when it may start.
        XX: a job that finished meanwhile is not brought back."""
        await self.redis.zadd(self.keys.due, {job_id: run_at}, xx=True)

    async def release(self, lease: Lease) -> None:
        key = self.keys.lease(lease.target)
        await self.redis.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
            "return 0",
            1,
            key,
            f"{lease.fence}:{lease.job_id}",
        )

    async def _fenced(self, script: Any, *, keys: list[str], args: list[Any]) -> None:
        try:
            await script(keys=keys, args=args)
        except aioredis.ResponseError as exc:
            if "LEASE_LOST" in str(exc):
                raise LeaseLost("the target lease expired or was taken over") from None
            raise

    # -- schedule --------------------------------------------------------------------------

    async def claim_due_targets(
        self, now: float, limit: int, claim_ttl: float
    ) -> list[tuple[str, float]]:
        flat = await self._claim_targets(
            keys=[self.keys.schedule], args=[now, limit, now + claim_ttl]
        )
        return [(_s(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def set_next_due(self, due: Mapping[str, float]) -> None:
        if due:
            await self.redis.zadd(self.keys.schedule, dict(due))

    async def sync_schedule(self, first_due: Mapping[str, float]) -> int:
        """Add targets new to the schedule (existing due times are kept) and drop targets no
        longer scheduled. Runs at start-up and on config reload, not per dispatch."""
        k = self.keys
        existing = {_s(m) for m in await self.redis.zrange(k.schedule, 0, -1)}
        removed = existing - set(first_due)
        async with self.redis.pipeline(transaction=True) as pipe:
            if first_due:
                pipe.zadd(k.schedule, dict(first_due), nx=True)
            if removed:
                pipe.zrem(k.schedule, *removed)
            await pipe.execute()
        return len(set(first_due) - existing)

    async def next_due(self, targets: Iterable[str]) -> dict[str, float | None]:
        names = list(targets)
        if not names:
            return {}
        scores = await self.redis.zmscore(self.keys.schedule, names)
        return dict(zip(names, scores, strict=True))

    # -- secrets ---------------------------------------------------------------------------

    async def put_secret_version(self, secret: str, fields: Mapping[str, Any]) -> tuple[str, str]:
        """Store a value encrypted; the same value again returns its existing version."""
        fingerprint = self.vault.fingerprint(fields)
        k = self.keys
        found, value = await self._reserve_version(
            keys=[k.secret_fingerprints(secret), k.secret_seq(secret)], args=[fingerprint]
        )
        if int(found):
            return _s(value), fingerprint
        version = version_id(int(value))
        token = self.vault.seal(secret, version, fields)
        committed = await self._commit_version(
            keys=[k.secret_fingerprints(secret), k.secret_versions(secret)],
            args=[fingerprint, version, token],
        )
        return _s(committed), fingerprint

    async def load_secret_version(self, secret: str, version: str) -> dict[str, Any]:
        token = await self.redis.hget(self.keys.secret_versions(secret), version)
        if token is None:
            raise MalformedJob(version, f"secret {secret} has no stored version {version}")
        return self.vault.open(
            secret, version, token if isinstance(token, bytes) else token.encode()
        )

    async def latest_secret_version(self, secret: str) -> str | None:
        versions = await self.redis.hkeys(self.keys.secret_versions(secret))
        return max((_s(v) for v in versions), default=None)

    async def fingerprint_of(self, secret: str, version: str) -> str | None:
        fields = await self.load_secret_version(secret, version)
        return self.vault.fingerprint(fields)

    async def reseal_versions(self, secret: str) -> int:
        """Re-encrypt every stored version of a secret under the newest master key."""
        key = self.keys.secret_versions(secret)
        tokens = await self.redis.hgetall(key)
        if not tokens:
            return 0
        resealed = {
            _s(v): self.vault.reseal(t if isinstance(t, bytes) else str(t).encode())
            for v, t in tokens.items()
        }
        await self.redis.hset(key, mapping=resealed)  # type: ignore[arg-type]
        return len(resealed)

    # -- read models for the CLI -----------------------------------------------------------

    async def target_state(self, target: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys.target(target))
        return {_s(k): _s(v) for k, v in raw.items()}

    async def target_states(self, targets: Iterable[str]) -> dict[str, dict[str, str]]:
        names = list(targets)
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.keys.target(name))
            results = await pipe.execute()
        return {
            name: {_s(k): _s(v) for k, v in raw.items()}
            for name, raw in zip(names, results, strict=True)
        }

    async def recent_jobs(self, limit: int = 50) -> list[Job | MalformedJob]:
        ids = [_s(i) for i in await self.redis.zrevrange(self.keys.job_index, 0, limit - 1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id))
            rows = await pipe.execute()
        jobs: list[Job | MalformedJob] = []
        for job_id, raw in zip(ids, rows, strict=True):
            try:
                jobs.append(Job.from_redis(job_id, {_s(k): _s(v) for k, v in raw.items()}))
            except MalformedJob as exc:
                jobs.append(exc)
        return jobs

    async def dead_jobs(self, limit: int = 100) -> list[str]:
        return [_s(i) for i in await self.redis.zrevrange(self.keys.dead, 0, limit - 1)]


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
