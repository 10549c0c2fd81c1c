"""Retention: move old events from Redis to gzip JSONL files, keeping the chain checkable.

Archived events are always a prefix of the chain (selection is by stream id, which grows with
seq), so ``verify --archive-dir`` continues from the files into the live stream. A file is
named ``audit-{first seq}-{last seq}.jsonl.gz`` (12 digits each) and is complete and fsynced
before anything is removed from Redis; removal then moves the chain anchor in the head to the
last archived event. A run interrupted after writing a file is completed by the next run
without writing those events twice.

Each line is the stored event with its ``id`` and ``hash``. A payload that is not canonical
JSON (tampered or odd) is kept byte for byte under ``payload``, so archiving never launders a
broken link into a valid one.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rotator.audit.events import StoredEvent, canonical_payload, parse_entry
from rotator.audit.spool import fsync_dir
from rotator.crypto import canonical_json
from rotator.store.audit import GENESIS_HASH, MAX_STREAM_SEQ, AuditStoreSync, RawEntry, id_after

ARCHIVE_DIRNAME = "audit-archive"

_ARCHIVE_NAME = re.compile(r"^audit-(\d{12})-(\d{12})\.jsonl\.gz$")


@dataclass
class ArchiveResult:
    files: list[str] = field(default_factory=list)
    archived: int = 0
    removed: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    anchor_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def archive_files(directory: Path) -> list[tuple[int, int, Path]]:
    """Archive files in ``directory`` as (first seq, last seq, path), oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = _ARCHIVE_NAME.match(name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), directory / name))
    return sorted(found)


def archive_line(entry: RawEntry, record: StoredEvent) -> str:
    """One archive line for a stream entry (the inverse of ``parse_archive_line``)."""
    data: dict[str, Any] = {"id": entry.id, "hash": entry.hash}
    try:
        parsed = json.loads(entry.payload)
        if not isinstance(parsed, dict) or canonical_json(parsed) != entry.payload:
            raise ValueError("not canonical")
        data.update(parsed)
    except ValueError:
        # Keep tampered or odd payloads byte for byte: archiving must not launder them.
        data["payload"] = entry.payload.decode("utf-8", errors="surrogateescape")
        data["seq"] = record.seq
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def parse_archive_line(line: str) -> RawEntry:
    """The stream entry an archive line was written from (``ValueError`` when not JSON)."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    if "payload" in data:
        payload = str(data["payload"]).encode("utf-8", errors="surrogateescape")
    else:
        payload = canonical_payload(data)
    return RawEntry(str(data.get("id", "")), payload, str(data.get("hash", "")))


def archive_events(
    store: AuditStoreSync,
    before: float,
    directory: Path,
    *,
    segment_size: int = 100_000,
    dry_run: bool = False,
    page: int = 1000,
) -> ArchiveResult:
    """Move events stored before ``before`` (unix time) to files in ``directory`` and remove
    them (and their index entries) from Redis, reading the stream ``page`` entries at a time."""
    result = ArchiveResult()
    cutoff_ms = int(before * 1000)
    if cutoff_ms <= 0:
        return result
    end = f"{cutoff_ms - 1}-{MAX_STREAM_SEQ}"
    existing = archive_files(directory)
    archived_upto = existing[-1][1] if existing else 0
    if not dry_run:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("audit-*.jsonl.gz.tmp"):
            stale.unlink()
    writer: _ArchiveWriter | None = None
    leftovers = _Removal()
    for entry in _entries_before(store, end, page):
        record = parse_entry(entry)
        if record.seq >= 0 and record.seq <= archived_upto:
            leftovers.add(entry, record)  # already in a file: just remove it
            continue
        if dry_run:
            result.archived += 1
            result.first_seq = result.first_seq or record.seq
            result.last_seq = record.seq
            continue
        if writer is None:
            writer = _ArchiveWriter(directory, record.seq)
        writer.add(entry, record)
        if writer.count >= segment_size:
            _finish_segment(store, writer, result)
            writer = None
    if dry_run:
        return result
    if leftovers.last is not None:
        result.removed += _remove(store, leftovers)
    if writer is not None:
        _finish_segment(store, writer, result)
    return result


def _entries_before(store: AuditStoreSync, end: str, page: int) -> Iterator[RawEntry]:
    start = "-"
    while True:
        batch = store.range(start, end, page)
        yield from batch
        if len(batch) < page:
            return
        start = id_after(batch[-1].id)


def _finish_segment(store: AuditStoreSync, writer: _ArchiveWriter, result: ArchiveResult) -> None:
    path = writer.close()
    result.files.append(str(path))
    result.archived += writer.count
    if result.first_seq is None:
        result.first_seq = writer.first_seq
    result.last_seq = writer.removal.last_seq
    result.anchor_hash = writer.removal.last_hash
    result.removed += _remove(store, writer.removal)


def _remove(store: AuditStoreSync, removal: _Removal) -> int:
    assert removal.last is not None
    return store.remove_archived(
        removal.last, removal.last_seq, removal.last_hash, removal.targets, removal.jobs
    )


class _Removal:
    """What to delete from Redis after a segment is safely on disk."""

    def __init__(self) -> None:
        self.targets: set[str] = set()
        self.jobs: set[str] = set()
        self.last: str | None = None
        self.last_seq = 0
        self.last_hash = GENESIS_HASH

    def add(self, entry: RawEntry, record: StoredEvent) -> None:
        if record.event.target:
            self.targets.add(record.event.target)
        if record.event.job_id:
            self.jobs.add(record.event.job_id)
        self.last = entry.id
        if record.seq >= self.last_seq:
            self.last_seq, self.last_hash = record.seq, entry.hash


class _ArchiveWriter:
    def __init__(self, directory: Path, first_seq: int) -> None:
        self.directory = directory
        self.first_seq = max(first_seq, 0)
        self.tmp = directory / f"audit-{self.first_seq:012d}.jsonl.gz.tmp"
        self._raw = self.tmp.open("wb")
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6)
        self._text = io.TextIOWrapper(self._gzip, encoding="utf-8", newline="\n")
        self.count = 0
        self.removal = _Removal()

    def add(self, entry: RawEntry, record: StoredEvent) -> None:
        self._text.write(archive_line(entry, record) + "\n")
        self.count += 1
        self.removal.add(entry, record)

    def close(self) -> Path:
        self._text.flush()
        self._text.detach()
        self._gzip.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        final = (
            self.directory / f"audit-{self.first_seq:012d}-{self.removal.last_seq:012d}.jsonl.gz"
        )
        os.replace(self.tmp, final)
        fsync_dir(self.directory)
        return final
