"""Retention: archive old events to gzip JSONL, remove them and their index entries, and keep
the chain verifiable across archive + live."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from rotator.audit import AuditEvent, AuditFilter, AuditReader, archive_files

from .conftest import AUDIT_KEY, FakeEnv, rotation_events


class Archived:
    def __init__(self, env: FakeEnv, tmp_path: Path) -> None:
        self.env = env
        self.dir = tmp_path / "archive"
        now = time.time()
        self.old = env.emit(rotation_events(300, targets=4, start=now))
        time.sleep(0.02)
        self.cutoff = time.time()
        time.sleep(0.02)
        self.new = env.emit(rotation_events(200, targets=4, start=now + 1))
        self.reader = AuditReader(env.sync, env.keys, AUDIT_KEY)


@pytest.fixture
def archived(env: FakeEnv, tmp_path: Path) -> Archived:
    return Archived(env, tmp_path)


def read_archive(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def write_archive(path: Path, lines: list[dict[str, Any]]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line, sort_keys=True) + "\n")


def test_archive_moves_old_events_to_files(archived: Archived) -> None:
    result = archived.reader.archive(archived.cutoff, archived.dir, segment_size=120)
    assert result.archived == 300 and result.removed == 300
    assert (result.first_seq, result.last_seq) == (1, 300)
    files = archive_files(archived.dir)
    assert [(first, last) for first, last, _ in files] == [(1, 120), (121, 240), (241, 300)]
    lines = [line for _, _, path in files for line in read_archive(path)]
    assert [line["seq"] for line in lines] == list(range(1, 301))
    assert {"id", "hash", "event", "time", "target"} <= set(lines[0])
    env = archived.env
    # 200 live events and one audit.archived event per file (archiving is in the chain)
    assert env.sync.xlen(env.keys.audit) == 203
    head = env.sync.hgetall(env.keys.audit_head)
    assert int(head[b"archived_seq"]) == 300
    # index entries of archived events are gone too
    for target in ("target-0", "target-1", "target-2", "target-3"):
        scores = [
            s for _, s in env.sync.zrange(env.keys.audit_target(target), 0, -1, withscores=True)
        ]
        assert scores and min(scores) > 300
    old_jobs = {s.event.job_id for s in archived.old} - {s.event.job_id for s in archived.new}
    assert old_jobs and not any(env.sync.exists(env.keys.audit_job(j)) for j in old_jobs)
    assert archived.reader.query(AuditFilter(target="target-1"), limit=1000).events[-1].seq > 300


def test_chain_verifies_across_archive_and_live(archived: Archived) -> None:
    archived.reader.archive(archived.cutoff, archived.dir, segment_size=120)
    archived.env.emit([AuditEvent("after.archive", target="target-0")])
    live = archived.reader.verify()
    assert live.ok and live.anchor_seq == 300 and live.checked == 204
    full = archived.reader.verify(archive_dir=archived.dir)
    assert full.ok, full.problems
    assert (full.checked, full.archived_checked, full.archive_files) == (504, 300, 3)
    assert full.first_seq == 1 and full.last_seq == 504


def test_edited_archive_is_detected(archived: Archived) -> None:
    archived.reader.archive(archived.cutoff, archived.dir, segment_size=120)
    _, _, path = archive_files(archived.dir)[1]
    lines = read_archive(path)
    lines[10]["outcome"] = "success"
    lines[10]["detail"] = "edited"
    write_archive(path, lines)
    result = archived.reader.verify(archive_dir=archived.dir)
    assert not result.ok
    assert (result.problems[0].kind, result.problems[0].seq) == ("edited", 131)
    assert result.problems[0].where == path.name


def test_missing_archive_file_is_detected(archived: Archived) -> None:
    archived.reader.archive(archived.cutoff, archived.dir, segment_size=120)
    archive_files(archived.dir)[1][2].unlink()
    result = archived.reader.verify(archive_dir=archived.dir)
    assert not result.ok and result.problems[0].kind == "gap"
    archive_files(archived.dir)[-1][2].unlink()
    result = archived.reader.verify(archive_dir=archived.dir)
    assert {p.kind for p in result.problems} >= {"gap", "archive"}


def test_interrupted_archive_is_completed_without_duplicates(
    archived: Archived, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = archived.reader.store

    def crash(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("killed after writing the file")

    monkeypatch.setattr(store, "remove_archived", crash)
    with pytest.raises(RuntimeError):
        archived.reader.archive(archived.cutoff, archived.dir, segment_size=120)
    assert len(archive_files(archived.dir)) == 1  # first file done, nothing removed
    # ... but its audit.archived event was chained before the removal
    assert archived.env.sync.xlen(archived.env.keys.audit) == 501
    overlap = archived.reader.verify(archive_dir=archived.dir)
    assert overlap.ok and overlap.checked == 501
    monkeypatch.undo()
    result = archived.reader.archive(archived.cutoff, archived.dir, segment_size=120)
    assert result.archived == 180 and result.removed == 300
    seqs = [line["seq"] for _, _, p in archive_files(archived.dir) for line in read_archive(p)]
    assert seqs == list(range(1, 301))
    assert archived.reader.verify(archive_dir=archived.dir).ok


def test_dry_run_and_nothing_to_archive(archived: Archived) -> None:
    dry = archived.reader.archive(archived.cutoff, archived.dir, dry_run=True)
    assert dry.archived == 300 and dry.files == [] and not archived.dir.exists()
    assert archived.env.sync.xlen(archived.env.keys.audit) == 500
    none = archived.reader.archive(archived.cutoff - 3600, archived.dir)
    assert none.archived == 0 and none.files == []


def test_non_canonical_payload_is_archived_verbatim(archived: Archived) -> None:
    """Archiving must not launder a tampered entry by re-serialising it."""
    env = archived.env
    entries = env.sync.xrange(env.keys.audit)
    env.sync.delete(env.keys.audit)
    for index, (stream_id, fields) in enumerate(entries):
        if index == 7:
            fields[b"event"] = fields[b"event"].replace(b",", b", ", 1)
        env.sync.xadd(env.keys.audit, fields, id=stream_id)
    assert archived.reader.verify().problems[0].seq == 8
    archived.reader.archive(archived.cutoff, archived.dir)
    lines = read_archive(archive_files(archived.dir)[0][2])
    assert "payload" in lines[7] and "payload" not in lines[6]
    result = archived.reader.verify(archive_dir=archived.dir)
    assert (result.problems[0].kind, result.problems[0].seq) == ("edited", 8)


def test_checkpoint_taken_before_archiving_still_passes(archived: Archived) -> None:
    before = archived.reader.verify()
    expect = (before.last_seq, before.last_hash)
    early = (120, archived.old[0].hash)  # any seq that will be archived
    archived.reader.archive(archived.cutoff, archived.dir)
    assert archived.reader.verify(expect=expect).ok
    assert archived.reader.verify(expect=early).ok  # archived: checked with --archive-dir
    assert archived.reader.verify(expect=(120, "00" * 32), archive_dir=archived.dir).problems


def _dangling_index_entries(env: FakeEnv) -> list[str]:
    """Index entries (per target, per job) naming a stream id the stream no longer holds."""
    live = {i.decode() for i, _ in env.sync.xrange(env.keys.audit)}
    dangling = []
    for key in env.sync.scan_iter(match=f"{env.keys.prefix}audit:target:*"):
        dangling += [
            f"{key!r} {m!r}" for m in env.sync.zrange(key, 0, -1) if m.decode() not in live
        ]
    for key in env.sync.scan_iter(match=f"{env.keys.prefix}audit:job:*"):
        dangling += [
            f"{key!r} {m!r}" for m in env.sync.lrange(key, 0, -1) if m.decode() not in live
        ]
    return dangling


@pytest.mark.parametrize("interrupted", [False, True])
def test_after_archiving_no_index_entry_points_at_an_archived_event(
    archived: Archived, monkeypatch: pytest.MonkeyPatch, interrupted: bool
) -> None:
    # Given 300 old events over 4 targets and their jobs, and 200 newer ones
    env = archived.env
    if interrupted:
        # (a first run wrote a file and died before removing anything from Redis)
        monkeypatch.setattr(archived.reader.store, "remove_archived", _crash)
        with pytest.raises(RuntimeError):
            archived.reader.archive(archived.cutoff, archived.dir, segment_size=120)
        monkeypatch.undo()
    # When the old ones are archived
    archived.reader.archive(archived.cutoff, archived.dir, segment_size=120)
    # Then every index entry left names a live event, and the live ones are all indexed
    assert _dangling_index_entries(env) == []
    indexed = sum(
        env.sync.zcard(k) for k in env.sync.scan_iter(match=f"{env.keys.prefix}audit:target:*")
    )
    assert indexed == len([s for s in archived.new if s.event.target])
    # And once everything is archived, no index key is left at all (nothing to keep at rest)
    archived.reader.archive(time.time() + 1, archived.dir, segment_size=120)
    assert env.sync.keys(f"{env.keys.prefix}audit:target:*") == []
    assert env.sync.keys(f"{env.keys.prefix}audit:job:*") == []


def _crash(*args: Any, **kwargs: Any) -> int:
    raise RuntimeError("killed after writing the file")
