"""Conversions between Redis replies and Python values, shared by the store's modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def text(value: Any, errors: str = "strict") -> str:
    """A reply value as text (replies are bytes unless the client decodes them)."""
    return value.decode(errors=errors) if isinstance(value, bytes) else str(value)


def pairs(mapping: Mapping[str, Any]) -> list[str]:
    """Flatten a mapping into the field/value ARGV pairs the scripts take; None is ''."""
    out: list[str] = []
    for key, value in mapping.items():
        out.extend((key, "" if value is None else str(value)))
    return out


def as_dict(flat: list[Any]) -> dict[str, str]:
    """A flat HGETALL reply from a script (field, value, field, value...) as a dict."""
    items = [text(x) for x in flat]
    return dict(zip(items[::2], items[1::2], strict=True))


def decoded(raw: Mapping[Any, Any], errors: str = "strict") -> dict[str, str]:
    """A client HGETALL reply with keys and values as text."""
    return {text(k, errors): text(v, errors) for k, v in raw.items()}
