"""Bearer-token caches: one token per credential set, minted once until near its expiry.

Adobe throttles integrations that mint too many tokens and Commerce Layer allows 30 mints a
minute, so a token is minted once per credential set and shared by every call that needs it.
Adapters see the cache through the ``Tokens`` Protocol:

* ``TokenCache`` shares a token inside one process (tests, CLI commands without Redis);
* ``rotator.store.tokens.SharedTokenCache`` shares it across every worker process through
  Redis (sealed with the master key; one process mints under a lock while the others wait),
  and is what the runtime injects.

A token is named by ``token_digest`` of its key (provider, token URL, client id, scope): never
by the client secret. Token values are held for redaction (``rotator.redaction.hold``) and no
cache shows one in its repr.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from rotator import redaction

Clock = Callable[[], float]
Mint = Callable[[], Awaitable[tuple[str, float]]]  # -> (token, lifetime in seconds)


class Tokens(Protocol):
    async def get(self, key: tuple[str, ...], mint: Mint) -> str:
        """The cached token for ``key``, minting one (once, however many callers) if none."""
        ...

    async def invalidate(self, key: tuple[str, ...], value: str) -> None:
        """Drop a token the provider rejected, only if it is still the one cached."""
        ...


def token_digest(key: tuple[str, ...]) -> str:
    """A stable, non-secret name for one credential set (keys hold no secret either)."""
    return hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:32]


def refresh_after(lifetime: float, margin: float) -> float:
    """Seconds a token of ``lifetime`` is used before a fresh one is minted. A margin larger
    than a short lifetime (CipherTrust's 300 s) would mean minting on every call: keep at least
    four fifths of the lifetime usable."""
    return lifetime - min(margin, lifetime / 5)


@dataclass
class CachedToken:
    value: str = field(repr=False)
    refresh_at: float = 0.0  # monotonic time after which we mint a fresh one


class TokenCache:
    """Process-wide token cache: one mint per credential set until near expiry.

    Concurrent callers for the same key share one in-flight mint instead of each minting.
    """

    def __init__(self, clock: Clock = time.monotonic, refresh_margin: float = 60.0) -> None:
        self._clock = clock
        self._margin = refresh_margin
        self._tokens: dict[tuple[str, ...], CachedToken] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}
        self.mints = 0

    def __repr__(self) -> str:
        return f"TokenCache(tokens={len(self._tokens)}, mints={self.mints})"

    def _fresh(self, key: tuple[str, ...]) -> str | None:
        token = self._tokens.get(key)
        if token and token.refresh_at > self._clock():
            redaction.hold(token.value)  # a provider echoing the bearer token is redacted
            return token.value
        return None

    async def get(self, key: tuple[str, ...], mint: Mint) -> str:
        value = self._fresh(key)
        if value is not None:
            return value
        async with self._locks.setdefault(key, asyncio.Lock()):
            value = self._fresh(key)
            if value is not None:
                return value
            value, lifetime = await mint()
            redaction.hold(value)
            self.mints += 1
            self._tokens[key] = CachedToken(
                value, self._clock() + refresh_after(lifetime, self._margin)
            )
            return value

    async def invalidate(self, key: tuple[str, ...], value: str | None = None) -> None:
        token = self._tokens.get(key)
        if token and (value is None or token.value == value):
            del self._tokens[key]


__all__ = ["CachedToken", "Mint", "TokenCache", "Tokens", "refresh_after", "token_digest"]
