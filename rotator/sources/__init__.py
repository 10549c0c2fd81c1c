"""Secret sources: where a new secret value comes from.

``file``, ``env`` and ``generate`` produce field dicts that rotator stores as a new version
(the same value twice maps to the same version); ``store`` versions are pushed beforehand with
``rotator secrets put`` and are only referenced here. Errors name the source, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rotator.config import SecretSpec
from rotator.sources.env import load_env
from rotator.sources.file import load_file
from rotator.sources.generate import generate


def load_fields(
    name: str, spec: SecretSpec, *, base_dir: Path, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    if spec.source == "file":
        assert spec.path is not None
        return load_file(name, spec.path, base_dir)
    if spec.source == "env":
        assert spec.var is not None
        return load_env(name, spec.var, spec.field, env)
    if spec.source == "generate":
        return generate(spec)
    raise ValueError(f"source {spec.source!r} holds no value of its own")


__all__ = ["load_fields"]
