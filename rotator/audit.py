"""Audit events: one fixed schema, hash-chained in a Redis stream, reviewable and exportable.

Events never carry secret values: only version ids and keyed HMAC fingerprints.

Chain
    Every event gets a sequence number ``seq`` (1, 2, 3 ...) and
    ``hash_n = HMAC-SHA256(chain_key, hash_{n-1} || canonical(event_n))`` where ``hash_0`` is
    64 zeros, ``hash`` values are lowercase hex (the ASCII hex of ``hash_{n-1}`` is what is
    concatenated), ``canonical`` is JSON with sorted keys, no spaces, UTF-8, null fields left
    out and ``seq`` included, and ``chain_key = HKDF(audit_key, "rotator audit chain v1")``.
    Editing, deleting, inserting or reordering an event breaks the chain; nobody without the
    audit key can recompute it. Removing events from the tail is caught by ``verify`` against
    the head record and a checkpoint of an earlier verification.

Writing (``AuditLog``)
    Concurrent ``emit`` calls in one process are group-committed: one Lua script call appends a
    whole batch (events, head, per-target and per-job indexes) atomically, and refuses it when
    another process moved the head first (then the batch is re-chained and retried). ``emit``
    returns once its event is in Redis. When Redis cannot be written the batch goes to a local
    spool and ``emit`` raises ``AuditUnavailable``: the engine makes no provider call.

Spool
    ``<state_dir>/audit-spool/`` holds one JSONL segment per failed batch (a header line, then
    the events, unchained), written to a temporary name, fsynced and renamed into place. A
    segment is replayed (``replay_spool``, in name = time order, under an exclusive ``flock``)
    once Redis is back: its events get their seq and hash then. Before each replay attempt the
    chain position it will take is written into the segment header, so a replay interrupted
    after Redis applied it (a timeout, a crash) is recognised and never appended twice.

Reading (``AuditReader``)
    Filtered, paged queries (a per-target sorted set and a per-job list keep those queries away
    from full scans), a job's story, streaming export (JSONL/CSV), chain verification across
    archives and the live stream, and archiving old events to gzip JSONL files.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import fcntl
import gzip
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, NoReturn

import redis
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from rotator.crypto import canonical_json, derive_key
from rotator.errors import AuditUnavailable
from rotator.store.audit import (
    GENESIS_HASH,
    MAX_STREAM_SEQ,
    AuditStore,
    AuditStoreSync,
    Head,
    PreparedEvent,
    RawEntry,
    id_after,
    id_before,
    parse_id,
)
from rotator.store.keys import Keys

if TYPE_CHECKING:
    from rotator.config import Settings

log = structlog.get_logger(__name__)

CHAIN_LABEL = "rotator audit chain v1"
SPOOL_DIRNAME = "audit-spool"
ARCHIVE_DIRNAME = "audit-archive"

EVENT_FIELDS = (
    "time",
    "event",
    "job_id",
    "target",
    "provider",
    "attempt",
    "actor",
    "reason",
    "secret_version",
    "fingerprint",
    "remote_version_before",
    "remote_version_after",
    "duration_ms",
    "error_class",
    "outcome",
    "detail",
)

# Columns of exports: where the event sits in the chain, then the event itself.
EXPORT_FIELDS = ("id", "seq", "hash", *EVENT_FIELDS)


@dataclass(frozen=True)
class AuditEvent:
    event: str
    job_id: str | None = None
    target: str | None = None
    provider: str | None = None
    attempt: int | None = None
    actor: str | None = None
    reason: str | None = None
    secret_version: str | None = None
    fingerprint: str | None = None
    remote_version_before: str | None = None
    remote_version_after: str | None = None
    duration_ms: float | None = None
    error_class: str | None = None
    outcome: str | None = None
    detail: str | None = None
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        # Every field is a plain scalar: no need for asdict's recursive deep copy (hot path).
        return {name: getattr(self, name) for name in _EVENT_ORDER}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditEvent:
        values = {k: data[k] for k in EVENT_FIELDS if k in data and data[k] is not None}
        values.setdefault("event", "")
        values.setdefault("time", 0.0)
        return cls(**values)


_EVENT_ORDER = tuple(f.name for f in fields(AuditEvent))


@dataclass(frozen=True)
class StoredEvent:
    """An event as it sits in the chain."""

    id: str
    seq: int
    hash: str
    event: AuditEvent

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "hash": self.hash, **self.event.to_dict()}


# ---------------------------------------------------------------------------------------------
# Chain primitives
# ---------------------------------------------------------------------------------------------


def chain_key(audit_key: bytes) -> bytes:
    return derive_key(audit_key, CHAIN_LABEL)


def canonical_record(event: AuditEvent, seq: int) -> bytes:
    """The exact bytes the chain covers (and the stream stores) for one event."""
    record = {name: value for name in _EVENT_ORDER if (value := getattr(event, name)) is not None}
    record["seq"] = seq
    return canonical_json(record)


def canonical_payload(record: dict[str, Any]) -> bytes:
    """Canonical bytes of an exported/archived record (``id``/``hash`` and nulls dropped)."""
    return canonical_json(
        {k: v for k, v in record.items() if v is not None and k not in ("id", "hash", "payload")}
    )


def chain_hash(key: bytes, prev_hash: str, payload: bytes) -> str:
    return hmac.new(key, prev_hash.encode() + payload, hashlib.sha256).hexdigest()


def parse_entry(entry: RawEntry) -> StoredEvent:
    """A stream entry as an event; an unreadable payload becomes a ``<corrupt>`` placeholder."""
    try:
        data = json.loads(entry.payload)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        seq = data.get("seq")
        return StoredEvent(
            entry.id, seq if isinstance(seq, int) else -1, entry.hash, AuditEvent.from_dict(data)
        )
    except (ValueError, TypeError):
        return StoredEvent(entry.id, -1, entry.hash, AuditEvent("<corrupt>", time=0.0))


# ---------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------


@dataclass
class AuditStats:
    events: int = 0
    batches: int = 0
    conflicts: int = 0
    spooled: int = 0
    replayed: int = 0


class _StoreFailed(Exception):
    def __init__(self, reason: str, attempt: tuple[int, str] | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempt = attempt


@dataclass
class _Segment:
    path: Path
    attempt: tuple[int, str] | None
    events: list[AuditEvent]


class AuditLog:
    """The writer: group-committed, hash-chained, fail-closed with a local spool."""

    MAX_CONFLICTS = 1000

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        audit_key: bytes,
        *,
        jsonl_path: Path | None = None,
        stdout: bool = False,
        spool_dir: Path | None = None,
        max_batch: int = 500,
    ) -> None:
        self._store = AuditStore(redis, keys)
        self._keys = keys
        self._key = chain_key(audit_key)
        self._jsonl_path = jsonl_path
        self._stdout = stdout
        self._spool_dir = spool_dir
        self._max_batch = max(1, max_batch)
        self._pending: list[tuple[AuditEvent, asyncio.Future[StoredEvent]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._write_lock: asyncio.Lock | None = None
        self._head: tuple[int, str] | None = None
        self._contended = False  # another process wrote recently: read the head first
        self._quiet = 0
        self._spool_check = spool_dir is not None
        self.stats = AuditStats()

    @classmethod
    def from_settings(cls, redis: aioredis.Redis, settings: Settings) -> AuditLog:
        """The writer as the settings describe it (spool under ``state_dir/audit-spool``)."""
        return cls(
            redis,
            Keys(settings.key_prefix),
            settings.audit_key_bytes(),
            jsonl_path=settings.audit_jsonl,
            stdout=settings.audit_stdout,
            spool_dir=settings.state_dir / SPOOL_DIRNAME,
        )

    @property
    def _lock(self) -> asyncio.Lock:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    async def emit(self, event: AuditEvent) -> StoredEvent:
        """Make the event durable in Redis; raise AuditUnavailable when it cannot be (fail
        closed: the event is then in the local spool, if one is configured)."""
        future: asyncio.Future[StoredEvent] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(), name="audit-flush")
        return await future

    async def replay_spool(self) -> int:
        """Append spooled events, oldest first; return how many. Raises AuditUnavailable when
        spooled events remain and Redis still cannot take them."""
        if self._spool_dir is None or not _list_segments(self._spool_dir):
            return 0
        async with self._lock:
            return await self._replay_locked()

    async def aclose(self) -> None:
        """Wait for events already handed to ``emit`` to be written (or spooled)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher})

    # -- internals ------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                async with self._lock:
                    stored = await self._write([event for event, _ in batch])
            except AuditUnavailable as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(AuditUnavailable(str(exc)))
                continue
            except BaseException as exc:
                for _, future in batch + self._pending:
                    if not future.done():
                        future.set_exception(AuditUnavailable(f"audit writer failed: {exc!r}"))
                self._pending.clear()
                raise
            for (_, future), record in zip(batch, stored, strict=True):
                if not future.done():
                    future.set_result(record)

    async def _write(self, events: list[AuditEvent]) -> list[StoredEvent]:
        if self._spool_check:
            try:
                await self._replay_locked()
            except AuditUnavailable as exc:
                # Spooled events must go first: keep the order by spooling behind them.
                await self._spool(events, None, str(exc))
        try:
            stored = await self._append(events)
        except _StoreFailed as exc:
            await self._spool(events, exc.attempt, exc.reason)
        await self._sinks(stored)
        return stored

    async def _append(
        self,
        events: Sequence[AuditEvent],
        before_send: Callable[[int, str], Awaitable[None]] | None = None,
    ) -> list[StoredEvent]:
        attempt: tuple[int, str] | None = None
        try:
            for round_ in range(self.MAX_CONFLICTS):
                if self._head is None or (self._contended and round_ == 0):
                    # Other writers are active: a cheap head read beats shipping a whole
                    # batch only to have it refused.
                    head = await self._store.head()
                    fresh = (head.seq, head.hash)
                    self._quiet = self._quiet + 1 if fresh == self._head else 0
                    if self._quiet >= 8:
                        self._contended = False
                    self._head = fresh
                base_seq, base_hash = self._head
                prepared = self._prepare(events, base_seq, base_hash)
                if before_send is not None:
                    await before_send(prepared[0].seq, prepared[0].hash)
                attempt = (prepared[0].seq, prepared[0].hash)
                result = await self._store.append(base_seq, base_hash, prepared)
                if result.ok:
                    self._head = (prepared[-1].seq, prepared[-1].hash)
                    self.stats.batches += 1
                    self.stats.events += len(prepared)
                    return [
                        StoredEvent(stream_id, p.seq, p.hash, e)
                        for stream_id, p, e in zip(result.ids, prepared, events, strict=True)
                    ]
                self.stats.conflicts += 1
                self._contended, self._quiet = True, 0
                self._head = (result.head_seq, result.head_hash)
        except (RedisError, OSError) as exc:
            self._head = None
            raise _StoreFailed(f"{type(exc).__name__}: {exc}", attempt) from None
        self._head = None
        raise _StoreFailed("the audit head kept moving (too many concurrent writers)", attempt)

    def _prepare(
        self, events: Sequence[AuditEvent], base_seq: int, base_hash: str
    ) -> list[PreparedEvent]:
        prepared = []
        seq, prev = base_seq, base_hash
        for event in events:
            seq += 1
            payload = canonical_record(event, seq)
            prev = chain_hash(self._key, prev, payload)
            prepared.append(
                PreparedEvent(seq, prev, payload, event.time, event.target, event.job_id)
            )
        return prepared

    async def _sinks(self, stored: list[StoredEvent]) -> None:
        if self._jsonl_path is None and not self._stdout:
            return
        lines = "".join(json.dumps(s.to_dict(), sort_keys=True) + "\n" for s in stored)
        if self._jsonl_path is not None:
            try:
                await asyncio.to_thread(_append_text, self._jsonl_path, lines)
            except OSError as exc:  # Redis is the record; the file is a convenience copy
                log.warning("audit jsonl copy failed", path=str(self._jsonl_path), error=str(exc))
        if self._stdout:
            sys.stdout.write(lines)
            sys.stdout.flush()

    async def _spool(
        self, events: list[AuditEvent], attempt: tuple[int, str] | None, reason: str
    ) -> NoReturn:
        """Write the batch to the spool and raise AuditUnavailable (always)."""
        message = f"audit sink unavailable ({reason})"
        if self._spool_dir is None:
            raise AuditUnavailable(message + "; no spool configured, events not recorded")
        try:
            path = await asyncio.to_thread(_write_segment, self._spool_dir, events, attempt)
        except OSError as exc:
            log.error("audit spool write failed", error=str(exc), events=len(events))
            raise AuditUnavailable(message + f"; spool write failed too: {exc}") from None
        self.stats.spooled += len(events)
        self._spool_check = True
        log.warning("audit events spooled", path=str(path), events=len(events), reason=reason)
        raise AuditUnavailable(message + f"; {len(events)} event(s) spooled to {path.name}")

    async def _replay_locked(self) -> int:
        assert self._spool_dir is not None
        spool_dir = self._spool_dir
        if not _list_segments(spool_dir):
            self._spool_check = False
            return 0
        handle = await asyncio.to_thread(_lock_spool, spool_dir)
        replayed = 0
        try:
            for path in _list_segments(spool_dir):
                segment = await asyncio.to_thread(_read_segment, path)
                if segment is None:
                    continue
                if segment.attempt is not None and await self._applied(segment.attempt):
                    await asyncio.to_thread(_unlink, path)
                    continue
                if not segment.events:
                    await asyncio.to_thread(_unlink, path)
                    continue

                async def record(seq: int, digest: str, seg: _Segment = segment) -> None:
                    await asyncio.to_thread(_rewrite_segment, seg.path, seg.events, (seq, digest))

                try:
                    stored = await self._append(segment.events, before_send=record)
                except _StoreFailed as exc:
                    raise AuditUnavailable(
                        f"audit sink unavailable ({exc.reason}); spool replay stopped"
                    ) from None
                await asyncio.to_thread(_unlink, path)
                replayed += len(stored)
                self.stats.replayed += len(stored)
                await self._sinks(stored)
            self._spool_check = False
        finally:
            await asyncio.to_thread(handle.close)
        if replayed:
            log.info("audit spool replayed", events=replayed)
        return replayed

    async def _applied(self, attempt: tuple[int, str]) -> bool:
        try:
            found = await self._store.find_seq(attempt[0])
        except (RedisError, OSError) as exc:
            raise AuditUnavailable(f"audit sink unavailable ({type(exc).__name__})") from None
        return found is not None and found.hash == attempt[1]


