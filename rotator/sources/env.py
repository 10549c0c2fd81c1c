from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from rotator.errors import SecretSourceError


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
