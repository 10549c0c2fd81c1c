"""The audit writer (``AuditLog``): group-committed, hash-chained, fail-closed.

Concurrent ``emit`` calls in one process are group-committed: one Lua script call appends a
whole batch (events, head, per-target and per-job indexes) atomically, and refuses it when
another process moved the head first (then the batch is re-chained and retried). ``emit``
returns once its event is in Redis. When Redis cannot be written the batch goes to the local
spool (``rotator.audit.spool``) and ``emit`` raises ``AuditUnavailable``: the engine makes no
provider call. Spooled events are replayed ahead of the next batch, so the chain keeps the
order in which events were emitted.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from rotator.audit.events import AuditEvent, StoredEvent, canonical_record, chain_hash
from rotator.audit.keyring import ROTATED_EVENT, AuditKeyring
from rotator.audit.owed import forgery_event, open_owed, seal_owed
from rotator.audit.spool import SPOOL_DIRNAME, Attempt, BeforeSend, Spool
from rotator.errors import AuditKeyMismatch, AuditUnavailable
from rotator.store.audit import AuditStore, PreparedEvent
from rotator.store.keys import Keys

if TYPE_CHECKING:
    from rotator.config import Settings

log = structlog.get_logger(__name__)


@dataclass
class AuditStats:
    events: int = 0
    batches: int = 0
    conflicts: int = 0
    spooled: int = 0
    replayed: int = 0


class _StoreFailed(Exception):
    def __init__(self, reason: str, attempt: Attempt | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempt = attempt


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
        self.keyring = AuditKeyring.parse(audit_key)
        self._jsonl_path = jsonl_path
        self._stdout = stdout
        self._spool = Spool(spool_dir) if spool_dir is not None else None
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
        if self._spool is None or not self._spool.pending():
            return 0
        async with self._lock:
            return await self._replay_locked()

    def seal_owed(self, event: AuditEvent) -> str:
        """The record a job hash keeps while its terminal event is owed (signed)."""
        return seal_owed(self.keyring, event)

    async def open_owed(self, job_id: str, raw: str) -> AuditEvent | None:
        """The owed event to chain, or None: a record this deployment did not sign is refused,
        reported (an ``audit.forgery_refused`` event and an error log) and never chained."""
        event = open_owed(self.keyring, job_id, raw)
        if event is None:
            log.error("forged owed audit event refused; not chained", job_id=job_id)
            await self.emit(forgery_event(job_id))
        return event

    async def rotate_key(self, actor: str) -> StoredEvent:
        """Move the chain to the newest listed key: an ``audit.key_rotated`` event chained with
        the store's current key names the new key's kid; later events use the new key."""
        check = await self._store.key_check()
        current = check.get("audit_kid", "")
        if current == self.keyring.kid:
            raise ValueError("the newest ROTATOR_AUDIT_KEY is already the key in use")
        if self.keyring.chain(current) is None:
            raise ValueError(
                "the audit key in use is not listed in ROTATOR_AUDIT_KEY (list the new key "
                "first and keep the current one after it)"
            )
        epoch = int(check.get("audit_epoch", "1") or 1) + 1
        event = AuditEvent(
            ROTATED_EVENT,
            actor=actor,
            fingerprint=self.keyring.kid,
            detail=f"audit key epoch {epoch}",
        )
        async with self._lock:
            self._head = None
            try:
                (stored,) = await self._append([event], kid=current, next_kid=self.keyring.kid)
            except _StoreFailed as exc:
                raise AuditUnavailable(f"audit sink unavailable ({exc.reason})") from None
        return stored

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
                await self._spool_batch(events, None, str(exc))
        try:
            stored = await self._append(events)
        except _StoreFailed as exc:
            await self._spool_batch(events, exc.attempt, exc.reason)
        except AuditKeyMismatch as exc:
            # Not spooled: a link chained with the wrong key could never verify.
            log.error("audit key mismatch: events refused", epoch=str(exc))
            raise AuditUnavailable(_mismatch(exc)) from None
        await self._sinks(stored)
        return stored

    async def _append(
        self,
        events: Sequence[AuditEvent],
        before_send: BeforeSend | None = None,
        *,
        kid: str | None = None,
        next_kid: str = "",
    ) -> list[StoredEvent]:
        kid = kid or self.keyring.kid
        key = self.keyring.chain(kid)
        assert key is not None
        attempt: Attempt | None = None
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
                prepared = self._prepare(key, events, base_seq, base_hash)
                if before_send is not None:
                    await before_send(prepared[0].seq, prepared[0].hash)
                attempt = (prepared[0].seq, prepared[0].hash)
                result = await self._store.append(
                    base_seq, base_hash, prepared, kid=kid, next_kid=next_kid
                )
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
        self, key: bytes, events: Sequence[AuditEvent], base_seq: int, base_hash: str
    ) -> list[PreparedEvent]:
        prepared = []
        seq, prev = base_seq, base_hash
        for event in events:
            seq += 1
            payload = canonical_record(event, seq)
            prev = chain_hash(key, prev, payload)
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

    async def _spool_batch(
        self, events: list[AuditEvent], attempt: Attempt | None, reason: str
    ) -> NoReturn:
        """Write the batch to the spool and raise AuditUnavailable (always)."""
        message = f"audit sink unavailable ({reason})"
        if self._spool is None:
            raise AuditUnavailable(message + "; no spool configured, events not recorded")
        try:
            path = await self._spool.write(events, attempt)
        except OSError as exc:
            log.error("audit spool write failed", error=str(exc), events=len(events))
            raise AuditUnavailable(message + f"; spool write failed too: {exc}") from None
        self.stats.spooled += len(events)
        self._spool_check = True
        log.warning("audit events spooled", path=str(path), events=len(events), reason=reason)
        raise AuditUnavailable(message + f"; {len(events)} event(s) spooled to {path.name}")

    async def _replay_locked(self) -> int:
        assert self._spool is not None
        if not self._spool.pending():
            self._spool_check = False
            return 0
        replayed = await self._spool.replay(self._append_spooled, self._applied, self._replayed)
        self._spool_check = False
        if replayed:
            log.info("audit spool replayed", events=replayed)
        return replayed

    async def _append_spooled(
        self, events: Sequence[AuditEvent], before_send: BeforeSend
    ) -> list[StoredEvent]:
        try:
            return await self._append(events, before_send)
        except _StoreFailed as exc:
            raise AuditUnavailable(
                f"audit sink unavailable ({exc.reason}); spool replay stopped"
            ) from None
        except AuditKeyMismatch as exc:
            raise AuditUnavailable(_mismatch(exc) + "; spool replay stopped") from None

    async def _replayed(self, stored: list[StoredEvent]) -> None:
        self.stats.replayed += len(stored)
        await self._sinks(stored)

    async def _applied(self, attempt: Attempt) -> bool:
        try:
            found = await self._store.find_seq(attempt[0])
        except (RedisError, OSError) as exc:
            raise AuditUnavailable(f"audit sink unavailable ({type(exc).__name__})") from None
        return found is not None and found.hash == attempt[1]


def _mismatch(exc: AuditKeyMismatch) -> str:
    return (
        f"ROTATOR_AUDIT_KEY does not match the audit key in use (epoch {exc}): events refused, "
        "nothing chained"
    )


def _append_text(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
