"""Key maintenance over every stored secret: master-key reseal (resumable) and the fingerprint
indexes an audit-key rotation rebuilds.

Every stored secret is found by scanning ``secret:*:versions`` under the prefix, not from the
targets file: a secret no longer configured still holds sealed versions that must move to the
new master key. ``keys:reseal`` records which secrets a run has finished, under a check value of
the newest master key, so an interrupted ``rotator keys rotate`` resumes where it stopped.
"""

from __future__ import annotations

from redis.exceptions import WatchError

from rotator.store.base import StoreBase
from rotator.store.codec import text
from rotator.store.secrets import SEQ_FIELD, index_field

_SUFFIX = ":versions"


class KeyStore(StoreBase):
    async def stored_secrets(self) -> list[str]:
        """Names of every secret with stored versions (SCAN; maintenance only, never hot)."""
        head = f"{self.keys.prefix}secret:"
        names = set()
        async for key in self.redis.scan_iter(match=self.keys.secret_versions_pattern(), count=500):
            name = text(key)
            if name.startswith(head) and name.endswith(_SUFFIX):
                names.add(name[len(head) : -len(_SUFFIX)])
        return sorted(names)

    async def reseal_done(self) -> set[str]:
        """Secrets an earlier run already moved to the newest master key (empty for a new key)."""
        progress = {
            text(k): text(v) for k, v in (await self.redis.hgetall(self.keys.reseal)).items()
        }
        token = progress.pop("key", None)
        if token is None or not self.vault.newest_opens(token.encode()):
            await self.redis.delete(self.keys.reseal)
            await self.redis.hset(self.keys.reseal, "key", self.vault.master_check())
            return set()
        return {name.removeprefix("done:") for name in progress}

    async def mark_resealed(self, secret: str) -> None:
        await self.redis.hset(self.keys.reseal, f"done:{secret}", "1")

    async def finish_reseal(self) -> None:
        """The store is sealed under the newest key: its check value follows; progress goes."""
        await self.redis.hset(self.keys.key_check, "master", self.vault.master_check())
        await self.redis.delete(self.keys.reseal)

    async def refingerprint(self, secret: str) -> int:
        """Rebuild a secret's fingerprint index under the vault's (newest) audit key, so a value
        loaded again still finds its version after an audit-key rotation. The index's ``#seq``
        field (the version sequence number) stays: the rebuild is one transaction, repeated if
        a version is stored meanwhile, so a number is never handed out twice."""
        versions_key = self.keys.secret_versions(secret)
        key = self.keys.secret_fingerprints(secret)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key, versions_key)
                    tokens = await pipe.hgetall(versions_key)
                    index: dict[bytes, str] = {}
                    for version, token in tokens.items():
                        name = text(version)
                        fields = self.vault.open(
                            secret, name, token if isinstance(token, bytes) else token.encode()
                        )
                        index[index_field(self.vault.fingerprint(fields))] = name
                    stale = [f for f in await pipe.hkeys(key) if f != SEQ_FIELD.encode()]
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if stale:
                        pipe.hdel(key, *stale)
                    if index:
                        pipe.hset(key, mapping=index)  # type: ignore[arg-type]
                    await pipe.execute()
                    return len(index)
                except WatchError:
                    continue
