"""Reading the audit log: filtered, paged queries, a job's story, streaming export.

``AuditReader`` is the synchronous review API for the CLI and reports. A job filter reads the
job's list, a target filter the target's sorted set: neither scans the stream. Other filters
scan the stream between time bounds derived from the stream ids. A page continues from a
``Cursor`` (the last event of the previous page), which is cheaper than a page number.
Verification (``rotator.audit.verify``) and archiving (``rotator.audit.archive``) are
reached through the reader too, so one object carries the connection and the key.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import IO, Literal

import redis

from rotator.audit.archive import ArchiveResult, archive_events
from rotator.audit.events import EXPORT_FIELDS, AuditEvent, StoredEvent, parse_entry
from rotator.audit.keyring import AuditKeyring
from rotator.audit.verify import VerifyResult, verify_chain
from rotator.store.audit import (
    MAX_STREAM_SEQ,
    AuditStoreSync,
    Head,
    RawEntry,
    id_after,
    id_before,
    parse_id,
)
from rotator.store.keys import Keys


@dataclass(frozen=True)
class AuditFilter:
    """Which events to return. ``actor`` may be a glob (``cli:*``). Times are unix seconds and
    apply to the event's own ``time``."""

    target: str | None = None
    job_id: str | None = None
    provider: str | None = None
    events: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    actor: str | None = None
    since: float | None = None
    until: float | None = None

    def matches(self, event: AuditEvent) -> bool:
        if self.target is not None and event.target != self.target:
            return False
        if self.job_id is not None and event.job_id != self.job_id:
            return False
        if self.provider is not None and event.provider != self.provider:
            return False
        if self.events and event.event not in self.events:
            return False
        if self.outcomes and event.outcome not in self.outcomes:
            return False
        if self.actor is not None:
            actor = event.actor or ""
            if any(c in self.actor for c in "*?["):
                if not fnmatchcase(actor, self.actor):
                    return False
            elif actor != self.actor:
                return False
        if self.since is not None and event.time < self.since:
            return False
        return self.until is None or event.time <= self.until


@dataclass(frozen=True)
class Cursor:
    """Position after which the next page starts: the last returned event."""

    seq: int
    id: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        seq, sep, stream_id = text.partition(":")
        try:
            if not sep:
                raise ValueError
            parse_id(stream_id)
            return cls(int(seq), stream_id)
        except ValueError:
            raise ValueError(f"invalid cursor {text!r} (expected SEQ:STREAM-ID)") from None


@dataclass(frozen=True)
class _Scan:
    """A range read: stream-time bounds (ms, already widened by the head's lag), direction,
    the cursor to continue after, and the sizes of successive reads."""

    low_ms: int | None
    high_ms: int | None
    newest_first: bool
    after: Cursor | None
    chunks: Iterator[int]


@dataclass(frozen=True)
class AuditPage:
    events: list[StoredEvent]
    next_cursor: str | None


def _chunks(first: int, largest: int) -> Iterator[int]:
    size = max(1, min(first, largest))
    while True:
        yield size
        size = min(size * 2, largest)


