"""What every part of the store shares: the client, the key table, the vault and the scripts."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from rotator.crypto import Vault
from rotator.errors import LeaseLost
from rotator.store import scripts
from rotator.store.keys import Keys


class StoreBase:
    def __init__(self, redis: aioredis.Redis, keys: Keys, vault: Vault) -> None:
        self.redis = redis
        self.keys = keys
        self.vault = vault
        self._scripts: dict[str, AsyncScript] = {}

    def _lua(self, name: str) -> AsyncScript:
        """The registered script ``lua/{name}.lua`` (EVALSHA, falling back to EVAL once)."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.redis.register_script(scripts.load(name))
        return script

    async def _fenced(self, name: str, *, keys: list[str], args: list[Any]) -> None:
        """Run a fenced script; a lease that no longer holds our fence is ``LeaseLost``."""
        try:
            await self._lua(name)(keys=keys, args=args)
        except aioredis.ResponseError as exc:
            if "LEASE_LOST" in str(exc):
                raise LeaseLost("the target lease expired or was taken over") from None
            raise
