"""Chain verification: walk archives and the live stream, report every break.

The walk starts at the genesis hash when an archive directory is given (its files hold a
prefix of the chain, oldest first, and must reach the live stream) and otherwise at the anchor
Redis keeps after archiving (``archived_seq``/``archived_hash`` in the head). Nothing in Redis is
trusted for where the chain starts: the anchor must carry a signature by a listed audit key, and
the chain itself must hold the ``audit.archived`` event that recorded it, so setting the anchor
to the head and deleting the stream (erasure) fails. Each event must carry the next seq and a
hash equal to ``HMAC(chain_key, previous hash || payload)``, with the key of its epoch: an
``audit.key_rotated`` event names the kid of the key that chains every later event. A problem is
reported once and the walk resynchronises on the stored hash, so one tampered event does not
flag the rest of the log.

What is caught, by ``ChainProblem.kind``:

- ``edited``     an event's hash does not match its content and the previous hash
- ``gap``        seq numbers are missing (deleted events)
- ``reordered``  a seq shows up after a later one (or twice)
- ``corrupt``    an entry or archive line that is not a readable event
- ``truncated``  events removed from the end (against the head record or a checkpoint)
- ``head``       the head record disagrees with the last event
- ``anchor``     the hash at a checkpointed seq changed since an earlier verification, or the
                 archive anchor is not signed by a listed key
- ``archive``    an unreadable archive file, Redis archived more than the files hold, or no
                 ``audit.archived`` event in the chain records the anchor
- ``key``        events chained with a key that is not listed in ``ROTATOR_AUDIT_KEY``

Checkpoints (``expect``) are (seq, hash) pairs recorded by earlier verifications and kept
outside Redis, signed (``rotator.audit.checkpoint``): without them, someone with write access
could drop the tail and rewrite the head.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rotator.audit.archive import ARCHIVED_EVENT, anchor_record, archive_files, parse_archive_line
from rotator.audit.events import chain_hash
from rotator.audit.keyring import ROTATED_EVENT, AuditKeyring
from rotator.store.audit import GENESIS_HASH, AuditStoreSync, Head, RawEntry


@dataclass(frozen=True)
class ChainProblem:
    kind: str  # edited | gap | reordered | corrupt | truncated | head | anchor | archive | key
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


_SEQ_KEY = b'"seq":'


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class _Link:
    """``chain_hash`` under one key, the same HMAC-SHA256 (RFC 2104) with the padded key's
    hash states computed once: per event two state copies instead of a keyed set-up, about
    twice as fast as ``hmac.digest`` (measured: 0.75 against 1.6 us per 400-byte event)."""

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # HMAC hashes keys longer than the block first
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def __call__(self, prev_hash: str, payload: bytes) -> str:
        inner = self._inner.copy()
        inner.update(prev_hash.encode())
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


_ROTATED = f'"event":"{ROTATED_EVENT}"'.encode()
_ARCHIVED = f'"event":"{ARCHIVED_EVENT}"'.encode()
_ARCHIVED_DETAIL = re.compile(r"seq (\d+)\.\.(\d+) anchor ([0-9a-f]{64})")


class _ChainWalker:
    """Checks events one by one against the chain; reports problems and resynchronises."""

    MAX_PROBLEMS = 100

    def __init__(
        self,
        keyring: AuditKeyring,
        kid: str,
        result: VerifyResult,
        start_seq: int,
        start_hash: str,
    ) -> None:
        self.keyring = keyring
        self.kid = kid
        self.key = keyring.chain(kid)
        self.link = _Link(self.key) if self.key is not None else None
        self.result = result
        self.last_seq = start_seq
        self.last_hash = start_hash
        self.gaps: list[tuple[int, int, ChainProblem]] = []  # missing range, its problem
        self.expect: dict[int, str] = {}
        self.expect_seen: set[int] = set()
        self.archived: set[tuple[int, str]] = set()  # anchors recorded by audit.archived events
        self.unknown_key_reported = False

    def problem(self, problem: ChainProblem) -> None:
        self.result.problem_count += 1
        if len(self.result.problems) < self.MAX_PROBLEMS:
            self.result.problems.append(problem)

    def feed_page(self, entries: Iterable[RawEntry], where: str) -> None:
        """``feed`` each entry. An intact event (the next seq, no checkpoint at it, a link
        that verifies) takes the fast path: no JSON parse, the HMAC from precomputed key
        states. A payload whose link verifies was written by the key holder as canonical JSON,
        where the last ``"seq":`` is the top-level field (keys sorted, values scalars, quotes
        escaped inside strings), so reading the digits after it gives what ``entry.seq()``
        would. Anything else goes through ``feed``, unchanged: every problem is found there."""
        for entry in entries:
            payload = entry.payload
            expected = self.last_seq + 1
            link = self.link
            at = payload.rfind(_SEQ_KEY)
            if (
                link is not None
                and at >= 0
                and payload.startswith(b"%d," % expected, at + 6)
                and expected not in self.expect
                and self.result.first_seq is not None
                and hmac.compare_digest(link(self.last_hash, payload), entry.hash)
            ):
                self.last_seq, self.last_hash = expected, entry.hash
                if _ROTATED in payload or _ARCHIVED in payload:
                    self._chain_event(payload)
            else:
                self.feed(entry, where)

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
        if seq in self.expect:
            self.expect_seen.add(seq)
            if digest != self.expect[seq]:
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
        elif self.key is None:
            self._unknown_key(seq, stream_id, where)
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
        if _ROTATED in payload or _ARCHIVED in payload:
            self._chain_event(payload)

    def _chain_event(self, payload: bytes) -> None:
        """Follow a key rotation; remember an archive anchor recorded in the chain."""
        try:
            data = json.loads(payload)
        except ValueError:
            return
        if data.get("event") == ROTATED_EVENT and isinstance(data.get("fingerprint"), str):
            self.kid = data["fingerprint"]
            self.key = self.keyring.chain(self.kid)
            self.link = _Link(self.key) if self.key is not None else None
            self.unknown_key_reported = False
        elif data.get("event") == ARCHIVED_EVENT:
            match = _ARCHIVED_DETAIL.search(str(data.get("detail", "")))
            if match:
                self.archived.add((int(match.group(2)), match.group(3)))

    def _unknown_key(self, seq: int, stream_id: str, where: str) -> None:
        if self.unknown_key_reported:
            return
        self.unknown_key_reported = True
        self.problem(
            ChainProblem(
                "key",
                f"events from seq {seq} are chained with audit key {self.kid[:12]}, which is "
                "not listed in ROTATOR_AUDIT_KEY (keep retired keys listed after the new one)",
                seq,
                stream_id,
                where,
            )
        )

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


def verify_chain(
    store: AuditStoreSync,
    keyring: AuditKeyring,
    *,
    archive_dir: Path | None = None,
    expect: Sequence[tuple[int, str]] = (),
    page: int = 1000,
) -> VerifyResult:
    """Walk the chain (archives in ``archive_dir`` first, then the live stream), reading the
    stream ``page`` entries at a time. ``expect``: see the module docstring."""
    started = time.perf_counter()
    result = VerifyResult()
    head = store.head()
    result.head_seq = head.seq
    check = store.key_check()
    # Which key chained the first event: recorded by the first writer (a wrong record cannot
    # make a forged chain verify, only name a key), else the oldest listed.
    genesis_kid = check.get("audit:1") or keyring.oldest_kid
    from_anchor = archive_dir is None and head.archived_seq > 0
    if from_anchor:
        walker = _ChainWalker(
            keyring, head.archived_kid, result, head.archived_seq, head.archived_hash
        )
        result.anchor_seq = head.archived_seq
        _check_anchor_signature(walker, head)
    else:
        walker = _ChainWalker(keyring, genesis_kid, result, 0, GENESIS_HASH)
    walker.expect = dict(expect)
    if from_anchor:
        _check_archived_expect(walker, head)
    files = archive_files(archive_dir) if archive_dir is not None else []
    for first, _last, path in files:
        _walk_archive(walker, first, path)
    archived_upto = walker.last_seq if archive_dir is not None else None
    _walk_live(store, walker, archived_upto, page)
    if archive_dir is not None and head.archived_seq > (archived_upto or 0):
        walker.problem(
            ChainProblem(
                "archive",
                f"Redis says events up to seq {head.archived_seq} were archived, but the "
                f"archive directory ends at seq {archived_upto}",
                head.archived_seq,
            )
        )
    if from_anchor and (head.archived_seq, head.archived_hash) not in walker.archived:
        walker.problem(
            ChainProblem(
                "archive",
                f"no audit.archived event in the chain records the anchor at seq "
                f"{head.archived_seq}: events before the live stream may have been erased "
                "(verify with --archive-dir)",
                head.archived_seq,
            )
        )
    _check_head(walker, head)
    for seq in sorted(set(walker.expect) - walker.expect_seen):
        walker.problem(
            ChainProblem(
                "truncated",
                f"seq {seq} (seen by an earlier verification) is no longer in the "
                f"log, which now ends at seq {walker.last_seq}",
                seq,
            )
        )
    result.last_seq, result.last_hash = walker.last_seq, walker.last_hash
    result.seconds = time.perf_counter() - started
    return result


def _check_anchor_signature(walker: _ChainWalker, head: Head) -> None:
    signer, _, mac = head.archived_sig.partition(":")
    record = anchor_record(head.archived_seq, head.archived_hash, head.archived_kid)
    if not walker.keyring.signed("anchor", record, signer, mac):
        walker.problem(
            ChainProblem(
                "anchor",
                f"the archive anchor at seq {head.archived_seq} is not signed by a listed audit "
                "key: it was written or moved without the key (verify with --archive-dir)",
                head.archived_seq,
            )
        )


def _check_archived_expect(walker: _ChainWalker, head: Head) -> None:
    # Checkpointed events archived since: only the anchor itself can be checked here (the
    # archive is checked with ``archive_dir``).
    for seq, digest in list(walker.expect.items()):
        if seq > head.archived_seq:
            continue
        walker.expect_seen.add(seq)
        if seq == head.archived_seq and digest != head.archived_hash:
            walker.problem(
                ChainProblem(
                    "anchor",
                    f"the archive anchor at seq {seq} no longer carries the hash "
                    "recorded by an earlier verification",
                    seq,
                )
            )


def _walk_archive(walker: _ChainWalker, first: int, path: Path) -> None:
    result = walker.result
    result.archive_files += 1
    before = result.checked
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    entry = parse_archive_line(line)
                except ValueError:
                    walker.problem(
                        ChainProblem("corrupt", f"line {number} is not JSON", None, None, path.name)
                    )
                    continue
                walker.feed_page((entry,), path.name)
                result.checked += 1
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        walker.problem(
            ChainProblem("archive", f"cannot read archive: {exc}", first, None, path.name)
        )
    result.archived_checked += result.checked - before


def _walk_live(
    store: AuditStoreSync, walker: _ChainWalker, archived_upto: int | None, page: int
) -> None:
    """Feed the live stream; with ``archived_upto``, skip events the archive files held."""
    result = walker.result
    for batch in store.pages(page):
        if archived_upto is None:
            walker.feed_page(batch, "live")
            result.checked += len(batch)
            continue
        for entry in batch:
            seq = entry.seq()
            if 0 <= seq <= archived_upto:
                continue  # archived and not yet removed (an interrupted archive run)
            walker.feed(entry, "live", seq)
            result.checked += 1


def _check_head(walker: _ChainWalker, head: Head) -> None:
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
