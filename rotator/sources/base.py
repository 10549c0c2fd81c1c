"""The interface every secret source implements, and the pinned version it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rotator.config import SecretSpec
    from rotator.protocols import SecretVersions


@dataclass(frozen=True)
class SourceContext:
    versions: SecretVersions  # where versions are stored (encrypted) and looked up
    base_dir: Path  # the credentials directory: file secrets are read only inside it
    env: Mapping[str, str] | None = None  # None: os.environ (tests inject a mapping)


@dataclass(frozen=True)
class Pinned:
    """A job's secret version. ``fields`` is the value when pinning produced it (it saves the
    attempt a decrypting read-back); it never shows in a repr."""

    version: str
    fingerprint: str
    fields: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    # Where a remote source read it ("vault secret/apps/sfdc version 3"): journalled and audited
    # so a rotator version traces back to the secret store's own version. Never a value.
    origin: str | None = None


class SecretSource(Protocol):
    async def pin(self, name: str, spec: SecretSpec, ctx: SourceContext) -> Pinned: ...


class ValueSource(ABC):
    """A source that produces the value itself; pinning stores it as a new version (the same
    value twice maps to the same version)."""

    @abstractmethod
    def load(self, name: str, spec: SecretSpec, ctx: SourceContext) -> dict[str, Any]: ...

    async def load_async(self, name: str, spec: SecretSpec, ctx: SourceContext) -> dict[str, Any]:
        """``load`` from the event loop; sources that block (files) run it in a thread."""
        return self.load(name, spec, ctx)

    async def pin(self, name: str, spec: SecretSpec, ctx: SourceContext) -> Pinned:
        fields = await self.load_async(name, spec, ctx)
        version, fingerprint = await ctx.versions.put_secret_version(name, fields)
        return Pinned(version, fingerprint, fields)
