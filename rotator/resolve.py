"""From the targets file to what an adapter is handed: a ``TargetSpec`` with live credentials.

Credential references (``env:NAME`` / ``file:PATH``) are resolved at every attempt, so a
rotated API credential is picked up without a restart. ``file:`` paths are read only inside the
credentials directory (``ROTATOR_CREDENTIALS_DIR``, default the targets file's folder; see
``rotator.filerefs``), in a worker thread so a slow disk never stalls the event loop; a relative
``ca_bundle`` resolves against the targets file's folder. Errors name the target and the
credential key, never a value.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from pathlib import Path

from rotator import filerefs, redaction
from rotator.config import TargetsConfig, TargetSpecModel
from rotator.errors import ConfigError, ConfigIssue, SecretSourceError
from rotator.providers.base import TargetSpec

_REF = re.compile(r"^(env|file):(.+)$")


def target_model(config: TargetsConfig, name: str) -> TargetSpecModel:
    spec = config.targets.get(name)
    if spec is None:
        raise ConfigError(
            [ConfigIssue(str(config.path), f"targets.{name}", "target is not defined")]
        )
    return spec


def resolve_reference(ref: str, *, base_dir: Path, env: Mapping[str, str] | None = None) -> str:
    """Resolve ``env:NAME`` / ``file:PATH``. Errors name the reference, never a value.

    ``base_dir`` is the credentials directory: ``file:`` paths are read only inside it. This
    blocks on the file system: call it off the event loop."""
    match = _REF.match(ref)
    if not match:
        raise ValueError("not a reference")
    kind, target = match.groups()
    environ = os.environ if env is None else env
    if kind == "env":
        if target not in environ:
            raise KeyError(f"environment variable {target} is not set")
        return environ[target]
    try:
        data = filerefs.read_bytes(target, base_dir)
    except filerefs.FileRefused as exc:
        raise KeyError(str(exc)) from None
    except OSError as exc:
        raise KeyError(f"cannot read {target}: {exc.strerror}") from None
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        # The offending bytes are secret material: say where, never what.
        raise KeyError(f"{target} is not UTF-8 text") from None


def resolve_target_sync(
    name: str, spec: TargetSpecModel, config: TargetsConfig, env: Mapping[str, str] | None = None
) -> TargetSpec:
    credentials: dict[str, str] = {}
    for key, ref in spec.credentials.items():
        try:
            credentials[key] = resolve_reference(ref, base_dir=config.credentials_dir, env=env)
        except KeyError as exc:
            raise SecretSourceError(f"target {name}: credential {key!r}: {exc.args[0]}") from None
    ca_bundle = spec.ca_bundle
    if ca_bundle and not os.path.isabs(ca_bundle):
        ca_bundle = str(Path(config.path.parent, ca_bundle))
    return TargetSpec(
        name=name,
        provider=spec.provider,
        base_url=spec.base_url,
        resource_id=spec.resource_id,
        options=spec.options,
        credentials=credentials,
        ca_bundle=ca_bundle,
    )


async def resolve_target(
    name: str, spec: TargetSpecModel, config: TargetsConfig, env: Mapping[str, str] | None = None
) -> TargetSpec:
    """``resolve_target_sync`` in a worker thread: credential files are read from disk."""
    target = await asyncio.to_thread(resolve_target_sync, name, spec, config, env)
    # Built in a thread, where no job's values can be held: hold them here, in the job's task,
    # so an echo of a credential in a provider's error is redacted (rotator.redaction).
    redaction.hold(*target.credentials.values())
    return target


__all__ = ["resolve_reference", "resolve_target", "resolve_target_sync", "target_model"]
