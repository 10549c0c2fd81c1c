"""Signed checkpoints: a verified head (seq, hash, time) kept outside Redis.

Like a CloudTrail digest file or an RFC 6962 signed tree head: ``rotator audit checkpoint``
verifies the chain and appends one JSON line ``{"seq", "hash", "time", "kid", "mac"}`` to a file
(ideally on append-only or off-host storage). ``rotator audit verify --checkpoint FILE`` checks
every line's signature and that the chain still holds each (seq, hash): nothing before a
checkpoint can be rewritten, dropped or erased without verify failing. A line that is not
signed by a listed audit key fails verification itself (an edited checkpoint proves nothing).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from rotator.audit.keyring import AuditKeyring
from rotator.errors import CheckpointError

CHECKPOINT_LABEL = "checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    time: float

    def record(self) -> dict[str, object]:
        return {"seq": self.seq, "hash": self.hash, "time": self.time}


def signed_line(keyring: AuditKeyring, seq: int, digest: str, at: float | None = None) -> str:
    point = Checkpoint(seq, digest, time.time() if at is None else at)
    record = point.record()
    return json.dumps({**record, **keyring.sign(CHECKPOINT_LABEL, record)}, sort_keys=True)


def append_checkpoint(path: Path, line: str) -> None:
    """Append one line and fsync it (mode 0600 when the file is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_checkpoint(path: Path, line: str) -> None:
    """Replace the file with one line (the automatic checkpoint ``verify`` keeps)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(line + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def read_checkpoints(path: Path, keyring: AuditKeyring) -> list[Checkpoint]:
    """Every checkpoint in the file, oldest first; ``CheckpointError`` naming the first line
    that is unreadable or not signed by a listed audit key. A missing file is no checkpoints."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror or exc}") from None
    points = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            point = Checkpoint(int(data["seq"]), str(data["hash"]), float(data["time"]))
            kid, mac = str(data["kid"]), str(data["mac"])
        except (ValueError, KeyError, TypeError):
            raise CheckpointError(f"{path}:{number}: not a signed checkpoint") from None
        if not keyring.signed(CHECKPOINT_LABEL, point.record(), kid, mac):
            raise CheckpointError(
                f"{path}:{number}: checkpoint signature does not verify with ROTATOR_AUDIT_KEY "
                "(edited, or signed with a key no longer listed)"
            )
        points.append(point)
    return points
