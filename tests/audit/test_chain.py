"""Writing: seq + HMAC chain, group commit, the cross-process head check, indexes, no secrets."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest

from rotator.audit import (
    AuditEvent,
    AuditReader,
    canonical_record,
    chain_hash,
    chain_key,
)
from rotator.crypto import Vault, derive_key
from rotator.errors import AuditUnavailable
from rotator.store.audit import GENESIS_HASH

from .conftest import AUDIT_KEY, FakeEnv, rotation_events, run


def test_events_get_consecutive_seq_and_an_hmac_chain(env: FakeEnv) -> None:
    stored = env.emit(rotation_events(12))
    assert sorted(s.seq for s in stored) == list(range(1, 13))
    # Recompute the chain independently from what Redis holds.
    key = derive_key(AUDIT_KEY, "rotator audit chain v1")
    prev = GENESIS_HASH
    entries = env.sync.xrange(env.keys.audit)
    assert len(entries) == 12
    for seq, (_, fields) in enumerate(entries, 1):
        payload = fields[b"event"]
        record = json.loads(payload)
        assert record["seq"] == seq
        assert payload == json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        assert None not in record.values()
        expected = hmac.new(key, prev.encode() + payload, hashlib.sha256).hexdigest()
        assert fields[b"hash"].decode() == expected
        prev = expected
    head = env.sync.hgetall(env.keys.audit_head)
    assert head[b"seq"] == b"12" and head[b"hash"].decode() == prev


def test_canonical_record_and_chain_hash_are_deterministic() -> None:
    event = AuditEvent("job.started", job_id="j", target="t", time=1.5, detail="é")
    payload = canonical_record(event, 7)
    assert (
        payload
        == '{"detail":"é","event":"job.started","job_id":"j","seq":7,"target":"t","time":1.5}'.encode()
    )
    key = chain_key(b"k")
    assert chain_hash(key, GENESIS_HASH, payload) == chain_hash(key, GENESIS_HASH, payload)
    assert chain_hash(key, GENESIS_HASH, payload) != chain_hash(
        chain_key(b"other"), GENESIS_HASH, payload
    )


def test_concurrent_emits_are_group_committed(env: FakeEnv) -> None:
    async def main() -> tuple[int, int]:
        client = env.client()
        log = env.log(client)
        await asyncio.gather(*(log.emit(e) for e in rotation_events(1200)))
        await log.aclose()
        await client.aclose()
        return log.stats.batches, log.stats.events

    batches, events = run(main())
    assert events == 1200
    assert batches <= 4  # 500 per script call at most, and nothing in between
    assert AuditReader(env.sync, env.keys, AUDIT_KEY).verify().ok


def test_emit_returns_only_after_the_event_is_in_redis(env: FakeEnv) -> None:
    async def main() -> None:
        client = env.client()
        log = env.log(client)
        stored = await log.emit(AuditEvent("job.enqueued", job_id="j1", target="a"))
        assert env.sync.xrange(env.keys.audit, stored.id, stored.id)
        await client.aclose()

    run(main())


def test_writers_sharing_the_head_interleave_without_breaking_the_chain(env: FakeEnv) -> None:
    """Two AuditLogs (two processes) each cache the head; the Lua script refuses stale ones."""

    async def main() -> tuple[int, int]:
        a_client, b_client = env.client(), env.client()
        a, b = env.log(a_client), env.log(b_client)
        events = rotation_events(400)
        for i in range(0, 400, 40):
            await asyncio.gather(
                *(a.emit(e) for e in events[i : i + 20]),
                *(b.emit(e) for e in events[i + 20 : i + 40]),
            )
        await a_client.aclose()
        await b_client.aclose()
        return a.stats.conflicts + b.stats.conflicts, a.stats.events + b.stats.events

    conflicts, written = run(main())
    assert written == 400
    assert conflicts > 0  # the head moved under each writer and it recomputed
    result = AuditReader(env.sync, env.keys, AUDIT_KEY).verify()
    assert result.ok, result.problems
    assert result.last_seq == 400


def test_stale_batch_is_refused_by_the_script(env: FakeEnv) -> None:
    env.emit(rotation_events(3))

    async def main() -> None:
        client = env.client()
        log = env.log(client)
        key = log.keyring.chain()
        assert key is not None
        prepared = log._prepare(key, rotation_events(1), 1, "f" * 64)
        result = await log._store.append(1, "f" * 64, prepared, kid=log.keyring.kid)
        assert not result.ok and result.head_seq == 3
        await client.aclose()

    run(main())
    assert env.sync.xlen(env.keys.audit) == 3


def test_missing_head_with_events_fails_closed(env: FakeEnv) -> None:
    env.emit(rotation_events(3))
    env.sync.delete(env.keys.audit_head)
    with pytest.raises(AuditUnavailable):
        env.emit([AuditEvent("job.started")])
    assert env.sync.xlen(env.keys.audit) == 3


def test_indexes_per_target_and_per_job(env: FakeEnv) -> None:
    stored = env.emit(rotation_events(50, targets=3))
    by_target: dict[str, list[tuple[str, int]]] = {}
    by_job: dict[str, list[str]] = {}
    for s in sorted(stored, key=lambda s: s.seq):
        by_target.setdefault(s.event.target or "", []).append((s.id, s.seq))
        by_job.setdefault(s.event.job_id or "", []).append(s.id)
    for target, expected in by_target.items():
        members = env.sync.zrange(env.keys.audit_target(target), 0, -1, withscores=True)
        assert [(m.decode(), int(score)) for m, score in members] == expected
    for job, ids in by_job.items():
        assert [i.decode() for i in env.sync.lrange(env.keys.audit_job(job), 0, -1)] == ids


def test_events_without_target_or_job_are_not_indexed(env: FakeEnv) -> None:
    env.emit([AuditEvent("lease.lost")])
    assert env.sync.keys(f"{env.keys.prefix}audit:target:*") == []
    assert env.sync.keys(f"{env.keys.prefix}audit:job:*") == []


def test_secret_values_never_reach_the_log_and_fingerprints_are_keyed(env: FakeEnv) -> None:
    secret = {"password": "hunter2-very-secret-value"}
    vault = Vault(["ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg="], AUDIT_KEY)
    fingerprint = vault.fingerprint(secret)
    plain = hashlib.sha256(json.dumps(secret, sort_keys=True, separators=(",", ":")).encode())
    assert fingerprint != plain.hexdigest()
    assert fingerprint != hashlib.sha256(b"hunter2-very-secret-value").hexdigest()
    env.emit(
        [
            AuditEvent(
                "secret.loaded",
                job_id="j",
                target="t",
                secret_version="v7",
                fingerprint=fingerprint,
            ),
            AuditEvent(
                "update.applied",
                job_id="j",
                target="t",
                secret_version="v7",
                fingerprint=fingerprint,
                remote_version_after="etag-2",
            ),
        ]
    )
    dump = b"".join(
        k + b"".join(f + v for f, v in fields.items())
        for k, fields in env.sync.xrange(env.keys.audit)
    )
    assert b"hunter2" not in dump
    assert fingerprint.encode() in dump


def test_jsonl_and_stdout_copies(env: FakeEnv, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "audit.jsonl"
    env.emit(rotation_events(5), jsonl_path=path, stdout=True)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(line["seq"] for line in lines) == [1, 2, 3, 4, 5]
    assert all(len(line["hash"]) == 64 for line in lines)
    assert len(capsys.readouterr().out.splitlines()) == 5
