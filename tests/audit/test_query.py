"""Queries on a generated 20k-event log: filters, paging, the per-target index, export."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rotator.audit import (
    AuditEvent,
    AuditFilter,
    AuditReader,
    StoredEvent,
    chain_hash,
    chain_key,
)
from rotator.audit.archive import parse_archive_line
from rotator.store.audit import GENESIS_HASH

from .conftest import AUDIT_KEY, FakeEnv, rotation_events

N = 20_000


class Log:
    def __init__(self) -> None:
        self.env = FakeEnv()
        self.start = time.time()
        events = rotation_events(N, targets=40, start=self.start, step=0.0001)
        self.stored = sorted(self.env.emit(events), key=lambda s: s.seq)
        self.reader = AuditReader(self.env.sync, self.env.keys, AUDIT_KEY)

    def expected(self, where: AuditFilter, newest_first: bool = True) -> list[int]:
        seqs = [s.seq for s in self.stored if where.matches(s.event)]
        return seqs[::-1] if newest_first else seqs


@pytest.fixture(scope="module")
def log() -> Log:
    return Log()


def all_pages(
    reader: AuditReader, where: AuditFilter, limit: int, newest_first: bool
) -> Iterator[list[StoredEvent]]:
    cursor = None
    while True:
        page = reader.query(where, limit=limit, cursor=cursor, newest_first=newest_first)
        yield page.events
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


FILTERS = [
    AuditFilter(),
    AuditFilter(target="target-3"),
    AuditFilter(job_id="job000123"),
    AuditFilter(provider="uipath"),
    AuditFilter(events=("job.completed",)),
    AuditFilter(events=("job.completed",), outcomes=("failed", "dead")),
    AuditFilter(actor="cli:user1"),
    AuditFilter(actor="cli:*"),
    AuditFilter(target="target-7", outcomes=("success",)),
    AuditFilter(target="target-7", provider="adobe", events=("update.intent",)),
]


@pytest.mark.parametrize("where", FILTERS, ids=lambda f: repr(f)[11:60])
def test_filters_match_a_brute_force_scan(log: Log, where: AuditFilter) -> None:
    got = [r.seq for r in log.reader.iter_events(where, newest_first=True)]
    assert got == log.expected(where)


@pytest.mark.parametrize("newest_first", [True, False])
@pytest.mark.parametrize(
    "where",
    [
        AuditFilter(target="target-5"),
        AuditFilter(events=("job.completed",)),
        AuditFilter(job_id="job000007"),
    ],
    ids=["target", "event", "job"],
)
def test_cursor_pages_cover_everything_once(
    log: Log, where: AuditFilter, newest_first: bool
) -> None:
    seqs = [r.seq for page in all_pages(log.reader, where, 37, newest_first) for r in page]
    assert seqs == log.expected(where, newest_first)


def test_page_numbers(log: Log) -> None:
    where = AuditFilter(target="target-9")
    expected = log.expected(where)
    page3 = log.reader.query(where, limit=25, page=3)
    assert [r.seq for r in page3.events] == expected[50:75]
    last = log.reader.query(where, limit=25, page=len(expected) // 25 + 1)
    assert [r.seq for r in last.events] == expected[(len(expected) // 25) * 25 :]
    assert last.next_cursor is None


def test_time_range(log: Log) -> None:
    since = log.start + 0.5
    until = log.start + 1.2
    for where in (
        AuditFilter(since=since, until=until),
        AuditFilter(since=since),
        AuditFilter(until=until, events=("job.started",)),
        AuditFilter(target="target-1", since=since, until=until),
    ):
        expected = log.expected(where)
        assert expected, where
        assert [r.seq for r in log.reader.iter_events(where, newest_first=True)] == expected


def test_per_target_query_uses_the_index_not_the_stream(log: Log, monkeypatch: Any) -> None:
    calls: list[tuple[Any, ...]] = []
    real = log.reader.store.range

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(log.reader.store, "range", spy)
    page = log.reader.query(AuditFilter(target="target-11"), limit=20)
    assert len(page.events) == 20 and calls == []
    page = log.reader.query(AuditFilter(target="target-11", since=log.start + 1), limit=20)
    assert len(calls) == 1  # one id lookup to turn the time bound into a seq bound
    assert all(r.event.target == "target-11" for r in page.events)


def test_lagging_events_are_found_by_time(env: FakeEnv) -> None:
    """Events whose own time is long before they reached Redis (a replayed spool)."""
    now = time.time()
    env.emit([AuditEvent("old", target="t", time=now - 3 * 86400)])
    env.emit([AuditEvent("new", target="t", time=now)])
    reader = AuditReader(env.sync, env.keys)
    for target in (None, "t"):
        old = reader.query(AuditFilter(target=target, until=now - 2 * 86400))
        assert [r.event.event for r in old.events] == ["old"]
        recent = reader.query(AuditFilter(target=target, since=now - 60))
        assert [r.event.event for r in recent.events] == ["new"]


def test_bad_cursor(log: Log) -> None:
    with pytest.raises(ValueError, match="cursor"):
        log.reader.query(cursor="nonsense")


def test_job_story_is_in_order(log: Log) -> None:
    story = log.reader.job_story("job000042")
    assert [r.event.event for r in story] == [
        "job.started",
        "remote.read",
        "update.intent",
        "update.applied",
        "job.completed",
    ]
    assert [r.seq for r in story] == sorted(r.seq for r in story)
    assert log.reader.job_story("no-such-job") == []


def test_export_jsonl_is_complete_and_verifiable(log: Log) -> None:
    out = io.StringIO()
    assert log.reader.export(out, "jsonl") == N
    key, prev = chain_key(AUDIT_KEY), GENESIS_HASH
    for seq, line in enumerate(out.getvalue().splitlines(), 1):
        entry = parse_archive_line(line)
        assert json.loads(line)["seq"] == seq
        assert chain_hash(key, prev, entry.payload) == entry.hash
        prev = entry.hash


def test_export_csv_with_filters(log: Log) -> None:
    out = io.StringIO()
    where = AuditFilter(target="target-2", events=("job.completed",))
    count = log.reader.export(out, "csv", where)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert count == len(rows) == len(log.expected(where))
    assert rows[0]["event"] == "job.completed" and rows[0]["time_iso"].endswith("+00:00")
    assert [int(r["seq"]) for r in rows] == log.expected(where, newest_first=False)


def test_verify_the_generated_log(log: Log) -> None:
    result = log.reader.verify()
    assert result.ok and result.checked == N and result.last_seq == N


@pytest.mark.parametrize("newest_first", [True, False])
def test_small_read_chunks_cross_page_boundaries(
    log: Log, monkeypatch: pytest.MonkeyPatch, newest_first: bool
) -> None:
    monkeypatch.setattr(log.reader, "PAGE", 7)
    for where in (
        AuditFilter(target="target-3"),
        AuditFilter(events=("job.completed",), since=log.start + 1.7),
        AuditFilter(target="target-4", until=log.start + 0.3, outcomes=("success",)),
    ):
        expected = log.expected(where, newest_first)
        assert [r.seq for r in log.reader.iter_events(where, newest_first=newest_first)] == expected
        seqs = [r.seq for page in all_pages(log.reader, where, 5, newest_first) for r in page]
        assert seqs == expected
