"""Secret sources: where the secret version a job rotates to comes from.

One module per source, looked up by the name used in the targets file. The registry maps names
to ``module:Class`` strings and imports lazily, like ``rotator.providers``:

* ``file``, ``env`` and ``generate`` produce field dicts that rotator stores as a new version
  (the same value twice maps to the same version);
* ``store`` versions are pushed beforehand with ``rotator secrets put``; the newest is used;
* ``vault`` (Vault / OpenBao KV v2, extra ``rotator[vault]``) and ``aws-secrets-manager`` read
  a secret store once per job and store what they read as a version, pinned: the job's retries
  apply that stored value, and the store's own version (KV version, ``VersionId``) is the pin's
  ``origin`` in the journal and the audit trail.

A job may also name its version (``rotator rotate --version``): then no source runs and the
version must already be stored. Errors name the source or the version, never a value.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from rotator import fields
from rotator.errors import UnknownSecretVersion
from rotator.sources.base import Pinned, SecretSource, SourceContext, ValueSource
from rotator.sources.store import stored_fingerprint

if TYPE_CHECKING:
    from rotator.config import SecretSpec

REGISTRY: dict[str, str] = {
    "file": "rotator.sources.file:FileSource",
    "env": "rotator.sources.env:EnvSource",
    "generate": "rotator.sources.generate:GenerateSource",
    "store": "rotator.sources.store:StoreSource",
    "vault": "rotator.sources.vault:VaultSource",
    "aws-secrets-manager": "rotator.sources.aws_secrets:AwsSecretsSource",
}


def load_source(kind: str) -> SecretSource:
    module_name, _, class_name = REGISTRY[kind].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cast(SecretSource, cls())


async def pin_version(
    name: str,
    spec: SecretSpec,
    ctx: SourceContext,
    requested: str | None = None,
    *,
    targets: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
) -> Pinned:
    """The version a job rotates to: the one it requested, else whatever its source yields.

    With ``targets`` (name -> (provider, options)) the value is checked against the fields
    those providers need (``rotator.fields``): a value they cannot use raises
    SecretFieldsInvalid, a permanent failure, before any remote call."""
    if requested:
        fingerprint = await stored_fingerprint(ctx.versions, name, requested)
        if fingerprint is None:
            raise UnknownSecretVersion(name, requested)
        pinned = Pinned(requested, fingerprint)
    else:
        pinned = await load_source(spec.source).pin(name, spec, ctx)
    if targets is None:
        return pinned
    value = pinned.fields
    if value is None:  # a stored version: read it back once, and hand it on so the job need not
        value = await ctx.versions.load_secret_version(name, pinned.version)
    fields.check(value, targets)
    return replace(pinned, fields=value)


__all__ = [
    "REGISTRY",
    "Pinned",
    "SecretSource",
    "SourceContext",
    "ValueSource",
    "load_source",
    "pin_version",
]
