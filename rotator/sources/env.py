"""``env``: a JSON object (or one raw value) in an environment variable."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from rotator.config import SecretSpec
from rotator.errors import SecretSourceError
from rotator.sources.base import SourceContext, ValueSource


def load_env(
    name: str, var: str, field: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A JSON object in the variable, or a raw value stored under ``field``."""
    environ = os.environ if env is None else env
    raw = environ.get(var)
    if raw is None or raw == "":
        raise SecretSourceError(f"secret {name}: environment variable {var} is not set")
    if raw.lstrip().startswith("{"):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise SecretSourceError(
                f"secret {name}: {var} starts like JSON but does not parse"
            ) from None
        if isinstance(value, dict) and value:
            return value
        raise SecretSourceError(f"secret {name}: {var} must hold a non-empty JSON object")
    return {field: raw}


class EnvSource(ValueSource):
    def load(self, name: str, spec: SecretSpec, ctx: SourceContext) -> dict[str, Any]:
        assert spec.var is not None  # the settings model requires it for this source
        return load_env(name, spec.var, spec.field, ctx.env)
