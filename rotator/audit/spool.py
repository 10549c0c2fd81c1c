"""The fail-closed local spool: events Redis could not take, replayed in order once it can.

``<state_dir>/audit-spool/`` holds one JSONL segment per failed batch (a header line, then the
events, unchained), written to a temporary name, fsynced and renamed into place. A segment is
replayed (``Spool.replay``, in name = time order, under an exclusive ``flock``) once Redis is
back: its events get their seq and hash then. Before each replay attempt the chain position it
will take is written into the segment header, so a replay interrupted after Redis applied it
(a timeout, a crash) is recognised and never appended twice.

The file work is blocking and runs in threads; the writer (``rotator.audit.writer``) supplies
the chain append, the "already applied?" check and what to do with replayed events.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import structlog

from rotator.audit.events import AuditEvent, StoredEvent

log = structlog.get_logger(__name__)

SPOOL_DIRNAME = "audit-spool"

# The chain position (seq, hash) a segment's first event was sent to Redis with.
Attempt = tuple[int, str]
BeforeSend = Callable[[int, str], Awaitable[None]]


class Append(Protocol):
    """Chain and append events, calling ``before_send`` with the first position before each try;
    raise ``AuditUnavailable`` when Redis cannot take them."""

    async def __call__(
        self, events: Sequence[AuditEvent], before_send: BeforeSend
    ) -> list[StoredEvent]: ...


_SEGMENT = re.compile(r"^\d{20}-\d+-[0-9a-f]{8}\.jsonl$")


@dataclass
class _Segment:
    path: Path
    attempt: Attempt | None
    events: list[AuditEvent]


class Spool:
    """One spool directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def pending(self) -> bool:
        return bool(_list_segments(self.directory))

    async def write(self, events: Sequence[AuditEvent], attempt: Attempt | None) -> Path:
        """Store a batch durably as a new segment (``attempt``: where it may already sit)."""
        return await asyncio.to_thread(_write_segment, self.directory, events, attempt)

    async def replay(
        self,
        append: Append,
        applied: Callable[[Attempt], Awaitable[bool]],
        delivered: Callable[[list[StoredEvent]], Awaitable[None]],
    ) -> int:
        """Append every segment, oldest first, and remove it; return how many events. Stops at
        the first segment ``append`` cannot write (its ``AuditUnavailable`` propagates)."""
        handle = await asyncio.to_thread(_lock_spool, self.directory)
        replayed = 0
        try:
            for path in _list_segments(self.directory):
                segment = await asyncio.to_thread(_read_segment, path)
                if segment is None:
                    continue
                if segment.attempt is not None and await applied(segment.attempt):
                    await asyncio.to_thread(_unlink, path)
                    continue
                if not segment.events:
                    await asyncio.to_thread(_unlink, path)
                    continue

                async def record(seq: int, digest: str, seg: _Segment = segment) -> None:
                    await asyncio.to_thread(_rewrite_segment, seg.path, seg.events, (seq, digest))

                stored = await append(segment.events, record)
                await asyncio.to_thread(_unlink, path)
                replayed += len(stored)
                await delivered(stored)
        finally:
            await asyncio.to_thread(handle.close)
        return replayed


# -- spool files (blocking helpers, run in threads) -------------------------------------------


def _list_segments(spool_dir: Path) -> list[Path]:
    try:
        names = os.listdir(spool_dir)
    except FileNotFoundError:
        return []
    return [spool_dir / n for n in sorted(names) if _SEGMENT.match(n)]


def _segment_text(events: Sequence[AuditEvent], attempt: Attempt | None) -> str:
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
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` survive a crash (archives use it too)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_segment(spool_dir: Path, events: Sequence[AuditEvent], attempt: Attempt | None) -> Path:
    spool_dir.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
    path = spool_dir / name
    _write_file_durably(path, _segment_text(events, attempt))
    return path


def _rewrite_segment(path: Path, events: Sequence[AuditEvent], attempt: Attempt | None) -> None:
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
