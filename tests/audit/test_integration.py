"""Against a real Redis (127.0.0.1:6379 db 11, or an embedded server): several processes
sharing the chain head, a 20k-event log, an unreachable server, and the CLI end to end."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from typer.testing import CliRunner

from rotator.audit import AuditEvent, AuditFilter, AuditLog, AuditReader
from rotator.cli.audit import audit_app
from rotator.errors import AuditUnavailable
from rotator.store.keys import Keys

from .conftest import AUDIT_KEY, rotation_events, run

pytestmark = pytest.mark.integration

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    import redis.asyncio as aioredis
    from rotator.audit import AuditEvent, AuditLog
    from rotator.store.keys import Keys

    url, prefix, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    async def main():
        client = aioredis.Redis.from_url(url)
        log = AuditLog(client, Keys(prefix), KEY)
        sem = asyncio.Semaphore(64)

        async def one(i):
            async with sem:
                await log.emit(AuditEvent("job.started", job_id=f"{name}-{i // 6}",
                                          target=f"t{i % 9}", actor=name))

        await asyncio.gather(*(one(i) for i in range(count)))
        await log.aclose()
        await client.aclose()
        print(json.dumps(log.stats.__dict__))

    asyncio.run(main())
    """
).replace("KEY", repr(AUDIT_KEY))


def test_processes_share_one_chain(
    audit_redis_url: str, real_keys: Keys, real_sync: redis.Redis
) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, audit_redis_url, real_keys.prefix, f"w{n}", "3000"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    stats = []
    for proc in procs:
        out, _ = proc.communicate(timeout=100)
        assert proc.returncode == 0
        stats.append(json.loads(out))
    assert sum(s["events"] for s in stats) == 9000
    reader = AuditReader(real_sync, real_keys, AUDIT_KEY)
    result = reader.verify()
    assert result.ok, result.problems
    assert result.last_seq == 9000
    per_actor = {f"w{n}": 0 for n in range(3)}
    for record in reader.iter_events():
        per_actor[record.event.actor or ""] += 1
    assert per_actor == {"w0": 3000, "w1": 3000, "w2": 3000}


def test_generated_log_on_real_redis(
    real_keys: Keys, real_sync: redis.Redis, audit_redis_url: str
) -> None:
    events = rotation_events(20_000, targets=50, start=time.time() - 100, step=0.001)

    async def main() -> None:
        client = aioredis.Redis.from_url(audit_redis_url)
        log = AuditLog(client, real_keys, AUDIT_KEY)
        sem = asyncio.Semaphore(256)

        async def one(event: AuditEvent) -> None:
            async with sem:
                await log.emit(event)

        await asyncio.gather(*(one(e) for e in events))
        await client.aclose()

    run(main())
    reader = AuditReader(real_sync, real_keys, AUDIT_KEY)
    assert reader.verify().ok
    expected = [e for e in events if e.target == "target-17"]
    got = list(reader.iter_events(AuditFilter(target="target-17")))
    assert [g.event for g in got] == expected
    page = reader.query(AuditFilter(target="target-17", outcomes=("retry",)), limit=10)
    assert len(page.events) == 10 and all(r.event.outcome == "retry" for r in page.events)
    assert [r.event.event for r in reader.job_story("job000100")][0] == "job.started"


def test_unreachable_server_spools_then_replays(
    tmp_path: Path, real_keys: Keys, real_sync: redis.Redis, audit_redis_url: str
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]  # closed again before use: connection refused

    async def main() -> None:
        down = aioredis.Redis.from_url(f"redis://127.0.0.1:{dead_port}/0", socket_connect_timeout=1)
        log = AuditLog(down, real_keys, AUDIT_KEY, spool_dir=tmp_path)
        with pytest.raises(AuditUnavailable):
            await log.emit(AuditEvent("update.intent", job_id="j", target="t"))
        with pytest.raises(AuditUnavailable):
            await log.emit(AuditEvent("job.retry_scheduled", job_id="j", target="t"))
        await down.aclose()
        up = aioredis.Redis.from_url(audit_redis_url)
        assert await AuditLog(up, real_keys, AUDIT_KEY, spool_dir=tmp_path).replay_spool() == 2
        await up.aclose()

    run(main())
    reader = AuditReader(real_sync, real_keys, AUDIT_KEY)
    assert reader.verify().ok
    assert [r.event.event for r in reader.job_story("j")] == [
        "update.intent",
        "job.retry_scheduled",
    ]


def test_cli_against_real_redis(
    tmp_path: Path, real_keys: Keys, real_sync: redis.Redis, audit_redis_url: str
) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(audit_redis_url)
        log = AuditLog(client, real_keys, AUDIT_KEY)
        for event in rotation_events(300, start=time.time() - 400):
            await log.emit(event)
        await client.aclose()

    run(main())
    env = {
        "ROTATOR_REDIS_URL": audit_redis_url,
        "ROTATOR_AUDIT_KEY": AUDIT_KEY.decode(),
        "ROTATOR_MASTER_KEY": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
        "ROTATOR_KEY_PREFIX": real_keys.prefix,
        "ROTATOR_STATE_DIR": str(tmp_path / "state"),
    }
    runner = CliRunner()
    result = runner.invoke(
        audit_app, ["list", "--json", "--target", "target-3", "--limit", "7"], env=env
    )
    assert result.exit_code == 0 and len(json.loads(result.stdout)["events"]) == 7
    assert runner.invoke(audit_app, ["verify"], env=env).exit_code == 0
    result = runner.invoke(audit_app, ["export", "--format", "csv", "--since", "1h"], env=env)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 301
    time.sleep(1.1)
    result = runner.invoke(
        audit_app,
        ["archive", "--older-than", "1s", "--dir", str(tmp_path / "a"), "--json"],
        env=env,
    )
    assert result.exit_code == 0 and json.loads(result.stdout)["archived"] == 300
    assert real_sync.xlen(real_keys.audit) == 1  # the audit.archived event
    assert runner.invoke(audit_app, ["verify"], env=env).exit_code == 0
    result = runner.invoke(audit_app, ["verify", "--archive-dir", str(tmp_path / "a")], env=env)
    assert result.exit_code == 0, result.stdout
    real_sync.hset(real_keys.audit_head, "seq", 400)
    assert runner.invoke(audit_app, ["verify"], env=env).exit_code == 1
