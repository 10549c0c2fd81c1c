"""A validated targets file shared through Redis: a process loads 100,000 targets without
parsing YAML, cross-checking or applying the URL policy again.

The file stays the source of truth. A snapshot is keyed by a digest of the file's bytes and of
everything else validation depends on (the URL policy settings, the credentials directory, the
known providers, the validating code and library versions, the audit key's id), so any edit,
setting change, upgrade or key rotation misses and the file is validated again. What is
stored is the parsed mapping of a file that validated, as JSON (zlib), so a hit is checked by
the same pydantic models (straight from the JSON) and every config error keeps its file and
field. Only mappings that JSON carries exactly are stored: a file with dates or non-text keys
anywhere is validated from the file each time.

A snapshot is authenticated: ``HMAC-SHA256(snapshot_key, digest || body)`` with
``snapshot_key = HKDF(newest audit key, "rotator config snapshot v1")``. Someone who can write
to Redis but does not hold the audit key cannot inject targets: a snapshot whose MAC fails is
refused (logged) and the file validated again, which then replaces it. File references
(``file:`` credentials, file secrets) are inspected on every load: they depend on the
filesystem, not on the file.

On a miss the file is validated in blocks of targets where its shape allows
(``rotator.config_blocks``): each block, and the rest of the file, is stored under the digest
of its own text and authenticated the same way with a key of its own (``HKDF(newest audit
key, "rotator config block v1")``), so after an edit of one target only its block is parsed
again; the snapshot of such a file is then its head and the digests of its blocks.

Redis unavailable is never an error here: the file is loaded as without a cache.

Keys: ``{p}config:snapshot:{digest}`` string, ``MAC (32 bytes) || zlib(JSON lines)``, TTL 7
days; ``{p}config:snapshot:{digest}:lock`` string, the process validating that file, TTL 60 s;
``{p}config:block:{digest}`` string, ``MAC || zlib(JSON)`` of a block or head, TTL 7 days.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.util
import json
import secrets
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import redis
import structlog
from pydantic import ValidationError

from rotator import safeyaml
from rotator.audit.keyring import AuditKeyring
from rotator.config import (
    Settings,
    TargetsConfig,
    TargetsFile,
    TargetSpecModel,
    file_reference_issues,
    sharing_parts,
    validate_file,
    validate_targets,
)
from rotator.config_blocks import TARGETS, BlockLoad, exactly_json, json_line, load_blocks
from rotator.crypto import derive_key
from rotator.errors import ConfigError
from rotator.store.keys import Keys

log = structlog.get_logger("rotator.config_snapshot")

SNAPSHOT_LABEL = "rotator config snapshot v1"
BLOCK_LABEL = "rotator config block v1"
SNAPSHOT_TTL = 7 * 24 * 3600
LOCK_TTL = 60  # seconds one process may take to validate a file the others wait for
_MAC_BYTES = 32


class SnapshotStore(Protocol):
    """Where snapshots live (Redis; a stand-in in tests)."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes | str, ex: int, nx: bool = False) -> object: ...

    def delete(self, *keys: str) -> object: ...

    def mget(self, keys: Sequence[str]) -> Sequence[bytes | None]: ...

    def pipeline(self, transaction: bool = True) -> Any: ...


@dataclass(frozen=True)
class LoadInfo:
    """How the last load went: ``hit`` (snapshot used), ``waited`` (used the snapshot another
    process was making), ``miss``, ``refused`` (MAC failed), ``unstorable`` (not exactly
    JSON), ``unavailable`` (Redis errors)."""

    digest: str
    outcome: str
    blocks: tuple[int, int] | None = None  # validated in blocks: (parsed, reused)


# The code that decides whether a file is valid: a snapshot made by other code is not used,
# even with the same version number (an editable install, a patched deployment).
_VALIDATING_MODULES = (
    "rotator.config",
    "rotator.config_blocks",
    "rotator.safeyaml",
    "rotator.urlpolicy",
    "rotator.filerefs",
    "rotator.timeparse",
    "rotator.sources.specs",
    "rotator.notify.model",
    "rotator.fields",
    "rotator.providers",
)


@functools.cache
def _code_digest() -> str:
    """sha256 over rotator's version, pydantic's and PyYAML's, and the source of the modules
    (and provider adapters: their host allow-lists) that decide validity."""
    digest = hashlib.sha256()
    for name in ("rotator", "pydantic", "pydantic-core", "PyYAML"):
        try:
            digest.update(f"{name}={metadata.version(name)};".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name}=?;".encode())
    files: list[Path] = []
    for module in _VALIDATING_MODULES:
        origin = importlib.util.find_spec(module)
        if origin is None or origin.origin is None:
            continue
        source = Path(origin.origin)
        files.extend(
            sorted(source.parent.glob("*.py")) if source.name == "__init__.py" else [source]
        )
    for source in files:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


