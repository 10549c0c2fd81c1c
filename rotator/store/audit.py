"""Redis side of the audit log: the Lua scripts and every audit key operation.

The scripts live in ``rotator/store/lua/audit_*.lua``, each with a KEYS/ARGV header.

Layout (see ``rotator.store.keys``)::

    {p}audit               stream  one entry per event: ``event`` = canonical JSON (with ``seq``),
                                   ``hash`` = HMAC chain value (hex)
    {p}audit:head          hash    seq, hash, id of the newest event; archived_seq/archived_hash
                                   (the chain anchor after archiving); max_lag/max_lead (seconds
                                   between an event's own time and the time Redis stored it)
    {p}audit:target:{name} zset    stream id -> seq, one per event naming the target
    {p}audit:job:{job_id}  list    stream ids of one job's events, in chain order
    {p}keys:check          hash    audit_kid: the key the chain is written with (the append
                                   script refuses any other), audit_epoch, audit:{n}

Only the append script writes events, so stream order, ``seq`` order and chain order are the
same. The script refuses a batch computed against a head that is no longer current (another
process appended first): the caller re-reads the head, recomputes the HMACs and retries. The
chain key never leaves Python; Redis only compares and stores hex strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import redis
import redis.asyncio as aioredis

from rotator.errors import AuditKeyMismatch
from rotator.store import scripts
from rotator.store.keys import Keys

GENESIS_HASH = "0" * 64
MAX_STREAM_SEQ = 18446744073709551615  # largest sequence part of a stream id


_APPEND_LUA = scripts.load("audit_append")
_TRIM_LUA = scripts.load("audit_trim")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _raw(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def parse_id(stream_id: str) -> tuple[int, int]:
    ms, _, n = stream_id.partition("-")
    return int(ms), int(n or 0)


def id_after(stream_id: str) -> str:
    ms, n = parse_id(stream_id)
    return f"{ms + 1}-0" if n >= MAX_STREAM_SEQ else f"{ms}-{n + 1}"


def id_before(stream_id: str) -> str:
    ms, n = parse_id(stream_id)
    if n == 0:
        return f"{max(ms - 1, 0)}-{MAX_STREAM_SEQ}"
    return f"{ms}-{n - 1}"


class RawEntry(NamedTuple):
    """One stream entry as stored: the exact payload bytes the HMAC covers. (A named tuple:
    a million of them are made per verify or export, at a third of a dataclass's cost.)"""

    id: str
    payload: bytes
    hash: str

    def seq(self) -> int:
        """The event's sequence number, or -1 when the payload is not a readable event."""
        try:
            value = json.loads(self.payload).get("seq")
        except (ValueError, AttributeError):
            return -1
        return value if isinstance(value, int) else -1


def _entry(item: Sequence[Any]) -> RawEntry:
    stream_id, fields = item[0], item[1]
    payload, digest = fields.get(b"event"), fields.get(b"hash")
    if type(payload) is bytes and type(digest) is bytes and type(stream_id) is bytes:
        return RawEntry(stream_id.decode(), payload, digest.decode())  # the usual case
    payload = b""
    digest = ""
    for key, value in fields.items():
        name = _text(key)
        if name == "event":
            payload = _raw(value)
        elif name == "hash":
            digest = _text(value)
    return RawEntry(_text(stream_id), payload, digest)


def _unparsed(response: Any, **options: Any) -> Any:
    return response


def _raw_entry(item: Sequence[Any]) -> RawEntry:
    """A stream entry from an unparsed XRANGE reply: ``[id, [name, value, ...]]``."""
    fields = item[1]
    if (
        type(fields) is list
        and len(fields) == 4
        and fields[0] == b"event"
        and fields[2] == b"hash"
        and type(item[0]) is bytes
        and type(fields[3]) is bytes
    ):
        return RawEntry(item[0].decode(), fields[1], fields[3].decode())  # the usual shape
    if isinstance(fields, dict):  # RESP3
        return _entry((item[0], fields))
    return _entry((item[0], dict(zip(fields[::2], fields[1::2], strict=False))))


@dataclass(frozen=True)
class Head:
    seq: int = 0
    hash: str = GENESIS_HASH
    id: str | None = None
    archived_seq: int = 0
    archived_hash: str = GENESIS_HASH
    archived_kid: str = ""  # the chain key in force at the anchor
    archived_sig: str = ""  # "{signer kid}:{mac}" over seq, hash and kid
    max_lag: float = 0.0
    max_lead: float = 0.0
    exists: bool = False


def _head(raw: dict[Any, Any]) -> Head:
    values = {_text(k): _text(v) for k, v in raw.items()}
    if not values:
        return Head()

    def number(name: str) -> float:
        try:
            return float(values.get(name, "0"))
        except ValueError:
            return 0.0

    return Head(
        seq=int(number("seq")),
        hash=values.get("hash", GENESIS_HASH),
        id=values.get("id"),
        archived_seq=int(number("archived_seq")),
        archived_hash=values.get("archived_hash", GENESIS_HASH),
        archived_kid=values.get("archived_kid", ""),
        archived_sig=values.get("archived_sig", ""),
        max_lag=number("max_lag"),
        max_lead=number("max_lead"),
        exists="seq" in values,
    )


@dataclass(frozen=True)
class PreparedEvent:
    """An event with its chain position, ready to append."""

    seq: int
    hash: str
    payload: bytes
    time: float
    target: str | None
    job_id: str | None


@dataclass(frozen=True)
class AppendResult:
    ok: bool
    ids: list[str]
    head_seq: int = 0
    head_hash: str = GENESIS_HASH


def _append_args(
    keys: Keys,
    expected_seq: int,
    expected_hash: str,
    events: Sequence[PreparedEvent],
    kid: str,
    next_kid: str,
) -> tuple[list[str], list[Any]]:
    key_list = [keys.audit, keys.audit_head, keys.key_check]
    positions: dict[str, int] = {}

    def position(key: str) -> int:
        if key not in positions:
            key_list.append(key)
            positions[key] = len(key_list)  # Lua is 1-based
        return positions[key]

    times = [event.time for event in events]
    args: list[Any] = [str(expected_seq), expected_hash, GENESIS_HASH, min(times), max(times)]
    args.extend((kid, next_kid))
    for offset, event in enumerate(events, 1):
        if event.seq != expected_seq + offset:
            raise ValueError("a batch must continue the head with consecutive seq numbers")
        target_index = position(keys.audit_target(event.target)) if event.target else 0
        job_index = position(keys.audit_job(event.job_id)) if event.job_id else 0
        args.extend((event.hash, event.payload, target_index, job_index))
    return key_list, args


def _append_result(reply: Any) -> AppendResult:
    if int(reply[0]) == 1:
        return AppendResult(True, [_text(i) for i in reply[1]])
    return AppendResult(False, [], int(_text(reply[1])), _text(reply[2]))


class AuditStore:
    """Async audit operations for the writer (``rotator.audit.AuditLog``)."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._append = client.register_script(_APPEND_LUA)

    async def key_check(self) -> dict[str, str]:
        raw = await self._redis.hgetall(self._keys.key_check)
        return {_text(k): _text(v) for k, v in raw.items()}

    async def head(self) -> Head:
        return _head(await self._redis.hgetall(self._keys.audit_head))

    async def append(
        self,
        expected_seq: int,
        expected_hash: str,
        events: Sequence[PreparedEvent],
        *,
        kid: str,
        next_kid: str = "",
    ) -> AppendResult:
        """Append a batch chained with the key ``kid``; ``next_kid``: the batch ends with a key
        rotation and later events are chained with that key. ``AuditKeyMismatch`` when the
        store's current audit key is another one."""
        key_list, args = _append_args(
            self._keys, expected_seq, expected_hash, events, kid, next_kid
        )
        try:
            reply = await self._append(keys=key_list, args=args)
        except redis.ResponseError as exc:
            if "ROTATOR_AUDIT_KEY_MISMATCH" in str(exc):
                epoch = str(exc).rpartition(" ")[2]
                raise AuditKeyMismatch(epoch) from None
            raise
        return _append_result(reply)

    async def find_seq(self, seq: int) -> RawEntry | None:
        """The entry carrying ``seq``: a binary search over stream ids (seq grows with them)."""
        stream = self._keys.audit
        last = await self._redis.xrevrange(stream, "+", "-", count=1)
        first = await self._redis.xrange(stream, "-", "+", count=1)
        if not last or not first:
            return None
        first_entry, last_entry = _entry(first[0]), _entry(last[0])
        if seq > last_entry.seq() or seq < first_entry.seq():
            return None
        lo, hi = parse_id(first_entry.id)[0], parse_id(last_entry.id)[0]
        base = first_entry
        while lo < hi:  # invariant: the first entry at or after ms `lo` has seq <= target
            mid = (lo + hi + 1) // 2
            found = await self._redis.xrange(stream, f"{mid}-0", "+", count=1)
            probe = _entry(found[0]) if found else None
            if probe is not None and 0 <= probe.seq() <= seq:
                lo, base = mid, probe
            else:
                hi = mid - 1
        span = max(1, seq - max(base.seq(), 0) + 1)
        items = await self._redis.xrange(stream, base.id, "+", count=min(span, 10_000))
        for item in items or []:
            entry = _entry(item)
            if entry.seq() == seq:
                return entry
        return None


class AuditStoreSync:
    """Synchronous audit reads (and archive removal) for the CLI and reports."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._trim = client.register_script(_TRIM_LUA)
        self._append = client.register_script(_APPEND_LUA)
        # The same connections, with XRANGE replies left as the server's nested lists.
        self._raw = redis.Redis(connection_pool=client.connection_pool)
        self._raw.set_response_callback("XRANGE", _unparsed)

    def append(
        self, expected_seq: int, expected_hash: str, events: Sequence[PreparedEvent], *, kid: str
    ) -> AppendResult:
        """``AuditStore.append`` for synchronous writers (the archiver's own event)."""
        key_list, args = _append_args(self.keys, expected_seq, expected_hash, events, kid, "")
        try:
            reply = self._append(keys=key_list, args=args)
        except redis.ResponseError as exc:
            if "ROTATOR_AUDIT_KEY_MISMATCH" in str(exc):
                raise AuditKeyMismatch(str(exc).rpartition(" ")[2]) from None
            raise
        return _append_result(reply)

    def head(self) -> Head:
        return _head(self.redis.hgetall(self.keys.audit_head))

    def key_check(self) -> dict[str, str]:
        """The key check hash (``rotator.keycheck``): which audit key is in force since when."""
        return {_text(k): _text(v) for k, v in self.redis.hgetall(self.keys.key_check).items()}

    def length(self) -> int:
        return int(self.redis.xlen(self.keys.audit))

    def range(self, start: str, end: str, count: int, *, reverse: bool = False) -> list[RawEntry]:
        """Entries from ``start`` to ``end`` inclusive (``reverse``: from ``start`` downwards)."""
        if reverse:
            items = self.redis.xrevrange(self.keys.audit, start, end, count=count)
        else:
            items = self.redis.xrange(self.keys.audit, start, end, count=count)
        return [_entry(item) for item in items or []]

    def pages(self, count: int = 10_000) -> Iterator[list[RawEntry]]:
        """The whole stream, oldest first, ``count`` entries a page; the next page is read on
        a helper thread while the caller works on the current one (Redis serialising a page
        overlaps with the caller's hashing)."""
        with ThreadPoolExecutor(1, thread_name_prefix="rotator-audit-read") as pool:
            pending = pool.submit(self._raw_page, "-", count)
            while True:
                batch = pending.result()
                if len(batch) == count:
                    pending = pool.submit(self._raw_page, id_after(batch[-1].id), count)
                yield batch
                if len(batch) < count:
                    return

    def _raw_page(self, start: str, count: int) -> list[RawEntry]:
        """``range(start, "+", count)`` read as the server's reply, without redis-py's
        per-entry field dicts (a sixth of a million-event verify)."""
        reply = self._raw.execute_command(  # type: ignore[no-untyped-call]
            "XRANGE", self.keys.audit, start, "+", "COUNT", count
        )
        return [_raw_entry(item) for item in reply or []]

    def by_ids(self, ids: Sequence[str]) -> list[RawEntry]:
        """Entries by id, in the given order; ids no longer in the stream are skipped."""
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for stream_id in ids:
            pipe.xrange(self.keys.audit, stream_id, stream_id, count=1)
        return [_entry(found[0]) for found in pipe.execute() if found]

    def target_ids(
        self, name: str, low: str, high: str, count: int, *, reverse: bool = False
    ) -> list[tuple[str, int]]:
        """(stream id, seq) pairs of a target's events with ``low <= seq <= high`` (zset bounds,
        ``(`` for exclusive), ascending or, with ``reverse``, descending."""
        key = self.keys.audit_target(name)
        if reverse:
            items = self.redis.zrevrangebyscore(key, high, low, start=0, num=count, withscores=True)
        else:
            items = self.redis.zrangebyscore(key, low, high, start=0, num=count, withscores=True)
        pairs = cast(list[tuple[Any, float]], items)
        return [(_text(member), int(score)) for member, score in pairs]

    def job_ids(self, job_id: str) -> list[str]:
        return [_text(v) for v in self.redis.lrange(self.keys.audit_job(job_id), 0, -1)]

    def first_at_or_after(self, ms: int) -> RawEntry | None:
        found = self.range(f"{max(ms, 0)}-0", "+", 1)
        return found[0] if found else None

    def last_at_or_before(self, ms: int) -> RawEntry | None:
        found = self.range(f"{max(ms, 0)}-{MAX_STREAM_SEQ}", "-", 1, reverse=True)
        return found[0] if found else None

    def remove_archived(
        self,
        last_id: str,
        last_seq: int,
        last_hash: str,
        targets: Iterable[str],
        jobs: Iterable[str],
        *,
        anchor_kid: str,
        anchor_sig: str,
        chunk: int = 500,
    ) -> int:
        """Drop index entries up to ``last_seq``/``last_id``, then the stream entries up to
        ``last_id``, and move the chain anchor (signed: ``anchor_kid``, ``anchor_sig``) to the
        last archived event. Idempotent."""
        target_keys = [self.keys.audit_target(t) for t in sorted(set(targets))]
        job_keys = [self.keys.audit_job(j) for j in sorted(set(jobs))]
        base = [self.keys.audit, self.keys.audit_head]
        common = [last_id, str(last_seq), last_hash]
        for i in range(0, len(target_keys), chunk):
            part = target_keys[i : i + chunk]
            self._trim(keys=base + part, args=[*common, len(part), "0", ""])
        for i in range(0, len(job_keys), chunk):
            part = job_keys[i : i + chunk]
            self._trim(keys=base + part, args=[*common, 0, "0", ""])
        removed = self._trim(
            keys=base, args=[*common, 0, "1", id_after(last_id), anchor_kid, anchor_sig]
        )
        return int(removed)
