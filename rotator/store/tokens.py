"""One bearer token per credential set, shared by every process through Redis.

``SharedTokenCache`` is the ``rotator.providers.tokens.Tokens`` the runtime injects. Keys
(``rotator.store.keys``): ``{p}token:{digest}`` holds the token sealed with the master key
(``Vault.seal``, bound to its slot: a token copied to another credential set's slot does not
open), expiring a safety margin before the token does; ``{p}token:{digest}:lock`` is the mint
lock. The digest names provider, token URL, client id and scope, never the secret.

Getting a token::

    GET token ─ found ─► open it, use it
       └─ missing ─► SET lock NX PX (a random nonce)
                       ├─ won:  GET token again (another process may just have stored it),
                       │        else mint, SET token PX (lifetime - margin); release the lock
                       │        by compare-and-delete (only our nonce: a lock that expired
                       │        and was taken by another process is not ours to delete)
                       └─ lost: poll GET token until it appears or the lock expires

So exactly one process mints while the others wait, and a holder that dies mid-mint only
delays the others until its lock's TTL (``lock_ttl``, longer than a mint can take) runs out.
Within a process one caller per credential set does the waiting; the rest queue behind it.

Each process also keeps the token it last read until the time the shared copy is due to be
replaced (``refresh_at``, wall clock, sealed with the token), so a provider call costs no Redis
round trip while the token is fresh.

A 401 invalidates the token the caller used with compare-and-delete on the sealed value it
read, so the first process to see the 401 drops it and the next ``get`` mints once; a process
whose 401 comes after another process already replaced the token deletes nothing.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from rotator import redaction
from rotator.crypto import Vault
from rotator.errors import CallDeadlineExceeded, DecryptionError
from rotator.lease import call_time_left
from rotator.providers.tokens import Mint, refresh_after, token_digest
from rotator.store import scripts
from rotator.store.keys import Keys

_VERSION = "bearer"  # the record's version label (Vault binds slot and version)


class SharedTokenCache:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        vault: Vault,
        *,
        refresh_margin: float = 60.0,
        lock_ttl: float = 30.0,
        poll: float = 0.05,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self._vault = vault
        self._margin = refresh_margin
        self._lock_ttl = lock_ttl
        self._poll = poll
        self._sleep = sleep
        self._compare_delete = redis.register_script(scripts.load("compare_delete"))
        self._waiting: dict[tuple[str, ...], asyncio.Lock] = {}
        # The token last read per key: (value, sealed as stored, refresh_at wall time). The
        # sealed form is what a 401 compare-and-deletes.
        self._seen: dict[tuple[str, ...], tuple[str, bytes, float]] = {}
        self.mints = 0  # by this process

    def __repr__(self) -> str:
        return f"SharedTokenCache(mints={self.mints})"

    async def get(self, key: tuple[str, ...], mint: Mint) -> str:
        seen = self._seen.get(key)
        if seen is not None and seen[2] > time.time():
            redaction.hold(seen[0])
            return seen[0]
        digest = token_digest(key)
        value = await self._cached(key, digest)
        if value is not None:
            return value
        async with self._waiting.setdefault(key, asyncio.Lock()):
            while True:
                value = await self._cached(key, digest)
                if value is not None:
                    return value
                nonce = secrets.token_hex(16)
                lock = self.keys.token_lock(digest)
                if await self.redis.set(lock, nonce, nx=True, px=int(self._lock_ttl * 1000)):
                    try:
                        value = await self._cached(key, digest)
                        return value if value is not None else await self._mint(key, digest, mint)
                    finally:
                        await self._compare_delete(keys=[lock], args=[nonce])
                left = call_time_left()
                if left is not None and left <= self._poll:
                    raise CallDeadlineExceeded(
                        "no time left of the attempt's lease to wait for the shared token",
                        provider=key[0],
                    )
                await self._sleep(self._poll)

    async def invalidate(self, key: tuple[str, ...], value: str) -> None:
        seen = self._seen.get(key)
        if seen is None or seen[0] != value:
            return  # we already read a newer token: the rejected one is gone from Redis
        del self._seen[key]
        await self._compare_delete(keys=[self.keys.token(token_digest(key))], args=[seen[1]])

    async def _cached(self, key: tuple[str, ...], digest: str) -> str | None:
        raw = await self.redis.get(self.keys.token(digest))
        if raw is None:
            return None
        sealed = raw if isinstance(raw, bytes) else raw.encode()
        try:
            record = self._vault.open(f"token:{digest}", _VERSION, sealed)
            value, refresh_at = str(record["access_token"]), float(record["refresh_at"])
        except (DecryptionError, KeyError, TypeError, ValueError):
            # Sealed under a master key no longer configured (or not a token): mint anew.
            await self._compare_delete(keys=[self.keys.token(digest)], args=[sealed])
            return None
        redaction.hold(value)  # a provider echoing the bearer token is redacted
        self._seen[key] = (value, sealed, refresh_at)
        return value

    async def _mint(self, key: tuple[str, ...], digest: str, mint: Mint) -> str:
        started = time.monotonic()
        value, lifetime = await mint()
        redaction.hold(value)
        self.mints += 1
        ttl = refresh_after(lifetime, self._margin) - (time.monotonic() - started)
        if ttl > 0:
            refresh_at = time.time() + ttl
            record = {"access_token": value, "refresh_at": refresh_at}
            sealed = self._vault.seal(f"token:{digest}", _VERSION, record)
            await self.redis.set(self.keys.token(digest), sealed, px=max(1, int(ttl * 1000)))
            self._seen[key] = (value, sealed, refresh_at)
        return value


__all__ = ["SharedTokenCache"]