class SnapshotCache:
    """Snapshots of validated targets files in Redis, keyed and authenticated as above."""

    def __init__(self, client: redis.Redis | SnapshotStore, keys: Keys, settings: Settings) -> None:
        self._client = client
        self._keys = keys
        self._settings = settings
        keyring = AuditKeyring.parse(settings.audit_key_bytes())
        self._key = derive_key(keyring.keys[0], SNAPSHOT_LABEL)
        self._block_key = derive_key(keyring.keys[0], BLOCK_LABEL)
        self._kid = keyring.kid  # in the digest: after a key rotation, a clean miss
        self.last: LoadInfo | None = None
        self.wait = LOCK_TTL  # how long a process waits for another's snapshot
        self.poll = 0.2
        self._token = secrets.token_hex(8)
        # Set by a Redis error during a load: the rest of that load (800 blocks) goes without
        # Redis instead of waiting out a socket timeout per block.
        self.unavailable = False

    def claim(self, digest: str) -> bool:
        """Whether this process is the one to validate these bytes (True when Redis cannot
        say: validating is always correct, only slower)."""
        try:
            return bool(
                self._client.set(
                    self._keys.config_snapshot_lock(digest), self._token, nx=True, ex=LOCK_TTL
                )
            )
        except redis.RedisError:
            return True

    def locked(self, digest: str) -> bool:
        try:
            return self._client.get(self._keys.config_snapshot_lock(digest)) is not None
        except redis.RedisError:
            return False

    def release(self, digest: str) -> None:
        """Drop the lock if this process holds it."""
        key = self._keys.config_snapshot_lock(digest)
        try:
            if self._client.get(key) == self._token.encode():
                self._client.delete(key)
        except redis.RedisError:
            pass

    def context(self, path: Path, known_providers: Sequence[str]) -> bytes:
        """Every input of validation besides the file's bytes."""
        settings = self._settings
        return json.dumps(
            [
                _code_digest(),
                self._kid,
                sorted(known_providers),
                settings.insecure_hosts,
                settings.allowed_hosts,
                str(settings.credentials_root(path)),
            ]
        ).encode()

    def digest(self, path: Path, data: bytes, known_providers: Sequence[str]) -> str:
        """sha256 over the file's bytes and every other input of validation."""
        context = self.context(path, known_providers)
        return hashlib.sha256(
            len(context).to_bytes(8, "big") + context + hashlib.sha256(data).digest()
        ).hexdigest()

    def block_digest(self, context: bytes, block: bytes, kind: bytes) -> str:
        """sha256 over a part of a file, what part it is (``block`` of targets, ``head``: the
        rest) and the context (``rotator.config_blocks``)."""
        return hashlib.sha256(
            len(context).to_bytes(8, "big") + context + kind + hashlib.sha256(block).digest()
        ).hexdigest()

    def get_blocks(self, digests: Sequence[str]) -> list[bytes | None]:
        """The authenticated (compressed) bodies of these blocks; None where absent, forged
        (logged) or Redis fails."""
        found: list[bytes | None] = []
        refused = 0
        if self.unavailable:
            return [None] * len(digests)
        try:
            for start in range(0, len(digests), 1000):
                part = digests[start : start + 1000]
                values = self._client.mget([self._keys.config_block(d) for d in part])
                for digest, stored in zip(part, values, strict=True):
                    if not isinstance(stored, bytes):
                        found.append(None)
                    elif hmac.compare_digest(
                        stored[:_MAC_BYTES], self._block_mac(digest, stored[_MAC_BYTES:])
                    ):
                        found.append(stored[_MAC_BYTES:])
                    else:
                        refused += 1
                        found.append(None)
        except redis.RedisError as exc:
            log.warning("config blocks unavailable", error=str(exc))
            self.unavailable = True
            return [None] * len(digests)
        if refused:
            log.warning(
                "config blocks refused: their MAC does not verify (written without the audit "
                "key); parsing them from the file",
                refused=refused,
            )
        return found

    def put_blocks(self, blocks: Sequence[tuple[str, bytes]]) -> None:
        """Store validated blocks (digest, compressed body), 500 to a round trip: one SET
        each took 5% of the first load of a file of 100,000 targets."""
        if self.unavailable:
            return
        try:
            for start in range(0, len(blocks), 500):
                pipe = self._client.pipeline(transaction=False)
                for digest, body in blocks[start : start + 500]:
                    pipe.set(
                        self._keys.config_block(digest),
                        self._block_mac(digest, body) + body,
                        ex=SNAPSHOT_TTL,
                    )
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("config block not stored", error=str(exc))
            self.unavailable = True

    def _block_mac(self, digest: str, body: bytes) -> bytes:
        return hmac.digest(self._block_key, digest.encode() + body, "sha256")

    def _mac(self, digest: str, body: bytes) -> bytes:
        return hmac.digest(self._key, digest.encode() + body, "sha256")

    def get(self, digest: str) -> bytes | None:
        """The stored (compressed) checked mapping for ``digest``; None when absent or forged."""
        try:
            stored = self._client.get(self._keys.config_snapshot(digest))
        except redis.RedisError as exc:
            log.warning("config snapshot unavailable", error=str(exc))
            self.unavailable = True
            self.last = LoadInfo(digest, "unavailable")
            return None
        if not isinstance(stored, bytes):
            self.last = LoadInfo(digest, "miss")
            return None
        mac, body = stored[:_MAC_BYTES], stored[_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(digest, body)):
            log.warning(
                "config snapshot refused: its MAC does not verify (written without the audit "
                "key); validating the file",
                digest=digest[:12],
            )
            self.last = LoadInfo(digest, "refused")
            return None
        self.last = LoadInfo(digest, "hit")
        return body

    def put(self, digest: str, raw: Mapping[str, Any]) -> bool:
        """Store the mapping of a file that validated; False when JSON cannot carry it
        exactly (it is then validated from the file each time) or Redis refuses."""
        if not exactly_json(raw):
            self.last = LoadInfo(digest, "unstorable")
            return False
        return self.put_body(digest, zlib.compress(_encode(raw), 1))

    def put_body(self, digest: str, body: bytes) -> bool:
        """Store a snapshot's compressed body; False when Redis refuses."""
        if self.unavailable:
            return False
        try:
            self._client.set(
                self._keys.config_snapshot(digest), self._mac(digest, body) + body, ex=SNAPSHOT_TTL
            )
        except redis.RedisError as exc:
            log.warning("config snapshot not stored", error=str(exc))
            return False
        return True


