"""The interface every secret source implements, and the pinned version it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rotator import fields as field_rules
from rotator.errors import SecretFieldsInvalid

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
        version, fingerprint = await store_value(name, spec, ctx, fields)
        return Pinned(version, fingerprint, fields)


async def store_value(
    name: str, spec: SecretSpec, ctx: SourceContext, fields: dict[str, Any]
) -> tuple[str, str]:
    """Store a value a source produced as a version: (version id, fingerprint).

    A rotation sends what the value holds, so a value that lost a field the previous version
    had (a username gone from a rewritten file or a Vault secret) would remove it from the live
    connection. Refused (``SecretFieldsInvalid``, permanent, field names only) unless the
    secret says ``allow_field_change: true``, as ``rotator secrets put`` refuses it without
    ``--allow-field-change``."""
    if not spec.allow_field_change:
        previous = await ctx.versions.latest_field_names(name, likely=list(fields))
        if previous is not None:
            change = field_rules.diff(previous, fields)
            if change.removed:
                raise SecretFieldsInvalid(
                    f"secret {name}: the new value drops field(s) {list(change.removed)} that "
                    f"the previous version had (fields {change.describe()}); a rotation would "
                    "remove them from the target. Add them to the source, or set "
                    "allow_field_change: true on the secret if intended"
                )
    return await ctx.versions.put_secret_version(name, fields)