# -- spool files (blocking helpers, run in threads) -------------------------------------------

_SEGMENT = re.compile(r"^\d{20}-\d+-[0-9a-f]{8}\.jsonl$")


def _list_segments(spool_dir: Path) -> list[Path]:
    try:
        names = os.listdir(spool_dir)
    except FileNotFoundError:
        return []
    return [spool_dir / n for n in sorted(names) if _SEGMENT.match(n)]


def _segment_text(events: Sequence[AuditEvent], attempt: tuple[int, str] | None) -> str:
    header = {
        "rotator_audit_spool": 1,
        "attempt": None if attempt is None else {"seq": attempt[0], "hash": attempt[1]},
    }
    lines = [json.dumps(header, sort_keys=True)]
    lines += [json.dumps(e.to_dict(), sort_keys=True) for e in events]
    return "\n".join(lines) + "\n"


def _write_file_durably(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_segment(
    spool_dir: Path, events: Sequence[AuditEvent], attempt: tuple[int, str] | None
) -> Path:
    spool_dir.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
    path = spool_dir / name
    _write_file_durably(path, _segment_text(events, attempt))
    return path


def _rewrite_segment(
    path: Path, events: Sequence[AuditEvent], attempt: tuple[int, str] | None
) -> None:
    _write_file_durably(path, _segment_text(events, attempt))


def _read_segment(path: Path) -> _Segment | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None  # replayed by another process meanwhile
    try:
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        header = lines[0]
        if header.get("rotator_audit_spool") != 1:
            raise ValueError("not a spool segment")
        raw_attempt = header.get("attempt")
        attempt = None if raw_attempt is None else (int(raw_attempt["seq"]), raw_attempt["hash"])
        events = [AuditEvent.from_dict(line) for line in lines[1:]]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        quarantine = path.with_name(path.name + ".corrupt")
        os.replace(path, quarantine)
        log.error("corrupt audit spool segment set aside", path=str(quarantine), error=str(exc))
        return None
    return _Segment(path, attempt, events)


def _lock_spool(spool_dir: Path) -> IO[bytes]:
    spool_dir.mkdir(parents=True, exist_ok=True)
    handle = (spool_dir / ".lock").open("ab")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _append_text(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


# ---------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------


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
class AuditPage:
    events: list[StoredEvent]
    next_cursor: str | None


@dataclass(frozen=True)
class ChainProblem:
    kind: str  # edited | gap | reordered | corrupt | truncated | head | anchor | archive
    message: str
    seq: int | None = None
    id: str | None = None
    where: str = "live"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyResult:
    checked: int = 0
    archived_checked: int = 0
    archive_files: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    anchor_seq: int = 0
    head_seq: int = 0
    problems: list[ChainProblem] = field(default_factory=list)
    problem_count: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


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


class _ChainWalker:
    """Checks events one by one against the chain; reports problems and resynchronises."""

    MAX_PROBLEMS = 100

    def __init__(self, key: bytes, result: VerifyResult, start_seq: int, start_hash: str) -> None:
        self.key = key
        self.result = result
        self.last_seq = start_seq
        self.last_hash = start_hash
        self.gaps: list[tuple[int, int, ChainProblem]] = []  # missing range, its problem
        self.expect: tuple[int, str] | None = None
        self.expect_seen = False

    def problem(self, problem: ChainProblem) -> None:
        self.result.problem_count += 1
        if len(self.result.problems) < self.MAX_PROBLEMS:
            self.result.problems.append(problem)

    def feed(self, entry: RawEntry, where: str, seq: int | None = None) -> None:
        stream_id, payload, digest = entry.id, entry.payload, entry.hash
        seq = entry.seq() if seq is None else seq
        if seq < 0:
            self.problem(
                ChainProblem("corrupt", "entry is not a readable event", None, stream_id, where)
            )
            return
        if self.result.first_seq is None:
            self.result.first_seq = seq
        expected = self.last_seq + 1
        if seq < expected:
            self._out_of_order(seq, stream_id, where)
            return
        if self.expect is not None and seq == self.expect[0]:
            self.expect_seen = True
            if digest != self.expect[1]:
                self.problem(
                    ChainProblem(
                        "anchor",
                        f"seq {seq} no longer carries the hash recorded by an earlier "
                        "verification: the log was rewritten",
                        seq,
                        stream_id,
                        where,
                    )
                )
        if seq > expected:
            gap = ChainProblem(
                "gap",
                f"events {expected}..{seq - 1} are missing before seq {seq} (deleted or truncated)"
                if seq - 1 > expected
                else f"event {expected} is missing before seq {seq} (deleted)",
                seq,
                stream_id,
                where,
            )
            self.problem(gap)
            self.gaps.append((expected, seq - 1, gap))
        elif not hmac.compare_digest(chain_hash(self.key, self.last_hash, payload), digest):
            self.problem(
                ChainProblem(
                    "edited",
                    f"broken link at seq {seq}: its hash does not match its content and the "
                    "previous hash (event edited, or chained with another key)",
                    seq,
                    stream_id,
                    where,
                )
            )
        # Resynchronise on the stored hash so one tampered event is reported once.
        self.last_seq, self.last_hash = seq, digest

    def _out_of_order(self, seq: int, stream_id: str, where: str) -> None:
        for index, (low, high, gap) in enumerate(self.gaps):
            if low <= seq <= high:
                message = f"seq {seq} appears after seq {gap.seq}: events were reordered"
                replaced = ChainProblem("reordered", message, gap.seq, gap.id, gap.where)
                if gap in self.result.problems:
                    self.result.problems[self.result.problems.index(gap)] = replaced
                self.gaps[index] = (low, high, replaced)
                return
        self.problem(
            ChainProblem(
                "reordered",
                f"seq {seq} appears after seq {self.last_seq} (reordered or duplicated)",
                seq,
                stream_id,
                where,
            )
        )


_ARCHIVE_NAME = re.compile(r"^audit-(\d{12})-(\d{12})\.jsonl\.gz$")


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


def _archive_line(entry: RawEntry, record: StoredEvent) -> str:
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


def _line_entry(line: str) -> RawEntry:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    if "payload" in data:
        payload = str(data["payload"]).encode("utf-8", errors="surrogateescape")
    else:
        payload = canonical_payload(data)
    return RawEntry(str(data.get("id", "")), payload, str(data.get("hash", "")))


def _chunks(first: int, largest: int) -> Iterator[int]:
    size = max(1, min(first, largest))
    while True:
        yield size
        size = min(size * 2, largest)


class AuditReader:
    """Synchronous review API for the CLI and reports."""

    PAGE = 1000

    def __init__(self, client: redis.Redis, keys: Keys, audit_key: bytes | None = None) -> None:
        self.store = AuditStoreSync(client, keys)
        self.keys = keys
        self._key = chain_key(audit_key) if audit_key is not None else None

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
        if where.job_id is not None:
            source = self._job_entries(where.job_id, newest_first, after)
        elif where.target is not None:
            source = self._target_entries(
                where.target, low_ms, high_ms, newest_first, after, chunks
            )
        else:
            source = self._stream_entries(low_ms, high_ms, newest_first, after, chunks)
        for entry in source:
            record = parse_entry(entry)
            if where.matches(record.event):
                yield record

    def _stream_entries(
        self,
        low_ms: int | None,
        high_ms: int | None,
        newest_first: bool,
        after: Cursor | None,
        chunks: Iterator[int],
    ) -> Iterator[RawEntry]:
        low = "-" if low_ms is None else f"{max(low_ms, 0)}-0"
        high = "+" if high_ms is None else f"{max(high_ms, 0)}-{MAX_STREAM_SEQ}"
        if newest_first:
            start, end = high, low
            if after is not None:
                start = id_before(after.id)
                if high != "+" and parse_id(start) > parse_id(high):
                    start = high
        else:
            start, end = low, high
            if after is not None:
                start = id_after(after.id)
                if low != "-" and parse_id(start) < parse_id(low):
                    start = low
        while True:
            size = next(chunks)
            batch = self.store.range(start, end, size, reverse=newest_first)
            yield from batch
            if len(batch) < size:
                return
            last = batch[-1].id
            if newest_first:
                if parse_id(last) == (0, 0):
                    return
                start = id_before(last)
            else:
                start = id_after(last)

    def _target_entries(
        self,
        target: str,
        low_ms: int | None,
        high_ms: int | None,
        newest_first: bool,
        after: Cursor | None,
        chunks: Iterator[int],
    ) -> Iterator[RawEntry]:
        low, high = "-inf", "+inf"
        if low_ms is not None:
            first = self.store.first_at_or_after(low_ms)
            if first is None:
                return
            low = str(max(first.seq(), 0))
        if high_ms is not None:
            last = self.store.last_at_or_before(high_ms)
            if last is None:
                return
            high = str(last.seq())
        if after is not None:
            if newest_first:
                high = f"({after.seq}" if high == "+inf" or after.seq <= int(high) else high
            else:
                low = f"({after.seq}" if low == "-inf" or after.seq >= int(low) else low
        while True:
            size = next(chunks)
            pairs = self.store.target_ids(target, low, high, size, reverse=newest_first)
            yield from self.store.by_ids([stream_id for stream_id, _ in pairs])
            if len(pairs) < size:
                return
            if newest_first:
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
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow([*EXPORT_FIELDS, "time_iso"])
            for record in self.iter_events(where):
                data = record.to_dict()
                row = ["" if data[k] is None else data[k] for k in EXPORT_FIELDS]
                row.append(datetime.fromtimestamp(record.event.time, tz=UTC).isoformat())
                writer.writerow(row)
                count += 1
        elif fmt == "jsonl":
            for record in self.iter_events(where):
                out.write(json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False))
                out.write("\n")
                count += 1
        else:
            raise ValueError(f"unknown export format {fmt!r}")
        return count

    # -- verification ---------------------------------------------------------------------

    def verify(
        self,
        *,
        archive_dir: Path | None = None,
        expect: tuple[int, str] | None = None,
    ) -> VerifyResult:
        """Walk the chain (archives in ``archive_dir`` first, then the live stream).

        ``expect`` is a (seq, hash) pair recorded by an earlier verification: the chain must
        still contain it (otherwise the log was truncated or rewritten)."""
        if self._key is None:
            raise ValueError("verification needs the audit key")
        started = time.perf_counter()
        result = VerifyResult()
        head = self.store.head()
        result.head_seq = head.seq
        files = archive_files(archive_dir) if archive_dir is not None else []
        if files:
            walker = _ChainWalker(self._key, result, 0, GENESIS_HASH)
        else:
            walker = _ChainWalker(self._key, result, head.archived_seq, head.archived_hash)
            result.anchor_seq = head.archived_seq
        walker.expect = expect
        if expect is not None and not files and expect[0] <= head.archived_seq:
            # The checkpointed event has been archived since: only the anchor can be checked
            # here (the archive itself is checked with ``archive_dir``).
            walker.expect, walker.expect_seen = None, True
            if expect[0] == head.archived_seq and expect[1] != head.archived_hash:
                walker.problem(
                    ChainProblem(
                        "anchor",
                        f"the archive anchor at seq {expect[0]} no longer carries the hash "
                        "recorded by an earlier verification",
                        expect[0],
                    )
                )
        for first, _last, path in files:
            result.archive_files += 1
            before = result.checked
            try:
                with gzip.open(path, "rt", encoding="utf-8") as handle:
                    for number, line in enumerate(handle, 1):
                        if not line.strip():
                            continue
                        try:
                            entry = _line_entry(line)
                        except ValueError:
                            walker.problem(
                                ChainProblem(
                                    "corrupt", f"line {number} is not JSON", None, None, path.name
                                )
                            )
                            continue
                        walker.feed(entry, path.name)
                        result.checked += 1
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                walker.problem(
                    ChainProblem("archive", f"cannot read archive: {exc}", first, None, path.name)
                )
            result.archived_checked += result.checked - before
        archived_upto = walker.last_seq if files else 0
        start = "-"
        while True:
            batch = self.store.range(start, "+", self.PAGE)
            for entry in batch:
                seq = entry.seq()
                if files and 0 <= seq <= archived_upto:
                    continue  # archived and not yet removed (an interrupted archive run)
                walker.feed(entry, "live", seq)
                result.checked += 1
            if len(batch) < self.PAGE:
                break
            start = id_after(batch[-1].id)
        if files and head.archived_seq > archived_upto:
            walker.problem(
                ChainProblem(
                    "archive",
                    f"Redis says events up to seq {head.archived_seq} were archived, but the "
                    f"archive directory ends at seq {archived_upto}",
                    head.archived_seq,
                )
            )
        self._check_head(walker, head, result)
        if expect is not None and not walker.expect_seen:
            walker.problem(
                ChainProblem(
                    "truncated",
                    f"seq {expect[0]} (seen by an earlier verification) is no longer in the "
                    f"log, which now ends at seq {walker.last_seq}",
                    expect[0],
                )
            )
        result.last_seq, result.last_hash = walker.last_seq, walker.last_hash
        result.seconds = time.perf_counter() - started
        return result

    @staticmethod
    def _check_head(walker: _ChainWalker, head: Head, result: VerifyResult) -> None:
        if not head.exists:
            if walker.last_seq > 0:
                walker.problem(
                    ChainProblem("head", "the audit head record is missing", walker.last_seq)
                )
            return
        if head.seq > walker.last_seq:
            walker.problem(
                ChainProblem(
                    "truncated",
                    f"the head says the log ends at seq {head.seq}, but it ends at seq "
                    f"{walker.last_seq}: events were removed from the end",
                    walker.last_seq + 1,
                )
            )
        elif head.seq < walker.last_seq:
            walker.problem(
                ChainProblem(
                    "head",
                    f"the head says seq {head.seq}, but the log goes on to seq {walker.last_seq}",
                    head.seq,
                )
            )
        elif head.hash != walker.last_hash:
            walker.problem(
                ChainProblem(
                    "head", f"the head hash does not match event {head.seq}", head.seq, head.id
                )
            )

    # -- retention ------------------------------------------------------------------------

    def archive(
        self,
        before: float,
        directory: Path,
        *,
        segment_size: int = 100_000,
        dry_run: bool = False,
    ) -> ArchiveResult:
        """Move events stored before ``before`` (unix time) to gzip JSONL files in ``directory``
        and remove them (and their index entries) from Redis.

        Archived events are always a prefix of the chain (selection is by stream id, which grows
        with seq), so ``verify --archive-dir`` continues from the files into the live stream.
        Each file is complete and fsynced before anything is removed; a run interrupted after
        writing a file is completed by the next run without writing those events twice."""
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
        start = "-"
        while True:
            batch = self.store.range(start, end, self.PAGE)
            for entry in batch:
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
                    self._finish_segment(writer, result)
                    writer = None
            if len(batch) < self.PAGE:
                break
            start = id_after(batch[-1].id)
        if dry_run:
            return result
        if leftovers.last is not None:
            result.removed += self._remove(leftovers)
        if writer is not None:
            self._finish_segment(writer, result)
        return result

    def _finish_segment(self, writer: _ArchiveWriter, result: ArchiveResult) -> None:
        path = writer.close()
        result.files.append(str(path))
        result.archived += writer.count
        if result.first_seq is None:
            result.first_seq = writer.first_seq
        result.last_seq = writer.removal.last_seq
        result.anchor_hash = writer.removal.last_hash
        result.removed += self._remove(writer.removal)

    def _remove(self, removal: _Removal) -> int:
        assert removal.last is not None
        return self.store.remove_archived(
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
        self._text.write(_archive_line(entry, record) + "\n")
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
        _fsync_dir(self.directory)
        return final


@contextlib.contextmanager
def open_output(path: Path | None) -> Iterator[IO[str]]:
    """A file to write (created with mode 0600), or stdout when ``path`` is None or ``-``."""
    if path is None or str(path) == "-":
        yield sys.stdout
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        yield handle
