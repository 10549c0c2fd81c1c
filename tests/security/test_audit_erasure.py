"""Issue 10.1: with Redis write access, erasing the audit trail must fail ``rotator audit
verify``; a signed checkpoint kept outside Redis proves nothing before it was dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from .audit_helpers import cli, emit, events, make_env


@pytest.fixture
def env(tmp_path: Path, redis_url: str, key_prefix: str) -> dict[str, str]:
    return make_env(tmp_path, redis_url, key_prefix)


def test_moving_the_anchor_to_the_head_and_deleting_the_stream_fails_verify(
    env: dict[str, str], tmp_path: Path, key_prefix: str
) -> None:
    # Given a genuine trail
    emit(env, events(25))
    assert cli(env, "audit", "verify", "--no-checkpoint").returncode == 0
    # When an attacker with Redis write access "archives" everything without archive files
    r = redis.Redis.from_url(env["ROTATOR_REDIS_URL"])
    head = r.hgetall(f"{key_prefix}audit:head")
    r.hset(
        f"{key_prefix}audit:head",
        mapping={"archived_seq": head[b"seq"], "archived_hash": head[b"hash"]},
    )
    r.delete(f"{key_prefix}audit")
    # Then verify fails, with or without an archive directory
    live = cli(env, "audit", "verify", "--no-checkpoint", "--json")
    assert live.returncode == 1, live.stdout
    kinds = {p["kind"] for p in json.loads(live.stdout)["problems"]}
    assert {"anchor", "archive"} <= kinds
    empty = tmp_path / "empty-archive"
    empty.mkdir()
    full = cli(env, "audit", "verify", "--no-checkpoint", "--archive-dir", str(empty))
    assert full.returncode == 1, full.stdout


def test_a_genuine_archive_still_verifies_and_is_itself_in_the_chain(
    env: dict[str, str], tmp_path: Path
) -> None:
    emit(env, events(10))
    archive = tmp_path / "archive"
    done = cli(env, "audit", "archive", "--older-than", "1s", "--dir", str(archive), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["archived"] in (0, 10)  # events may be younger than 1s
    verified = cli(env, "audit", "verify", "--no-checkpoint", "--archive-dir", str(archive))
    assert verified.returncode == 0, verified.stdout


def test_a_checkpoint_outside_redis_catches_a_rewritten_tail(
    env: dict[str, str], tmp_path: Path, key_prefix: str
) -> None:
    emit(env, events(30))
    book = tmp_path / "offsite" / "checkpoints.jsonl"
    made = cli(env, "audit", "checkpoint", "--output", str(book))
    assert made.returncode == 0, made.stderr
    emit(env, events(5))
    # The attacker drops everything after seq 20 and rewrites the head to match.
    r = redis.Redis.from_url(env["ROTATOR_REDIS_URL"])
    entries = r.xrange(f"{key_prefix}audit")
    for stream_id, _ in entries[20:]:
        r.xdel(f"{key_prefix}audit", stream_id)
    r.hset(
        f"{key_prefix}audit:head",
        mapping={"seq": 20, "hash": entries[19][1][b"hash"], "id": entries[19][0]},
    )
    assert cli(env, "audit", "verify", "--no-checkpoint").returncode == 0  # undetectable alone
    caught = cli(env, "audit", "verify", "--no-checkpoint", "--checkpoint", str(book))
    assert caught.returncode == 1 and "truncated" in caught.stdout, caught.stdout


def test_an_edited_checkpoint_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    emit(env, events(5))
    book = tmp_path / "checkpoints.jsonl"
    assert cli(env, "audit", "checkpoint", "--output", str(book)).returncode == 0
    line = json.loads(book.read_text())
    line["seq"] = 3  # an attacker moving the checkpoint back to hide a later truncation
    book.write_text(json.dumps(line) + "\n")
    result = cli(env, "audit", "verify", "--no-checkpoint", "--checkpoint", str(book))
    assert result.returncode == 1 and "signature" in result.stderr, result.stderr


def test_a_forged_anchor_is_refused_even_with_events_left(
    env: dict[str, str], key_prefix: str
) -> None:
    emit(env, events(12))
    r = redis.Redis.from_url(env["ROTATOR_REDIS_URL"])
    entries = r.xrange(f"{key_prefix}audit")
    # Erase the first 8 events and pretend they were archived.
    for stream_id, _ in entries[:8]:
        r.xdel(f"{key_prefix}audit", stream_id)
    r.hset(
        f"{key_prefix}audit:head",
        mapping={"archived_seq": 8, "archived_hash": entries[7][1][b"hash"]},
    )
    result = cli(env, "audit", "verify", "--no-checkpoint")
    assert result.returncode == 1 and "anchor" in result.stdout, result.stdout
