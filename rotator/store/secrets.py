"""Stored secret versions: Fernet-sealed values, deduplicated by HMAC fingerprint.

``put_secret_version`` reserves a sequence number only for a value it has not seen (one
script), seals the value outside Redis, then commits it unless the same value was committed
meanwhile (a second script), so two workers loading the same value agree on one version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotator.errors import MalformedJob
from rotator.models import version_id
from rotator.store.base import StoreBase
from rotator.store.codec import text


class SecretStore(StoreBase):
    async def put_secret_version(self, secret: str, fields: Mapping[str, Any]) -> tuple[str, str]:
        """Store a value encrypted; the same value again returns its existing version."""
        fingerprint = self.vault.fingerprint(fields)
        k = self.keys
        found, value = await self._lua("reserve_version")(
            keys=[k.secret_fingerprints(secret), k.secret_seq(secret)], args=[fingerprint]
        )
        if int(found):
            return text(value), fingerprint
        version = version_id(int(value))
        token = self.vault.seal(secret, version, fields)
        committed = await self._lua("commit_version")(
            keys=[k.secret_fingerprints(secret), k.secret_versions(secret)],
            args=[fingerprint, version, token],
        )
        return text(committed), fingerprint

    async def load_secret_version(self, secret: str, version: str) -> dict[str, Any]:
        token = await self.redis.hget(self.keys.secret_versions(secret), version)
        if token is None:
            raise MalformedJob(version, f"secret {secret} has no stored version {version}")
        return self.vault.open(
            secret, version, token if isinstance(token, bytes) else token.encode()
        )

    async def latest_secret_version(self, secret: str) -> str | None:
        versions = await self.redis.hkeys(self.keys.secret_versions(secret))
        return max((text(v) for v in versions), default=None)

    async def fingerprint_of(self, secret: str, version: str) -> str | None:
        fields = await self.load_secret_version(secret, version)
        return self.vault.fingerprint(fields)

    async def reseal_versions(self, secret: str) -> int:
        """Re-encrypt every stored version of a secret under the newest master key."""
        key = self.keys.secret_versions(secret)
        tokens = await self.redis.hgetall(key)
        if not tokens:
            return 0
        resealed = {
            text(v): self.vault.reseal(t if isinstance(t, bytes) else str(t).encode())
            for v, t in tokens.items()
        }
        await self.redis.hset(key, mapping=resealed)  # type: ignore[arg-type]
        return len(resealed)
