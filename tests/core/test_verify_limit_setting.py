"""``ROTATOR_VERIFY_LIMIT``: seconds or an interval, reaching the retry policy."""

from __future__ import annotations

import pytest

from rotator.config import load_settings
from rotator.errors import ConfigError


@pytest.mark.parametrize(
    ("raw", "seconds"), [(None, 86400.0), ("24h", 86400.0), ("90m", 5400.0), ("120", 120.0)]
)
def test_verify_limit_accepts_seconds_and_intervals(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, seconds: float
) -> None:
    if raw is None:
        monkeypatch.delenv("ROTATOR_VERIFY_LIMIT", raising=False)
    else:
        monkeypatch.setenv("ROTATOR_VERIFY_LIMIT", raw)

    assert load_settings().verify_limit == seconds


@pytest.mark.parametrize("raw", ["soon", "0", "-5"])
def test_a_bad_verify_limit_names_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("ROTATOR_VERIFY_LIMIT", raw)

    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "ROTATOR_VERIFY_LIMIT" in str(caught.value)
