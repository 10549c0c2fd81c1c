"""``ROTATOR_KEY_PREFIX`` cannot smuggle anything into Redis (issue 10.7).

The attack: a prefix such as ``x' .. redis.call('set', 'pwned', '1') .. '`` ran Redis commands
when the prefix was pasted into Lua source. Scripts now take every key as KEYS (none builds a
name from a prefix), and the prefix is refused unless it is 1-64 of ``A-Z a-z 0-9 : _ . -``.
"""

from __future__ import annotations

import re
import uuid
from importlib import resources
from pathlib import Path

import pytest
import redis

from rotator.config import Settings
from rotator.errors import ConfigError
from tests.security.config_helpers import cli, rotator_env


@pytest.mark.integration
def test_hostile_prefix_is_refused_before_touching_redis(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    canary = f"{key_prefix}pwned-{uuid.uuid4().hex[:8]}"
    hostile = f"x' .. redis.call('set', '{canary}', '1') .. '"
    (tmp_path / "rotator.yaml").write_text("targets: {}\n")
    env = rotator_env(tmp_path, redis_url, key_prefix, ROTATOR_KEY_PREFIX=hostile)
    client = redis.Redis.from_url(redis_url)
    try:
        for args in (("config", "check"), ("run", "--once", "--max-wait", "1"), ("jobs",)):
            result = cli(env, *args)
            assert result.returncode != 0, args
            assert "ROTATOR_KEY_PREFIX" in result.stdout + result.stderr
        assert client.exists(canary) == 0
    finally:
        client.delete(canary)
        client.close()


@pytest.mark.parametrize(
    "prefix", ["", "a b", "x'", "x\n", "rotator:{tag}", "ü:", "a" * 65, "x' .. KEYS[1] .. '"]
)
def test_prefix_characters_are_validated(prefix: str) -> None:
    with pytest.raises(ValueError):
        Settings(key_prefix=prefix)


@pytest.mark.parametrize("prefix", ["rotator:", "team-a.prod:", "rotator-test:0123abcd:", "x_1"])
def test_ordinary_prefixes_pass(prefix: str) -> None:
    assert Settings(key_prefix=prefix).key_prefix == prefix


def test_no_lua_script_is_built_from_a_prefix() -> None:
    """Every script is a fixed file, registered as read: no key name inside, no formatting."""
    lua = resources.files("rotator.store").joinpath("lua")
    for script in lua.iterdir():
        assert "rotator:" not in script.read_text("utf-8"), script.name
    store = resources.files("rotator.store")
    for module in store.iterdir():
        if module.name.endswith(".py"):
            for line in module.read_text("utf-8").splitlines():
                if "register_script(" in line:
                    assert not re.search(r"register_script\((f[\"']|.*\.format\(|.*%)", line)


def test_load_settings_names_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from rotator.config import load_settings

    monkeypatch.setenv("ROTATOR_KEY_PREFIX", "x' .. redis.call('flushall') .. '")
    with pytest.raises(ConfigError, match="ROTATOR_KEY_PREFIX"):
        load_settings()
