"""Fail closed: when Redis cannot be written, emit raises AuditUnavailable and the events go to
a local spool, replayed in order (exactly once) when Redis is back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from rotator.audit import AuditEvent, AuditLog, AuditReader
from rotator.errors import AuditUnavailable

from .conftest import AUDIT_KEY, FakeEnv, rotation_events, run


def segments(spool: Path) -> list[Path]:
    return sorted(spool.glob("*.jsonl"))


def chain_events(env: FakeEnv) -> list[str]:
    reader = AuditReader(env.sync, env.keys, AUDIT_KEY)
    result = reader.verify()
    assert result.ok, result.problems
    return [r.event.event for r in reader.iter_events()]


def test_unreachable_redis_raises_and_spools(env: FakeEnv, tmp_path: Path) -> None:
    spool = tmp_path / "audit-spool"
    env.emit([AuditEvent("job.started", job_id="j0")], spool_dir=spool)
    env.server.connected = False
    with pytest.raises(AuditUnavailable, match="spooled"):
        env.emit([AuditEvent("update.intent", job_id="j1")], spool_dir=spool)
    files = segments(spool)
    assert len(files) == 1
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert lines[0]["rotator_audit_spool"] == 1
    assert lines[1]["event"] == "update.intent" and "seq" not in lines[1]  # not chained yet


def test_every_concurrent_emit_fails_closed(env: FakeEnv, tmp_path: Path) -> None:
    env.server.connected = False

    async def main() -> list[Any]:
        client = env.client()
        log = env.log(client, spool_dir=tmp_path)
        results = await asyncio.gather(
            *(log.emit(e) for e in rotation_events(20)), return_exceptions=True
        )
        await client.aclose()
        return results

    results = run(main())
    assert all(isinstance(r, AuditUnavailable) for r in results)
    spooled = sum(len(p.read_text().splitlines()) - 1 for p in segments(tmp_path))
    assert spooled == 20


def test_no_spool_configured_still_fails_closed(env: FakeEnv) -> None:
    env.server.connected = False
    with pytest.raises(AuditUnavailable, match="no spool"):
        env.emit([AuditEvent("update.intent")])


def test_replay_appends_in_order_and_chains(env: FakeEnv, tmp_path: Path) -> None:
    env.emit([AuditEvent("job.started", job_id="j", target="t")], spool_dir=tmp_path)
    env.server.connected = False
    for name in ("a.one", "a.two", "a.three"):
        with pytest.raises(AuditUnavailable):
            env.emit([AuditEvent(name, job_id="j", target="t")], spool_dir=tmp_path)
    assert len(segments(tmp_path)) == 3
    env.server.connected = True

    async def main() -> int:
        client = env.client()
        log = env.log(client, spool_dir=tmp_path)
        count = await log.replay_spool()
        assert await log.replay_spool() == 0
        await client.aclose()
        return count

    assert run(main()) == 3
    assert segments(tmp_path) == []
    assert chain_events(env) == ["job.started", "a.one", "a.two", "a.three"]
    # indexed like any other event
    assert env.sync.llen(env.keys.audit_job("j")) == 4


def test_next_emit_replays_the_spool_first(env: FakeEnv, tmp_path: Path) -> None:
    env.server.connected = False
    with pytest.raises(AuditUnavailable):
        env.emit([AuditEvent("first")], spool_dir=tmp_path)
    env.server.connected = True
    env.emit([AuditEvent("second")], spool_dir=tmp_path)
    assert chain_events(env) == ["first", "second"]


def test_replay_while_still_down_raises_and_keeps_the_spool(env: FakeEnv, tmp_path: Path) -> None:
    env.server.connected = False
    with pytest.raises(AuditUnavailable):
        env.emit([AuditEvent("first")], spool_dir=tmp_path)

    async def main() -> None:
        client = env.client()
        log = env.log(client, spool_dir=tmp_path)
        with pytest.raises(AuditUnavailable):
            await log.replay_spool()
        await client.aclose()

    run(main())
    assert len(segments(tmp_path)) == 1


def test_ambiguous_failure_is_not_replayed_twice(env: FakeEnv, tmp_path: Path) -> None:
    """Redis applied the batch but the reply was lost: replay must recognise it."""
    env.emit(rotation_events(5), spool_dir=tmp_path)

    async def main() -> None:
        client = env.client()
        log = env.log(client, spool_dir=tmp_path)
        real_append = log._store.append

        async def lost_reply(*args: Any, **kwargs: Any) -> Any:
            await real_append(*args, **kwargs)
            raise RedisConnectionError("reply lost")

        log._store.append = lost_reply  # type: ignore[method-assign]
        with pytest.raises(AuditUnavailable):
            await log.emit(AuditEvent("update.intent", job_id="jx"))
        log._store.append = real_append  # type: ignore[method-assign]
        assert len(segments(tmp_path)) == 1
        assert await log.replay_spool() == 0  # already in the chain
        await client.aclose()

    run(main())
    assert segments(tmp_path) == []
    events = chain_events(env)
    assert events.count("update.intent") == 2  # the 5 generated hold one, plus ours, once


def test_replay_interrupted_after_redis_applied_it(env: FakeEnv, tmp_path: Path) -> None:
    env.server.connected = False
    with pytest.raises(AuditUnavailable):
        env.emit([AuditEvent("spooled.one"), AuditEvent("spooled.two")], spool_dir=tmp_path)
    env.server.connected = True

    async def main() -> None:
        client = env.client()
        log = env.log(client, spool_dir=tmp_path)
        real_append = log._store.append

        async def crash_after(*args: Any, **kwargs: Any) -> Any:
            await real_append(*args, **kwargs)
            raise RedisConnectionError("process died")

        log._store.append = crash_after  # type: ignore[method-assign]
        with pytest.raises(AuditUnavailable):
            await log.replay_spool()
        log._store.append = real_append  # type: ignore[method-assign]
        assert len(segments(tmp_path)) == 1  # its header now records the attempt
        await client.aclose()

        other = env.client()  # a fresh process
        assert await env.log(other, spool_dir=tmp_path).replay_spool() == 0
        await other.aclose()

    run(main())
    assert sorted(chain_events(env)) == ["spooled.one", "spooled.two"]
    assert segments(tmp_path) == []


def test_spool_from_settings_location(env: FakeEnv, tmp_path: Path) -> None:
    from rotator.config import Settings

    settings = Settings(state_dir=tmp_path, audit_key="k", key_prefix="t:")
    client = env.client()
    log = AuditLog.from_settings(client, settings)
    assert log._spool is not None and log._spool.directory == tmp_path / "audit-spool"
    run(client.aclose())


def test_corrupt_segment_is_set_aside(env: FakeEnv, tmp_path: Path) -> None:
    bad = tmp_path / "00000000000000000001-1-deadbeef.jsonl"
    bad.write_text("garbage\n")
    env.emit([AuditEvent("after")], spool_dir=tmp_path)
    assert not bad.exists()
    assert (tmp_path / (bad.name + ".corrupt")).exists()
    assert chain_events(env) == ["after"]
