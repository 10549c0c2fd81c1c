"""What every part of the store shares: the client, the key table, the vault and the scripts.

Durable writes. With replicas, a write the primary acknowledged can still be lost: a failover
promotes a replica that never received it. The writes crash safety rests on (the pinned
version, the intent journalled before a remote write, a promotion) are therefore *durable*
when ``Durability.min_replicas`` > 0: the script and a ``WAIT min_replicas timeout`` go out
in one pipeline, so both run on the same connection, one after the other. That matters:
``WAIT`` waits for the replication offset of the *connection's own* last write, and on
another pooled connection (one that wrote nothing, or wrote earlier) it would return at once
and prove nothing. (A script cannot call WAIT itself, and WAIT inside MULTI does not block.)
Fewer acknowledgements than asked within the timeout raise ``WriteNotDurable``; the write is
on the primary, and the caller treats it as not durable: nothing that depends on it follows.
An on-demand job is durable too before its id is returned (``create_job``): a caller that
got an id must not see the job vanish in a failover. Replication is one ordered stream, so a
durable write also covers every write before it (the secret version stored before the pin,
the `pending` pointer staged before the intent).

What is not waited for: lease takes and renewals, the audit events, retries and the other
endings. A failover may lose the newest of them; each is either repeated by the next attempt
(which converges from the durable journal) or, for a lease, can only end it early, and the
attempt that takes over is of the same job with the same pinned version. A terminal audit
event lost with its ``settle`` is written again from ``audit_owed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from rotator.crypto import Vault
from rotator.errors import LeaseLost, WriteNotDurable
from rotator.store import scripts
from rotator.store.keys import Keys


@dataclass(frozen=True)
class Durability:
    """How many replicas must acknowledge a durable write (0: none, no WAIT), and how long the
    store waits for them (``ROTATOR_REDIS_MIN_REPLICAS``, ``ROTATOR_REDIS_REPLICA_TIMEOUT``)."""

    min_replicas: int = 0
    timeout: float = 2.0


class StoreBase:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        vault: Vault,
        durability: Durability | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.vault = vault
        self.durability = durability or Durability()
        self._scripts: dict[str, AsyncScript] = {}

    def _lua(self, name: str) -> AsyncScript:
        """The registered script ``lua/{name}.lua`` (EVALSHA, falling back to EVAL once)."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.redis.register_script(scripts.load(name))
        return script

    async def _fenced(
        self, name: str, *, keys: list[str], args: list[Any], durable: str = ""
    ) -> None:
        """Run a fenced script; a lease that no longer holds our fence is ``LeaseLost``.

        ``durable``: the name of the step, when crash safety rests on this write; it then also
        waits for the replicas (``_replicated``)."""
        if durable and self._waits:
            await self._replicated(durable, name, keys=keys, args=args)
            return
        try:
            await self._lua(name)(keys=keys, args=args)
        except aioredis.ResponseError as exc:
            raise _fence_error(exc) from None

    async def _replicated(self, step: str, name: str, *, keys: list[str], args: list[Any]) -> None:
        """Script ``name``, then ``WAIT``, on one connection (see the module docstring)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            await self._lua(name)(keys=keys, args=args, client=pipe)
            self._wait_in(pipe)
            written, acked = await pipe.execute(raise_on_error=False)
        if isinstance(written, aioredis.ResponseError):
            raise _fence_error(written) from None
        if isinstance(written, BaseException):
            raise written
        self._check_acked(step, acked)

    @property
    def _waits(self) -> bool:
        return self.durability.min_replicas > 0

    def _wait_in(self, pipe: Any) -> None:
        """Queue the WAIT after the writes already in ``pipe`` (same connection)."""
        pipe.wait(self.durability.min_replicas, max(1, int(self.durability.timeout * 1000)))

    def _check_acked(self, step: str, acked: Any) -> None:
        """``WriteNotDurable`` unless WAIT's reply counts enough replicas."""
        if isinstance(acked, BaseException):
            raise acked
        need = self.durability.min_replicas
        if int(acked) < need:
            raise WriteNotDurable(step, int(acked), need, self.durability.timeout)


def _fence_error(exc: aioredis.ResponseError) -> Exception:
    if "LEASE_LOST" in str(exc):
        return LeaseLost("the target lease expired or was taken over")
    return exc
