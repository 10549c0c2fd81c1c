from __future__ import annotations

import inspect

import pytest

from rotator.providers import load_provider
from rotator.providers.base import Provider, ProviderContext

MINE = ["appflow", "uipath", "commercelayer", "ciphertrust"]


@pytest.mark.parametrize("name", MINE)
def test_adapter_implements_the_provider_protocol(name: str) -> None:
    adapter = load_provider(name, ProviderContext())
    assert adapter.name == name
    assert isinstance(adapter.replay_safe, bool)
    for member in ("read", "apply", "after_promote"):
        method = getattr(adapter, member)
        assert inspect.iscoroutinefunction(method)
        expected = inspect.signature(getattr(Provider, member)).parameters
        assert list(inspect.signature(method).parameters) == [p for p in expected if p != "self"]
    assert not inspect.iscoroutinefunction(adapter.carries)
    assert list(inspect.signature(adapter.carries).parameters) == [
        "live",
        "want",
        "applied_version",
    ]


def test_replay_safety_matches_the_contract() -> None:
    ctx = ProviderContext()
    assert load_provider("appflow", ctx).replay_safe is True
    assert load_provider("uipath", ctx).replay_safe is False  # never blind: never consulted
    assert load_provider("commercelayer", ctx).replay_safe is False
    assert load_provider("ciphertrust", ctx).replay_safe is False
