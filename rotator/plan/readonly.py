"""What the planner reads through, built so that nothing it calls can write.

* ``ReadOnlyContext`` is the adapters' ``ProviderContext`` with a request hook on every pooled
  client that refuses any request a read does not make: GET/HEAD/OPTIONS, token grants (the
  body names a ``grant_type``) and AppFlow's Describe (a POST that only reads). An adapter bug
  that tried to update a resource during ``rotator plan`` fails loudly instead of writing.
* ``EmptyJournal`` is a journal with nothing recorded that refuses to record.
* ``PlanState`` is the rotator state the plan consults (stage pointers, the schedule, stored
  versions), as reads only; ``RedisPlanState`` serves it from Redis, ``NoPlanState`` when no
  state store is reachable (embedded Redis not started: starting it would write).
* ``DryVersions`` is the ``SecretVersions`` a secret source pins against during a plan: it
  answers which stored version a value would map to, and never stores one.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from cryptography.fernet import Fernet
from redis.exceptions import RedisError

from rotator import embedded
from rotator.connections import async_redis
from rotator.crypto import Vault
from rotator.errors import MalformedJob, PlanWriteRefused
from rotator.providers.base import ProviderContext, TargetSpec
from rotator.store import RotatorStore
from rotator.store.keys import Keys

if TYPE_CHECKING:
    from rotator.config import Settings

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
# The one POST that reads: AppFlow's Describe (rest-json puts every operation on POST).
_READ_POSTS = ("/describe-connector-profiles",)


async def refuse_writes(request: httpx.Request) -> None:
    if request.method in _SAFE:
        return
    if request.method == "POST":
        if request.url.path.endswith(_READ_POSTS):
            return
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = b""
        if b"grant_type" in body:  # a token grant: it mints, it changes no resource
            return
    raise PlanWriteRefused(
        f"rotator plan refused to send {request.method} {request.url.path}: it only reads"
    )


@dataclass
class ReadOnlyContext(ProviderContext):
    """A ``ProviderContext`` whose clients refuse every request that could write."""

    def client(self, target: TargetSpec) -> httpx.AsyncClient:
        client = super().client(target)
        hooks = client.event_hooks["request"]
        if refuse_writes not in hooks:
            hooks.append(refuse_writes)
        return client


class EmptyJournal:
    """No job, so nothing recorded; a read that tried to record would be a bug."""

    def get(self, step: str) -> Mapping[str, Any] | None:
        return None

    async def record(self, step: str, data: Mapping[str, Any]) -> None:
        raise PlanWriteRefused(f"rotator plan refused to journal step {step!r}")


class PlanState(Protocol):
    """Rotator's own state, read only."""

    available: bool
    vault: Vault | None  # fingerprints (and decrypting stored versions) need the keys

    async def target_states(self, names: Iterable[str]) -> dict[str, dict[str, str]]: ...

    async def next_due(self, names: Iterable[str]) -> dict[str, float | None]: ...

    async def version_with_fingerprint(self, secret: str, fingerprint: str) -> str | None: ...

    async def latest_version(self, secret: str) -> str | None: ...

    async def stored_fields(self, secret: str, version: str) -> dict[str, Any]: ...


@dataclass
class NoPlanState:
    """No state store to read: every target looks never rotated and unscheduled so far."""

    vault: Vault | None = None
    available: bool = False

    async def target_states(self, names: Iterable[str]) -> dict[str, dict[str, str]]:
        return {name: {} for name in names}

    async def next_due(self, names: Iterable[str]) -> dict[str, float | None]:
        return dict.fromkeys(names)

    async def version_with_fingerprint(self, secret: str, fingerprint: str) -> str | None:
        return None

    async def latest_version(self, secret: str) -> str | None:
        return None

    async def stored_fields(self, secret: str, version: str) -> dict[str, Any]:
        raise MalformedJob(version, f"secret {secret}: no state store to read {version} from")


@dataclass
class RedisPlanState:
    """Reads through the store's own read methods (and the fingerprint index, read only)."""

    store: RotatorStore
    vault: Vault | None
    available: bool = True

    async def target_states(self, names: Iterable[str]) -> dict[str, dict[str, str]]:
        return await self.store.target_states(names)

    async def next_due(self, names: Iterable[str]) -> dict[str, float | None]:
        return await self.store.next_due(names)

    async def version_with_fingerprint(self, secret: str, fingerprint: str) -> str | None:
        return await self.store.version_with_fingerprint(secret, fingerprint)

    async def latest_version(self, secret: str) -> str | None:
        return await self.store.latest_secret_version(secret)

    async def stored_fields(self, secret: str, version: str) -> dict[str, Any]:
        return await self.store.load_secret_version(secret, version)


@dataclass
class DryVersions:
    """``SecretVersions`` for pinning without storing: a value maps to the version that
    already holds it, or to ``""`` (it would be stored as a new version)."""

    state: PlanState
    offered: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    async def put_secret_version(self, secret: str, fields: Mapping[str, Any]) -> tuple[str, str]:
        self.offered[secret] = dict(fields)
        vault = self.state.vault
        if vault is None:
            return "", ""
        fingerprint = vault.fingerprint(fields)
        existing = await self.state.version_with_fingerprint(secret, fingerprint)
        return existing or "", fingerprint

    async def load_secret_version(self, secret: str, version: str) -> dict[str, Any]:
        return await self.state.stored_fields(secret, version)

    async def latest_secret_version(self, secret: str) -> str | None:
        return await self.state.latest_version(secret)

    async def latest_field_names(
        self, secret: str, likely: Collection[str] = ()
    ) -> list[str] | None:
        latest = await self.state.latest_version(secret)
        return None if latest is None else sorted(await self.state.stored_fields(secret, latest))

    async def fingerprint_of(self, secret: str, version: str) -> str | None:
        if self.state.vault is None:
            return None
        return self.state.vault.fingerprint(await self.state.stored_fields(secret, version))


def plan_vault(settings: Settings) -> Vault | None:
    """The keys, when they exist: in zero-setup mode they are created on first use, which
    a plan must not do, so a state dir without keys means no fingerprints."""
    if settings.embedded:
        if not (settings.state_dir / "keys.json").exists():
            return None
    elif not (settings.master_key and settings.audit_key):
        return None
    return Vault(settings.master_keys(), settings.audit_key_bytes())


async def connect_state(settings: Settings) -> tuple[PlanState, str | None]:
    """The state to plan against, and why there is none when there is none. The embedded
    Redis is used only when it already runs: starting it would write the state dir."""
    vault = plan_vault(settings)
    url = settings.redis_url
    if url is None:
        if not embedded.running(settings.state_dir):
            return NoPlanState(vault), "the embedded Redis is not running"
        url = f"unix://{embedded.socket_path(settings.state_dir)}"
    client = async_redis(
        url,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=min(5.0, settings.redis_socket_timeout),
    )
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        return NoPlanState(vault), f"Redis is unreachable ({type(exc).__name__})"
    # Without the keys the store still answers reads; what it would decrypt fails as such.
    store_vault = vault or Vault([Fernet.generate_key().decode()], os.urandom(32))
    return RedisPlanState(RotatorStore(client, Keys(settings.key_prefix), store_vault), vault), None


async def close_state(state: PlanState) -> None:
    if isinstance(state, RedisPlanState):
        await state.store.redis.aclose()


__all__ = [
    "DryVersions",
    "EmptyJournal",
    "NoPlanState",
    "PlanState",
    "PlanWriteRefused",
    "ReadOnlyContext",
    "RedisPlanState",
    "close_state",
    "connect_state",
    "plan_vault",
    "refuse_writes",
]