class AuditReader:
    """Synchronous review API for the CLI and reports."""

    PAGE = 1000
    # Whole-stream passes (verify, unfiltered export) read bigger pages, the next one
    # prefetched (AuditStoreSync.pages): 1,000,000 events are 100 round trips, not 1,000.
    SCAN_PAGE = 10_000

    def __init__(self, client: redis.Redis, keys: Keys, audit_key: bytes | None = None) -> None:
        self.store = AuditStoreSync(client, keys)
        self.keys = keys
        self._keyring = AuditKeyring.parse(audit_key) if audit_key is not None else None

    def head(self) -> Head:
        return self.store.head()

    def count(self) -> int:
        return self.store.length()

    # -- queries --------------------------------------------------------------------------

    def query(
        self,
        where: AuditFilter | None = None,
        *,
        limit: int = 50,
        cursor: str | Cursor | None = None,
        page: int | None = None,
        newest_first: bool = True,
    ) -> AuditPage:
        """One page of matching events. ``cursor`` (from the previous page) is cheap; ``page``
        (1-based) skips ``(page - 1) * limit`` matches first."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        after = Cursor.parse(cursor) if isinstance(cursor, str) else cursor
        skip = (page - 1) * limit if page and page > 1 else 0
        found: list[StoredEvent] = []
        first_chunk = min(self.PAGE, limit + skip + 1)
        events = self.iter_events(
            where, newest_first=newest_first, after=after, first_chunk=first_chunk
        )
        for record in events:
            if skip:
                skip -= 1
                continue
            found.append(record)
            if len(found) >= limit:
                last = found[-1]
                return AuditPage(found, str(Cursor(last.seq, last.id)))
        return AuditPage(found, None)

    def iter_events(
        self,
        where: AuditFilter | None = None,
        *,
        newest_first: bool = False,
        after: Cursor | None = None,
        first_chunk: int | None = None,
    ) -> Iterator[StoredEvent]:
        """Matching events in chain order (or reversed), read in pages: constant memory.

        A job filter reads the job's list, a target filter the target's sorted set: neither
        scans the stream. Other filters scan the stream between time bounds derived from the
        stream ids (the time Redis stored each event), widened by the largest lag ever seen
        between an event's own time and its storage time (spool replays, clock skew).
        ``first_chunk`` sizes the first read (a page wanting 50 events reads ~50, then reads
        grow to ``PAGE`` while filters reject)."""
        where = where or AuditFilter()
        chunks = _chunks(first_chunk or self.PAGE, self.PAGE)
        head = self.store.head()
        low_ms = None if where.since is None else int((where.since - head.max_lead - 1.0) * 1000)
        high_ms = (
            None if where.until is None else int((where.until + head.max_lag + 1.0) * 1000) + 1
        )
        scan = _Scan(low_ms, high_ms, newest_first, after, chunks)
        if where.job_id is not None:
            source = self._job_entries(where.job_id, newest_first, after)
        elif where.target is not None:
            source = self._target_entries(where.target, scan)
        else:
            source = self._stream_entries(scan)
        for entry in source:
            record = parse_entry(entry)
            if where.matches(record.event):
                yield record

    def _stream_entries(self, scan: _Scan) -> Iterator[RawEntry]:
        low = "-" if scan.low_ms is None else f"{max(scan.low_ms, 0)}-0"
        high = "+" if scan.high_ms is None else f"{max(scan.high_ms, 0)}-{MAX_STREAM_SEQ}"
        if scan.newest_first:
            start, end = high, low
            if scan.after is not None:
                start = id_before(scan.after.id)
                if high != "+" and parse_id(start) > parse_id(high):
                    start = high
        else:
            start, end = low, high
            if scan.after is not None:
                start = id_after(scan.after.id)
                if low != "-" and parse_id(start) < parse_id(low):
                    start = low
        while True:
            size = next(scan.chunks)
            batch = self.store.range(start, end, size, reverse=scan.newest_first)
            yield from batch
            if len(batch) < size:
                return
            last = batch[-1].id
            if scan.newest_first:
                if parse_id(last) == (0, 0):
                    return
                start = id_before(last)
            else:
                start = id_after(last)

    def _target_entries(self, target: str, scan: _Scan) -> Iterator[RawEntry]:
        low, high = "-inf", "+inf"
        if scan.low_ms is not None:
            first = self.store.first_at_or_after(scan.low_ms)
            if first is None:
                return
            low = str(max(first.seq(), 0))
        if scan.high_ms is not None:
            last = self.store.last_at_or_before(scan.high_ms)
            if last is None:
                return
            high = str(last.seq())
        if scan.after is not None:
            if scan.newest_first:
                high = (
                    f"({scan.after.seq}" if high == "+inf" or scan.after.seq <= int(high) else high
                )
            else:
                low = f"({scan.after.seq}" if low == "-inf" or scan.after.seq >= int(low) else low
        while True:
            size = next(scan.chunks)
            pairs = self.store.target_ids(target, low, high, size, reverse=scan.newest_first)
            yield from self.store.by_ids([stream_id for stream_id, _ in pairs])
            if len(pairs) < size:
                return
            if scan.newest_first:
                high = f"({pairs[-1][1]}"
            else:
                low = f"({pairs[-1][1]}"

    def _job_entries(
        self, job_id: str, newest_first: bool, after: Cursor | None
    ) -> Iterator[RawEntry]:
        ids = self.store.job_ids(job_id)
        if after is not None:
            mark = parse_id(after.id)
            ids = [i for i in ids if (parse_id(i) < mark if newest_first else parse_id(i) > mark)]
        if newest_first:
            ids.reverse()
        for i in range(0, len(ids), self.PAGE):
            yield from self.store.by_ids(ids[i : i + self.PAGE])

    def job_story(self, job_id: str) -> list[StoredEvent]:
        """Every event of one job, in order."""
        records = list(self.iter_events(AuditFilter(job_id=job_id)))
        return sorted(records, key=lambda r: (r.seq, parse_id(r.id)))

    # -- export ---------------------------------------------------------------------------

    def export(
        self,
        out: IO[str],
        fmt: Literal["jsonl", "csv"] = "jsonl",
        where: AuditFilter | None = None,
    ) -> int:
        """Stream matching events, oldest first, to ``out``; return how many."""
        count = 0
        if fmt == "csv":
            # CRLF rows (RFC 4180): the writer then quotes any cell holding a CR or LF too.
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow([*EXPORT_FIELDS, "time_iso"])
            for record in self.iter_events(where):
                data = record.to_dict()
                row = [csv_cell(data[k]) for k in EXPORT_FIELDS]
                row.append(datetime.fromtimestamp(record.event.time, tz=UTC).isoformat())
                writer.writerow(row)
                count += 1
        elif fmt == "jsonl" and (where is None or where == AuditFilter()):
            # The whole stream: a page at a time, straight from the payload to its line (no
            # event objects), one write per page.
            for batch in self.store.pages(self.SCAN_PAGE):
                out.write("".join([_jsonl_line(entry) for entry in batch]))
                count += len(batch)
        elif fmt == "jsonl":
            for record in self.iter_events(where):
                out.write(json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False))
                out.write("\n")
                count += 1
        else:
            raise ValueError(f"unknown export format {fmt!r}")
        return count

    # -- verification and retention -------------------------------------------------------

    def verify(
        self,
        *,
        archive_dir: Path | None = None,
        expect: tuple[int, str] | Sequence[tuple[int, str]] | None = None,
    ) -> VerifyResult:
        """Walk the chain (archives in ``archive_dir`` first, then the live stream).

        ``expect``: (seq, hash) pairs recorded by earlier verifications (checkpoints): the chain
        must still contain them (otherwise the log was truncated or rewritten)."""
        if self._keyring is None:
            raise ValueError("verification needs the audit key")
        if expect is None:
            expected: list[tuple[int, str]] = []
        elif isinstance(expect, tuple) and len(expect) == 2 and isinstance(expect[0], int):
            expected = [(expect[0], str(expect[1]))]
        else:
            expected = [(int(s), str(h)) for s, h in expect]
        return verify_chain(
            self.store,
            self._keyring,
            archive_dir=archive_dir,
            expect=expected,
            page=self.SCAN_PAGE,
        )

    def archive(
        self,
        before: float,
        directory: Path,
        *,
        segment_size: int = 100_000,
        dry_run: bool = False,
        actor: str = "rotator",
    ) -> ArchiveResult:
        """Move events stored before ``before`` (unix time) to gzip JSONL files in ``directory``
        and remove them from Redis (see ``rotator.audit.archive``)."""
        return archive_events(
            self.store,
            before,
            directory,
            keyring=self._keyring,
            actor=actor,
            segment_size=segment_size,
            dry_run=dry_run,
            page=self.PAGE,
        )


# An exported line: every export field, nulls included, keys sorted: exactly json.dumps of
# ``parse_entry(entry).to_dict()`` with sort_keys (a test compares the two), without building
# the event objects. The C scanner and encoder are made once (json.loads and json.dumps set
# them up again on every call: a third of the time of a million-line export).
_JSONL_TEMPLATE: dict[str, object] = dict.fromkeys(sorted(EXPORT_FIELDS))
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_json_encoder = json.JSONEncoder(ensure_ascii=False)
_encode_chunks = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None,
        _json_encoder.default,
        json.encoder.encode_basestring,
        None,
        ": ",
        ", ",
        False,
        False,
        True,
    )
    if json.encoder.c_make_encoder is not None  # type: ignore[attr-defined]
    else None
)


def _json_object(payload: bytes) -> dict[str, object] | None:
    """``json.loads(payload)`` when that is an object, else None (unreadable payload)."""
    try:
        try:
            text = payload.decode()
            data, end = _scan_json(text, 0)
            if end != len(text):
                raise ValueError("trailing text")
        except (ValueError, StopIteration):
            data = json.loads(payload)  # the rare cases (BOM, whitespace, errors) as ever
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _jsonl_line(entry: RawEntry) -> str:
    data = _json_object(entry.payload)
    if data is None:
        data = {"event": "<corrupt>"}
    record = {**_JSONL_TEMPLATE, **data}
    if len(record) != len(_JSONL_TEMPLATE):  # fields that are not event fields: dropped
        record = {key: record[key] for key in _JSONL_TEMPLATE}
    seq = data.get("seq")
    record["id"], record["hash"] = entry.id, entry.hash
    record["seq"] = seq if isinstance(seq, int) else -1
    if record["event"] is None:
        record["event"] = ""
    if record["time"] is None:
        record["time"] = 0.0
    if _encode_chunks is None:
        return _json_encoder.encode(record) + "\n"
    return "".join(_encode_chunks(record, 0)) + "\n"


# Cells a spreadsheet would run as a formula (OWASP "CSV injection"): a leading = + - @, tab or
# CR. Event names, details and actors can carry provider text, so every text cell is checked.
_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A CSV cell that is data, not a formula: text starting with a formula character gets a
    leading ``'`` (and embedded quotes/separators are quoted by the csv module as usual)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_LEAD):
        return "'" + value
    return value


@contextlib.contextmanager
def open_output(path: Path | None) -> Iterator[IO[str]]:
    """A file to write (created with mode 0600), or stdout when ``path`` is None or ``-``."""
    if path is None or str(path) == "-":
        yield sys.stdout
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        yield handle