# The stored JSON, one line each: the format, the file without its targets, then the targets
# in chunks. A hit validates chunk by chunk, so only one chunk's parsed JSON is alive at a time
# next to the models (the whole file's took 100 MB more at 100,000 targets).
_FORMAT = b'{"format":2}'
# A file validated in blocks (rotator.config_blocks): the head, then its blocks' digests.
_FORMAT_BLOCKS = b'{"format":3}'
_CHUNK = 5000


def _encode(raw: Mapping[str, Any]) -> bytes:
    head = {key: value for key, value in raw.items() if key != "targets"}
    targets = list(raw.get("targets", {}).items())
    chunks = [json_line(dict(targets[i : i + _CHUNK])) for i in range(0, len(targets), _CHUNK)]
    return b"\n".join([_FORMAT, json_line(head), json_line("targets" in raw), *chunks])


def _lines(body: bytes) -> Iterator[bytes]:
    """The lines of the compressed ``body``, inflated as they are read (the whole text at
    once would be 33 MB more at 100,000 targets)."""
    inflate = zlib.decompressobj()
    pending = b""
    step = 1 << 16
    for start in range(0, len(body), step):
        pending += inflate.decompress(body[start : start + step])
        *complete, pending = pending.split(b"\n")
        yield from complete
    pending += inflate.flush()
    *complete, pending = pending.split(b"\n")
    yield from complete
    yield pending


def _decode(body: bytes, cache: SnapshotCache) -> TargetsFile | None:
    """The models of a stored file (None: not a format of ours, or a block of it is gone)."""
    lines = _lines(body)
    kind = next(lines, None)
    if kind not in (_FORMAT, _FORMAT_BLOCKS):
        return None
    head = TargetsFile.model_validate_json(next(lines, b""))
    has_targets = json.loads(next(lines, b"false")) is True
    targets: dict[str, TargetSpecModel] = {}
    if kind == _FORMAT:
        for line in lines:
            targets.update(TARGETS.validate_json(line))
    else:
        for block in cache.get_blocks([line.decode() for line in lines]):
            if block is None:
                return None
            targets.update(TARGETS.validate_json(zlib.decompress(block)))
    fields_set = set(head.model_fields_set) | ({"targets"} if has_targets else set())
    # Every section of the head, not a list of them: a section added later must not vanish.
    sections = {name: getattr(head, name) for name in TargetsFile.model_fields}
    sections["targets"] = targets
    return TargetsFile.model_construct(fields_set, **sections)


