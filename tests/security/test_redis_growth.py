"""Issue 10.14: Redis must not grow without bound under ``noeviction``.

Before: every job, journal and secret version stayed in Redis for ever and the audit stream was
archived only by hand, so a long-running deployment filled Redis; under ``noeviction`` that
ends in a fail-closed audit and no rotations at all. Now housekeeping (run by the dispatch task)
deletes what aged out and archives the audit stream on a schedule.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from cryptography.fernet import Fernet

from rotator import tasks
from rotator.audit import AuditLog, AuditReader, archive_files
from rotator.config import Settings, load_settings, load_targets
from rotator.crypto import Vault
from rotator.engine import Engine, EngineOptions, Outcome
from rotator.housekeeping import Retention, housekeep
from rotator.models import Reason
from rotator.runtime import ConfigHolder, LoopThread, Runtime
from rotator.store import RotatorStore
from rotator.store.keys import Keys
from tests.core.fakes import FakeProvider, FakeRemote

pytestmark = pytest.mark.integration

TARGETS = """
secrets:
  db-password:
    source: file
    path: secret.json
targets:
  crm:
    provider: fake
    base_url: https://fake.example
    resource_id: conn-1
    secret: db-password
    schedule: 1h
    first_rotation: now
"""
# Dispatch never calls a provider: any real one will do for the schedule.
DISPATCH_TARGETS = TARGETS.replace("provider: fake", "provider: adobe").replace(
    "https://fake.example", "https://platform.adobe.io"
)
AUDIT_KEY = b"growth-audit-key-0123456789abcdef"


def keys_under(client: redis.Redis, prefix: str) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(match=f"{prefix}*", count=1000))


def test_ended_jobs_and_old_versions_go_but_live_state_stays(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    (tmp_path / "rotator.yaml").write_text(TARGETS)
    # the fake provider has no default hosts: the operator-side setting lets its test host in
    config = load_targets(
        tmp_path / "rotator.yaml", ["fake"], Settings(insecure_hosts="fake.example:*")
    )
    keys = Keys(key_prefix)

    async def scenario() -> dict[str, Any]:
        client = aioredis.Redis.from_url(redis_url)
        store = RotatorStore(client, keys, Vault([Fernet.generate_key().decode()], AUDIT_KEY))
        audit = AuditLog(client, keys, AUDIT_KEY)
        provider = FakeProvider(FakeRemote())
        engine = Engine(store, audit, lambda _n: provider, lambda: config, EngineOptions())
        try:
            # Given 25 rotations, each to a new value: 25 jobs, journals and versions
            for i in range(25):
                (tmp_path / "secret.json").write_text(json.dumps({"password": f"value-{i}"}))
                job_id, _ = await store.create_job("crm", Reason.ON_DEMAND, "test")
                assert await engine.process(job_id) is Outcome.COMPLETED
            queued, _ = await store.create_job("crm", Reason.ON_DEMAND, "test")
            await audit.aclose()
            before = await client.hlen(keys.secret_versions("db-password"))
            state = await store.target_state("crm")
            # When housekeeping runs after the retention has passed
            retention = Retention(
                job_retention=3600, versions_kept=3, interval=600, archive_interval=None
            )
            result = await housekeep(store, config, retention, now=time.time() + 3601)
            again = await housekeep(store, config, retention, now=time.time() + 3601)
            versions = sorted(
                v.decode() for v in await client.hkeys(keys.secret_versions("db-password"))
            )
            index_hash = await client.hgetall(keys.secret_fingerprints("db-password"))
            seq = index_hash.pop(b"#seq")  # the version sequence number lives there too
            latest = index_hash.pop(b"#latest")  # and the newest version's field names
            assert latest.startswith(b"v000000000025|")
            fingerprints = {v.decode() for v in index_hash.values()} | {f"seq {seq.decode()}"}
            index = [i.decode() for i in await client.zrange(keys.job_index, 0, -1)]
            return {
                "before": before,
                "state": state,
                "result": result,
                "again": again,
                "versions": versions,
                "fingerprints": fingerprints,
                "index": index,
                "queued": queued,
            }
        finally:
            await client.aclose()

    got = asyncio.run(scenario())
    assert got["before"] == 25
    # Then the 25 ended jobs are gone with their journals; the queued job stays
    assert got["result"].expired_jobs == 25
    assert got["index"] == [got["queued"]]
    # and the secret keeps its 3 newest versions (current and previous among them)
    assert got["result"].pruned_versions == 22
    assert got["versions"] == [f"v{n:012d}" for n in (23, 24, 25)]
    assert got["state"]["current"] in got["versions"]
    assert got["state"]["previous"] in got["versions"]
    assert got["fingerprints"] == {*got["versions"], "seq 25"}
    # and a second dispatcher within the interval does nothing
    assert not got["again"].ran
    client = redis.Redis.from_url(redis_url)
    try:
        left = keys_under(client, key_prefix)
    finally:
        client.close()
    job_keys = [k for k in left if k.startswith(f"{key_prefix}job:")]
    assert job_keys == [f"{key_prefix}job:{got['queued']}"]


def test_dispatch_task_archives_the_audit_stream_on_schedule(
    tmp_path: Path, redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a worker configured to archive events older than 1 s every second
    (tmp_path / "rotator.yaml").write_text(DISPATCH_TARGETS)
    (tmp_path / "secret.json").write_text(json.dumps({"password": "x"}))
    archive_dir = tmp_path / "archive"
    settings = load_settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        master_key=Fernet.generate_key().decode(),
        audit_key=AUDIT_KEY.decode(),
        targets_file=tmp_path / "rotator.yaml",
        state_dir=tmp_path / "state",
        audit_retention="1s",
        audit_archive_interval="1s",
        audit_archive_dir=archive_dir,
    )
    loop = LoopThread()

    async def build() -> Runtime:
        return Runtime(settings, ConfigHolder(settings))

    runtime = loop.run(build())
    monkeypatch.setattr(tasks, "process_runtime", lambda: (loop, runtime))
    monkeypatch.setattr(tasks, "send_jobs", lambda job_ids: None)
    client = redis.Redis.from_url(redis_url)
    try:
        # When dispatch runs (it enqueues the scheduled job: an audit event), and again later
        tasks.dispatch.run()
        assert client.xlen(f"{key_prefix}audit") >= 1
        time.sleep(2.2)
        tasks.dispatch.run()
        # Then the older events were moved to an archive file and out of Redis
        files = archive_files(archive_dir)
        assert files, "no archive written"
        reader = AuditReader(client, Keys(key_prefix), AUDIT_KEY)
        assert reader.verify(archive_dir=archive_dir).ok
    finally:
        loop.run(runtime.aclose())
        loop.run(runtime.redis.connection_pool.disconnect())  # a passed-in pool stays open
        loop.loop.call_soon_threadsafe(loop.loop.stop)
        client.close()
