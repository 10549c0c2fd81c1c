"""From the targets file to what an adapter is handed: a ``TargetSpec`` with live credentials.

Credential references (``env:NAME`` / ``file:PATH``) are resolved at every attempt, so a
rotated API credential is picked up without a restart; relative paths (credential files and
``ca_bundle``) resolve against the targets file's folder. Errors name the target and the
credential key, never a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rotator.config import TargetsConfig, TargetSpecModel, resolve_reference
from rotator.errors import ConfigError, ConfigIssue, SecretSourceError
from rotator.providers.base import TargetSpec


def target_model(config: TargetsConfig, name: str) -> TargetSpecModel:
    spec = config.targets.get(name)
    if spec is None:
        raise ConfigError(
            [ConfigIssue(str(config.path), f"targets.{name}", "target is not defined")]
        )
    return spec


def resolve_target(
    name: str, spec: TargetSpecModel, config: TargetsConfig, env: Mapping[str, str] | None = None
) -> TargetSpec:
    base_dir = config.path.parent
    credentials: dict[str, str] = {}
    for key, ref in spec.credentials.items():
        try:
            credentials[key] = resolve_reference(ref, base_dir=base_dir, env=env)
        except KeyError as exc:
            raise SecretSourceError(f"target {name}: credential {key!r}: {exc.args[0]}") from None
    ca_bundle = spec.ca_bundle
    if ca_bundle and not os.path.isabs(ca_bundle):
        ca_bundle = str(Path(base_dir, ca_bundle))
    return TargetSpec(
        name=name,
        provider=spec.provider,
        base_url=spec.base_url,
        resource_id=spec.resource_id,
        options=spec.options,
        credentials=credentials,
        ca_bundle=ca_bundle,
    )


__all__ = ["resolve_target", "target_model"]
