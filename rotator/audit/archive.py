"""Retention: move old events from Redis to gzip JSONL files, keeping the chain checkable.

Archived events are always a prefix of the chain (selection is by stream id, which grows with
seq), so ``verify --archive-dir`` continues from the files into the live stream. A file is
named ``audit-{first seq}-{last seq}.jsonl.gz`` (12 digits each) and is complete and fsynced
before anything is removed from Redis. Archiving is itself an event: ``audit.archived`` (naming
the range, the anchor hash and the file) is chained before the removal, which then moves the
chain anchor in the head to the last archived event, signed with the audit key. ``verify``
accepts an anchor only when both hold. A run interrupted after writing a file is completed by
the next run without writing those events twice.

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

from rotator.audit.events import (
    AuditEvent,
    StoredEvent,
    canonical_payload,
    canonical_record,
    chain_hash,
    parse_entry,
)
from rotator.audit.keyring import ROTATED_EVENT, AuditKeyring
from rotator.audit.spool import fsync_dir
from rotator.crypto import canonical_json
from rotator.errors import AuditKeyMismatch, AuditUnavailable
from rotator.store.audit import (
    GENESIS_HASH,
    MAX_STREAM_SEQ,
    AuditStoreSync,
    PreparedEvent,
    RawEntry,
    id_after,
)

ARCHIVE_DIRNAME = "audit-archive"
ARCHIVED_EVENT = "audit.archived"

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


def anchor_record(seq: int, digest: str, kid: str) -> dict[str, Any]:
    """What the anchor's signature covers."""
    return {"seq": seq, "hash": digest, "kid": kid}


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
    keyring: AuditKeyring | None = None,
    actor: str = "rotator",
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
    if dry_run:
        return _count(store, end, archived_upto, page)
    if keyring is None:
        raise ValueError("archiving needs the audit key (it chains an audit.archived event)")
    signer = _Signer(store, keyring, actor)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("audit-*.jsonl.gz.tmp"):
        stale.unlink()
    writer: _ArchiveWriter | None = None
    leftovers = _Removal()
    for entry in _entries_before(store, end, page):
        record = parse_entry(entry)
        signer.follow(record)
        if record.seq >= 0 and record.seq <= archived_upto:
            leftovers.add(entry, record, signer)  # already in a file: just remove it
            continue
        if writer is None:
            writer = _ArchiveWriter(directory, record.seq)
        writer.add(entry, record, signer)
        if writer.count >= segment_size:
            _finish_segment(store, writer, result, signer)
            writer = None
    if leftovers.last is not None:
        # Written by an interrupted run: its audit.archived event may be missing too.
        signer.record(leftovers, existing[-1][0], existing[-1][2].name)
        result.removed += _remove(store, leftovers)
    if writer is not None:
        _finish_segment(store, writer, result, signer)
    return result


def _count(store: AuditStoreSync, end: str, archived_upto: int, page: int) -> ArchiveResult:
    """What a run would archive (``--dry-run``)."""
    result = ArchiveResult()
    for entry in _entries_before(store, end, page):
        seq = entry.seq()
        if 0 <= seq <= archived_upto:
            continue
        result.archived += 1
        result.first_seq = result.first_seq or seq
        result.last_seq = seq
    return result


def _entries_before(store: AuditStoreSync, end: str, page: int) -> Iterator[RawEntry]:
    start = "-"
    while True:
        batch = store.range(start, end, page)
        yield from batch
        if len(batch) < page:
            return
        start = id_after(batch[-1].id)


def _finish_segment(
    store: AuditStoreSync, writer: _ArchiveWriter, result: ArchiveResult, signer: _Signer
) -> None:
    path = writer.close()
    signer.record(writer.removal, writer.first_seq, path.name)
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
        removal.last,
        removal.last_seq,
        removal.last_hash,
        removal.targets,
        removal.jobs,
        anchor_kid=removal.kid,
        anchor_sig=removal.sig,
    )


class _Signer:
    """Tracks the chain key in force (across ``audit.key_rotated`` events), signs anchors and
    chains the ``audit.archived`` event that records each one."""

    def __init__(self, store: AuditStoreSync, keyring: AuditKeyring, actor: str) -> None:
        self.store = store
        self.keyring = keyring
        self.actor = actor
        head = store.head()
        check = store.key_check()
        self.kid = head.archived_kid or check.get("audit:1") or keyring.oldest_kid

    def follow(self, record: StoredEvent) -> None:
        if record.event.event == ROTATED_EVENT and record.event.fingerprint:
            self.kid = record.event.fingerprint

    def record(self, removal: _Removal, first_seq: int, file_name: str) -> None:
        signature = self.keyring.sign(
            "anchor", anchor_record(removal.last_seq, removal.last_hash, removal.kid)
        )
        removal.sig = f"{signature['kid']}:{signature['mac']}"
        event = AuditEvent(
            ARCHIVED_EVENT,
            actor=self.actor,
            detail=f"archived seq {first_seq}..{removal.last_seq} anchor {removal.last_hash} "
            f"to {file_name}",
        )
        self._append(event)

    def _append(self, event: AuditEvent) -> None:
        key = self.keyring.chain()
        assert key is not None
        for _ in range(1000):
            head = self.store.head()
            payload = canonical_record(event, head.seq + 1)
            digest = chain_hash(key, head.hash, payload)
            prepared = PreparedEvent(head.seq + 1, digest, payload, event.time, None, None)
            try:
                result = self.store.append(head.seq, head.hash, [prepared], kid=self.keyring.kid)
            except AuditKeyMismatch as exc:
                raise AuditUnavailable(
                    f"ROTATOR_AUDIT_KEY does not match the audit key in use (epoch {exc}); "
                    "nothing archived"
                ) from None
            if result.ok:
                return
        raise AuditUnavailable("the audit head kept moving; nothing archived")


class _Removal:
    """What to delete from Redis after a segment is safely on disk."""

    def __init__(self) -> None:
        self.targets: set[str] = set()
        self.jobs: set[str] = set()
        self.last: str | None = None
        self.last_seq = 0
        self.last_hash = GENESIS_HASH
        self.kid = ""  # the chain key in force after the last event (chains the next one)
        self.sig = ""  # the anchor signature "{signer kid}:{mac}"

    def add(self, entry: RawEntry, record: StoredEvent, signer: _Signer | None = None) -> None:
        if signer is not None:
            self.kid = signer.kid
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

    def add(self, entry: RawEntry, record: StoredEvent, signer: _Signer) -> None:
        self._text.write(archive_line(entry, record) + "\n")
        self.count += 1
        self.removal.add(entry, record, signer)

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
