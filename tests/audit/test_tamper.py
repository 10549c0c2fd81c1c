"""Tampering: edit, delete, reorder, truncate, insert, re-key; each one detected by verify."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rotator.audit import AuditEvent, AuditReader, canonical_record, chain_hash, chain_key

from .conftest import AUDIT_KEY, FakeEnv, rotation_events


@pytest.fixture
def logged(env: FakeEnv) -> FakeEnv:
    env.emit(rotation_events(30))
    assert AuditReader(env.sync, env.keys, AUDIT_KEY).verify().ok
    return env


def entries(env: FakeEnv) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return list(env.sync.xrange(env.keys.audit))


def rebuild(env: FakeEnv, items: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
    """What an attacker with Redis access can do: rewrite the stream with chosen entries."""
    env.sync.delete(env.keys.audit)
    for _, fields in items:
        env.sync.xadd(env.keys.audit, fields)


def verify(env: FakeEnv, key: bytes = AUDIT_KEY, **kwargs: Any):  # type: ignore[no-untyped-def]
    return AuditReader(env.sync, env.keys, key).verify(**kwargs)


def test_edited_event_is_detected(logged: FakeEnv) -> None:
    items = entries(logged)
    stream_id, fields = items[14]
    record = json.loads(fields[b"event"])
    record["outcome"] = "noop"  # whitewash a failure
    assert json.loads(fields[b"event"])["outcome"] == "failed"
    fields[b"event"] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    rebuild(logged, items)
    result = verify(logged)
    assert not result.ok
    first = result.problems[0]
    assert (first.kind, first.seq) == ("edited", 15)
    assert result.problem_count == 1  # resynchronised: later events still verify


def test_edited_hash_is_detected(logged: FakeEnv) -> None:
    items = entries(logged)
    items[4][1][b"hash"] = b"0" * 64
    rebuild(logged, items)
    result = verify(logged)
    assert [p.kind for p in result.problems][:1] == ["edited"]
    assert result.problems[0].seq == 5


def test_deleted_event_is_detected(logged: FakeEnv) -> None:
    stream_id = entries(logged)[14][0]
    logged.sync.xdel(logged.keys.audit, stream_id)
    result = verify(logged)
    assert not result.ok
    assert result.problems[0].kind == "gap"
    assert result.problems[0].seq == 16
    assert "15" in result.problems[0].message


def test_reordered_events_are_detected(logged: FakeEnv) -> None:
    items = entries(logged)
    items[5], items[6] = items[6], items[5]
    rebuild(logged, items)
    result = verify(logged)
    assert not result.ok
    assert result.problems[0].kind == "reordered"
    assert result.problems[0].seq == 7


def test_swapped_contents_are_detected(logged: FakeEnv) -> None:
    items = entries(logged)
    a, b = items[3][1], items[20][1]
    a[b"event"], b[b"event"] = b[b"event"], a[b"event"]
    rebuild(logged, items)
    assert not verify(logged).ok


def test_truncated_tail_is_detected_by_the_head(logged: FakeEnv) -> None:
    for stream_id, _ in entries(logged)[25:]:
        logged.sync.xdel(logged.keys.audit, stream_id)
    result = verify(logged)
    assert not result.ok
    assert result.problems[0].kind == "truncated"


def test_truncated_tail_with_forged_head_is_detected_by_a_checkpoint(logged: FakeEnv) -> None:
    checkpoint = verify(logged)
    expect = (checkpoint.last_seq, checkpoint.last_hash)
    items = entries(logged)
    for stream_id, _ in items[25:]:
        logged.sync.xdel(logged.keys.audit, stream_id)
    last_id, last_fields = items[24]
    logged.sync.hset(
        logged.keys.audit_head,
        mapping={"seq": 25, "hash": last_fields[b"hash"], "id": last_id},
    )
    assert verify(logged).ok  # nothing in Redis alone can tell ...
    result = verify(logged, expect=expect)  # ... but an earlier verification can
    assert not result.ok
    assert result.problems[0].kind == "truncated"


def test_truncated_front_is_detected(logged: FakeEnv) -> None:
    for stream_id, _ in entries(logged)[:3]:
        logged.sync.xdel(logged.keys.audit, stream_id)
    result = verify(logged)
    assert result.problems[0].kind == "gap" and result.problems[0].seq == 4


def test_rekeyed_chain_is_detected(logged: FakeEnv) -> None:
    """An attacker without the audit key rewrites an event and re-chains everything after it
    with a key of their own: every re-chained hash fails."""
    items = entries(logged)
    forged_key = chain_key(b"attacker key")
    prev = items[9][1][b"hash"].decode()
    for index in range(10, len(items)):
        record = json.loads(items[index][1][b"event"])
        if index == 10:
            record["detail"] = "nothing to see"
        event = AuditEvent.from_dict(record)
        payload = canonical_record(event, record["seq"])
        digest = chain_hash(forged_key, prev, payload)
        items[index][1][b"event"], items[index][1][b"hash"] = payload, digest.encode()
        prev = digest
    rebuild(logged, items)
    logged.sync.hset(logged.keys.audit_head, "hash", prev)
    result = verify(logged)
    assert not result.ok
    assert result.problems[0].kind == "edited" and result.problems[0].seq == 11
    assert result.problem_count == len(items) - 10


def test_verifying_with_another_key_fails(logged: FakeEnv) -> None:
    result = verify(logged, key=b"a different audit key")
    assert not result.ok and result.problems[0].seq == 1


def test_inserted_event_is_detected(logged: FakeEnv) -> None:
    items = entries(logged)
    forged = dict(items[10][1])
    record = json.loads(forged[b"event"])
    record["event"] = "job.noop"
    forged[b"event"] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    items.insert(11, (b"0-0", forged))
    rebuild(logged, items)
    result = verify(logged)
    assert not result.ok
    assert result.problems[0].kind == "reordered"


def test_corrupt_payload_is_detected(logged: FakeEnv) -> None:
    items = entries(logged)
    items[2][1][b"event"] = b"{not json"
    rebuild(logged, items)
    result = verify(logged)
    assert not result.ok and result.problems[0].kind == "corrupt"


def test_head_pointing_elsewhere_is_detected(logged: FakeEnv) -> None:
    logged.sync.hset(logged.keys.audit_head, "hash", "ab" * 32)
    result = verify(logged)
    assert [p.kind for p in result.problems] == ["head"]


def test_a_rewritten_checkpointed_event_is_detected(logged: FakeEnv) -> None:
    items = entries(logged)
    result = verify(logged)
    expect = (10, items[9][1][b"hash"].decode())
    assert verify(logged, expect=expect).ok
    assert verify(logged, expect=(10, "cd" * 32)).problems[0].kind == "anchor"
    assert result.ok
