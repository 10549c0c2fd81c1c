"""The whole-stream fast paths (verify's intact-event path, the unfiltered JSONL export) give
exactly what the general paths give, on intact logs and on every kind of odd entry."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from rotator.audit import AuditFilter, AuditReader, canonical_record, parse_entry
from rotator.audit.verify import _ChainWalker
from rotator.store.audit import RawEntry

from .conftest import AUDIT_KEY, FakeEnv, rotation_events


def _general_only(self: _ChainWalker, entries: Any, where: str) -> None:
    for entry in entries:
        self.feed(entry, where)


def _verify_both(env: FakeEnv, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> dict[str, Any]:
    """verify() with the fast path and with every event through the general path: equal."""
    reader = AuditReader(env.sync, env.keys, AUDIT_KEY)
    reader.SCAN_PAGE = 7  # several pages, the next one prefetched
    fast = reader.verify(**kwargs).to_dict()
    with monkeypatch.context() as patch:
        patch.setattr(_ChainWalker, "feed_page", _general_only)
        general = reader.verify(**kwargs).to_dict()
    fast.pop("seconds"), general.pop("seconds")
    assert fast == general
    return fast


def _rewrite(env: FakeEnv, change: dict[int, dict[bytes, bytes] | None]) -> None:
    """Rewrite the stream, replacing (or, with None, dropping) entries by position."""
    items = list(env.sync.xrange(env.keys.audit))
    env.sync.delete(env.keys.audit)
    for position, (_, fields) in enumerate(items):
        replaced = change.get(position, fields)
        if replaced is not None:
            env.sync.xadd(env.keys.audit, replaced)


def _fields(env: FakeEnv, position: int) -> dict[bytes, bytes]:
    return dict(env.sync.xrange(env.keys.audit)[position][1])


@pytest.fixture
def logged(env: FakeEnv) -> FakeEnv:
    env.emit(rotation_events(40))
    return env


def test_intact_log_verifies_across_pages(logged: FakeEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _verify_both(logged, monkeypatch)
    assert result["ok"] and result["checked"] == 40 and result["last_seq"] == 40


def test_checkpoints_go_through_the_general_path(
    logged: FakeEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a checkpoint recorded with another hash at seq 9
    # Then the fast path does not skip the comparison
    result = _verify_both(logged, monkeypatch, expect=[(9, "f" * 64), (20, "e" * 64)])
    assert [(p["kind"], p["seq"]) for p in result["problems"]] == [("anchor", 9), ("anchor", 20)]


@pytest.mark.parametrize(
    "tamper",
    [
        "edited",
        "seq-in-detail",
        "seq-rewritten",
        "deleted",
        "swapped",
        "corrupt",
        "not-an-object",
        "hash-zeroed",
        "page-boundary",
    ],
)
def test_tampering_is_reported_the_same_way(
    logged: FakeEnv, monkeypatch: pytest.MonkeyPatch, tamper: str
) -> None:
    target = 13
    fields = _fields(logged, target)
    record = json.loads(fields[b"event"])
    change: dict[int, dict[bytes, bytes] | None] = {}
    if tamper == "edited":
        record["outcome"] = "noop"
        change[target] = {**fields, b"event": json.dumps(record, sort_keys=True).encode()}
    elif tamper == "seq-in-detail":
        # A forged detail that reads as the next seq to a careless scan
        record["detail"] = '","seq":14,"x":"'
        payload = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        change[target] = {**fields, b"event": payload}
    elif tamper == "seq-rewritten":
        record["seq"] = 15
        change[target] = {**fields, b"event": json.dumps(record, sort_keys=True).encode()}
    elif tamper == "deleted":
        change[target] = None
    elif tamper == "swapped":
        change[target], change[target + 1] = _fields(logged, target + 1), fields
    elif tamper == "corrupt":
        change[target] = {**fields, b"event": b"\xff{not json"}
    elif tamper == "not-an-object":
        change[target] = {**fields, b"event": b"[1, 2]"}
    elif tamper == "hash-zeroed":
        change[target] = {**fields, b"hash": b"0" * 64}
    elif tamper == "page-boundary":  # the first entry of the third page of 7
        record["actor"] = "cli:mallory"
        payload = canonical_record_of(record)
        change[14] = {**_fields(logged, 14), b"event": payload}
    _rewrite(logged, change)
    result = _verify_both(logged, monkeypatch)
    assert not result["ok"]


def canonical_record_of(record: dict[str, Any]) -> bytes:
    from rotator.audit import AuditEvent

    seq = record.pop("seq")
    return canonical_record(AuditEvent.from_dict(record), seq)


def _general_export(reader: AuditReader) -> list[str]:
    entries = reader.store.range("-", "+", 10_000)
    return [
        json.dumps(parse_entry(e).to_dict(), sort_keys=True, ensure_ascii=False) for e in entries
    ]


def test_export_lines_equal_the_general_path_for_odd_entries(logged: FakeEnv) -> None:
    fields = _fields(logged, 3)
    odd = [
        b"\xff{not utf-8",
        b"[1, 2]",
        b"null",
        b'{"event": "x"} trailing',
        b'  {"event":"spaced","seq":3}  ',
        b'\xef\xbb\xbf{"event":"bom","seq":4}',
        b'{"seq":1.5,"time":null,"event":null,"extra":{"seq":2},"id":"forged","hash":"h"}',
        b'{"seq":true,"detail":"caf\xc3\xa9 \\u2028 \\"q\\"","attempt":[1]}',
        b'{"event":"nan","time":NaN,"duration_ms":Infinity}',
        b"{}",
    ]
    for payload in odd:
        logged.sync.xadd(logged.keys.audit, {**fields, b"event": payload})
    logged.sync.xadd(logged.keys.audit, {b"event": b'{"event":"no-hash","seq":9}'})
    reader = AuditReader(logged.sync, logged.keys, AUDIT_KEY)
    reader.SCAN_PAGE = 4
    out = io.StringIO()
    count = reader.export(out, "jsonl")
    lines = out.getvalue().split("\n")[:-1]  # not splitlines: a detail may hold U+2028
    assert count == len(lines) == 40 + len(odd) + 1
    assert lines == _general_export(reader)


def test_filtered_export_still_filters(logged: FakeEnv) -> None:
    reader = AuditReader(logged.sync, logged.keys, AUDIT_KEY)
    out = io.StringIO()
    count = reader.export(out, "jsonl", AuditFilter(events=("job.completed",)))
    assert count == 8
    assert {json.loads(line)["event"] for line in out.getvalue().splitlines()} == {"job.completed"}


def test_raw_reads_match_parsed_reads(logged: FakeEnv) -> None:
    # Given entries with the usual fields, extra fields and missing fields
    logged.sync.xadd(logged.keys.audit, {b"hash": b"ab", b"event": b"{}", b"note": b"x"})
    logged.sync.xadd(logged.keys.audit, {b"other": b"1"})
    store = AuditReader(logged.sync, logged.keys).store
    paged = [entry for page in store.pages(6) for entry in page]
    assert paged == store.range("-", "+", 1000)
    assert all(isinstance(entry, RawEntry) for entry in paged)