def load_targets_cached(
    path: Path,
    known_providers: Sequence[str],
    settings: Settings,
    cache: SnapshotCache | None,
) -> TargetsConfig:
    """``rotator.config.load_targets``, through the snapshot cache when there is one.

    On a miss one process validates (it holds ``{digest}:lock``) while the others wait for its
    snapshot: after an edit, every worker notices the new file within a second, and eight of
    them parsing 100,000 targets at once on two cores took each of them four times as long.
    A waiter validates the file itself when the lock goes away without a snapshot (the file
    is invalid, or its holder died) or after ``cache.wait`` seconds."""
    data, mtime = safeyaml.read_file(path, str(path))
    if cache is None:
        return validate_file(path, data, mtime, known_providers, settings)
    cache.unavailable = False
    digest = cache.digest(path, data, known_providers)
    hit = _snapshot_config(cache, digest, path, mtime, settings)
    if hit is not None:
        return hit
    outcome = cache.last
    if outcome is not None and outcome.outcome == "miss" and not cache.claim(digest):
        hit = _wait_for_snapshot(cache, digest, path, mtime, settings)
        if hit is not None:
            return hit
    try:
        blocks = load_blocks(path, data, mtime, known_providers, settings, cache)
        if blocks is not None:
            config = blocks.config
            _put_blocks(cache, digest, blocks)
        else:
            config, raw = validate_targets(path, data, mtime, known_providers, settings)
            cache.put(digest, raw)
    finally:
        cache.release(digest)
    if outcome is not None and outcome.outcome == "refused":
        cache.last = outcome  # what happened to the snapshot, not to the re-store
    return config


def _put_blocks(cache: SnapshotCache, digest: str, blocks: BlockLoad) -> None:
    """Store the snapshot of a file validated in blocks: its head and its blocks' digests."""
    info = cache.last
    if blocks.digests is None:
        cache.last = LoadInfo(digest, "unstorable", (blocks.parsed, blocks.reused))
        return
    lines = [_FORMAT_BLOCKS, blocks.head, b"true", *(d.encode() for d in blocks.digests)]
    cache.put_body(digest, zlib.compress(b"\n".join(lines), 1))
    outcome = info.outcome if info is not None else "miss"
    cache.last = LoadInfo(digest, outcome, (blocks.parsed, blocks.reused))


def _snapshot_config(
    cache: SnapshotCache, digest: str, path: Path, mtime: float, settings: Settings
) -> TargetsConfig | None:
    checked = cache.get(digest)
    if checked is None:
        return None
    hit = _from_snapshot(path, mtime, checked, settings, cache)
    if hit is None:
        cache.last = LoadInfo(digest, "miss")
    return hit


def _wait_for_snapshot(
    cache: SnapshotCache, digest: str, path: Path, mtime: float, settings: Settings
) -> TargetsConfig | None:
    deadline = time.monotonic() + cache.wait
    while time.monotonic() < deadline:
        time.sleep(cache.poll)
        locked = cache.locked(digest)
        hit = _snapshot_config(cache, digest, path, mtime, settings)
        if hit is not None:
            cache.last = LoadInfo(digest, "waited")
            return hit
        if not locked:
            break
    return None


def _from_snapshot(
    path: Path, mtime: float, checked: bytes, settings: Settings, cache: SnapshotCache
) -> TargetsConfig | None:
    """The config of a checked mapping: validated by the models straight from its JSON, a
    chunk at a time, then the file references. None if the models refuse it (their JSON and
    Python modes disagreeing) or the format is another: the file is then validated."""
    try:
        with sharing_parts():
            model = _decode(checked, cache)
    except (ValidationError, zlib.error):  # zlib: authenticated, so another format
        return None
    if model is None:
        return None
    issues = file_reference_issues(path, model, settings)
    if issues:
        raise ConfigError(issues)
    return TargetsConfig(path, model, mtime, settings.credentials_root(path))


__all__ = [
    "SNAPSHOT_LABEL",
    "LoadInfo",
    "SnapshotCache",
    "SnapshotStore",
    "load_targets_cached",
]
