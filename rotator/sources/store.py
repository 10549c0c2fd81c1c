"""``store``: versions pushed beforehand with ``rotator secrets put``; a job takes the newest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotator.errors import MalformedJob, SecretSourceError, UnknownSecretVersion
from rotator.sources.base import Pinned, SourceContext

if TYPE_CHECKING:
    from rotator.config import SecretSpec
    from rotator.protocols import SecretVersions


class StoreSource:
    async def pin(self, name: str, spec: SecretSpec, ctx: SourceContext) -> Pinned:
        latest = await ctx.versions.latest_secret_version(name)
        if latest is None:
            raise SecretSourceError(
                f"secret {name} has no stored version; push one with 'rotator secrets put {name}'"
            )
        return Pinned(latest, await stored_fingerprint(ctx.versions, name, latest) or "")


async def stored_fingerprint(versions: SecretVersions, secret: str, version: str) -> str | None:
    """The fingerprint of a stored version, None when that version was never stored."""
    try:
        return await versions.fingerprint_of(secret, version)
    except (MalformedJob, UnknownSecretVersion):
        # RotatorStore reports a missing version by raising MalformedJob rather than None.
        return None
