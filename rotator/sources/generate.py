"""``generate``: a fresh random value for every rotation."""

from __future__ import annotations

import secrets
from typing import Any

from rotator.config import SecretSpec
from rotator.sources.base import SourceContext, ValueSource


def generate(spec: SecretSpec) -> dict[str, Any]:
    """A fresh random value from the OS CSPRNG, plus the spec's static (non-secret) fields."""
    names = spec.fields or [spec.field]
    values = {
        name: "".join(secrets.choice(spec.alphabet) for _ in range(spec.length)) for name in names
    }
    return {**dict(spec.static), **values}


class GenerateSource(ValueSource):
    def load(self, name: str, spec: SecretSpec, ctx: SourceContext) -> dict[str, Any]:
        return generate(spec)
