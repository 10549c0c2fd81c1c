"""Stored secret versions: sealed values (``rotator.crypto``), deduplicated by HMAC fingerprint.

``put_secret_version`` reserves a sequence number only for a value it has not seen (one
script), seals the value outside Redis, then commits it unless the same value was committed
meanwhile (a second script), so two workers loading the same value agree on one version.

The fingerprint index (``secret:{name}:fingerprints``) is keyed by the HMAC's 32 raw bytes,
not its 64 hex digits, and also holds the version sequence number (field ``#seq``): at a
million targets at rest every byte per version counts (README "Performance"). Entries keyed in
hex, and the ``secret:{name}:seq`` key, written by earlier versions, are still honoured. Its
field ``#latest`` holds a keyed digest of the newest version's field names, so the check that a
new value keeps them (``rotator.sources.base.store_value``) decrypts nothing unless they changed.

``prune_secret_versions`` caps how many versions a secret keeps (``ROTATOR_SECRET_VERSIONS_KEPT``
newest, plus any version a target or its active job still names), so a secret rotated every
hour does not fill Redis over the years.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from rotator.errors import MalformedJob
from rotator.models import version_id
from rotator.store.base import StoreBase
from rotator.store.codec import text

# The fingerprint index's field holding the last version sequence number (a fingerprint is
# 32 raw bytes or 64 hex digits, so never this).
SEQ_FIELD = "#seq"
# Its field holding the newest committed version's field names (see latest_field_names).
LATEST_FIELD = "#latest"


def index_field(fingerprint: str) -> bytes:
    """The fingerprint index's field for a (hex) fingerprint: its raw bytes."""
    return bytes.fromhex(fingerprint)


class SecretStore(StoreBase):
    async def put_secret_version(self, secret: str, fields: Mapping[str, Any]) -> tuple[str, str]:
        """Store a value encrypted; the same value again returns its existing version."""
        fingerprint = self.vault.fingerprint(fields)
        k = self.keys
        found, value = await self._lua("reserve_version")(
            keys=[k.secret_fingerprints(secret), k.secret_seq(secret)],
            args=[index_field(fingerprint), fingerprint],
        )
        if int(found):
            return text(value), fingerprint
        version = version_id(int(value))
        token = self.vault.seal(secret, version, fields)
        committed = await self._lua("commit_version")(
            keys=[k.secret_fingerprints(secret), k.secret_versions(secret)],
            args=[
                index_field(fingerprint),
                version,
                token,
                fingerprint,
                self._latest_record(secret, version, list(fields)),
            ],
        )
        return text(committed), fingerprint

    async def latest_field_names(
        self, secret: str, likely: Collection[str] = ()
    ) -> list[str] | None:
        """The newest stored version's field names (None: no version). The commit keeps a
        keyed digest of them (``#latest``): when ``likely`` (the names of the value about to
        be stored) match it, they are the answer and nothing is decrypted. Otherwise (the
        names changed, a record forged in Redis, or none: stored before it existed, or an
        index rebuilt after an audit-key rotation) the newest version is opened."""
        raw = await self.redis.hget(self.keys.secret_fingerprints(secret), LATEST_FIELD)
        if raw is not None and likely:
            version = text(raw).partition("|")[0]
            names = sorted(likely)
            if hmac.compare_digest(text(raw), self._latest_record(secret, version, names)):
                return names
        latest = await self.latest_secret_version(secret)
        if latest is None:
            return None
        return sorted(await self.load_secret_version(secret, latest))

    def _latest_record(self, secret: str, version: str, names: Sequence[str]) -> str:
        """``{version}|{digest}``: 128 bits of the keyed fingerprint HMAC over the secret, the
        version and its sorted field names. Fixed size and under 64 bytes, so the index stays
        a compact listpack at a million secrets; it names no field, let alone a value."""
        digest = self.vault.fingerprint(
            {"latest_names_of": secret, "version": version, "names": sorted(names)}
        )
        return f"{version}|{digest[:32]}"

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

    async def version_with_fingerprint(self, secret: str, fingerprint: str) -> str | None:
        """The stored version holding the value with this (hex) fingerprint, if any."""
        found = await self.redis.hmget(
            self.keys.secret_fingerprints(secret), [index_field(fingerprint), fingerprint]
        )
        return next((text(v) for v in found if v is not None), None)

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
            text(v): self.vault.reseal(
                secret, text(v), t if isinstance(t, bytes) else str(t).encode()
            )
            for v, t in tokens.items()
        }
        await self.redis.hset(key, mapping=resealed)  # type: ignore[arg-type]
        return len(resealed)

    async def secrets_over_cap(self, secrets: Sequence[str], keep: int) -> list[str]:
        """The secrets holding more than ``keep`` versions (one pipelined round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in secrets:
                pipe.hlen(self.keys.secret_versions(name))
            counts = await pipe.execute()
        return [name for name, count in zip(secrets, counts, strict=True) if int(count) > keep]

    async def prune_secret_versions(self, secret: str, targets: Sequence[str], keep: int) -> int:
        """Delete versions of ``secret`` beyond the newest ``keep``, except those that the
        ``targets`` using it name as current, previous or pending, or that their active job
        pinned or asked for. Returns how many were deleted."""
        k = self.keys
        if await self.redis.hlen(k.secret_versions(secret)) <= keep:
            return 0
        active = await self.redis.mget([k.active(t) for t in targets]) if targets else []
        holders = [k.target(t) for t in targets] + [k.job(text(a)) for a in active if a]
        deleted = await self._lua("prune_versions")(
            keys=[k.secret_versions(secret), k.secret_fingerprints(secret), *holders],
            args=[keep],
        )
        return int(deleted)
