"""A small targets file must not take unbounded memory, time or stack to load.

The attacks (issue 10.6): a "billion laughs" file of about 500 bytes whose aliases expand to
~10^9 nodes, a recursive alias, and a few hundred kilobytes of ``[[[[`` that crashed libyaml's
composer with a segmentation fault. ``rotator config check`` (and every loader of the file)
refuses each with a clear error, in seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rotator.config import Settings, load_targets
from rotator.errors import ConfigError
from rotator.providers import provider_names
from tests.security.config_helpers import cli, rotator_env

BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
    "targets: {x: {provider: adobe, base_url: 'https://x.adobe.io', resource_id: r, "
    "secret: s, options: {o: *i}}}\n"
)

pytestmark = pytest.mark.integration


def _check(tmp_path: Path, redis_url: str, key_prefix: str, text: str) -> tuple[int, str, float]:
    (tmp_path / "rotator.yaml").write_text(text)
    started = time.monotonic()
    result = cli(rotator_env(tmp_path, redis_url, key_prefix), "config", "check", timeout=60)
    return result.returncode, result.stderr, time.monotonic() - started


def test_alias_bomb_is_refused(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    assert len(BOMB) < 800
    code, stderr, took = _check(tmp_path, redis_url, key_prefix, BOMB)
    assert code == 1
    assert "alias bomb" in stderr
    assert took < 30


def test_deep_nesting_is_refused_without_crashing(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    for depth in (100, 200_000):
        code, stderr, _ = _check(tmp_path, redis_url, key_prefix, "[" * depth + "]" * depth)
        assert code == 1  # not -11 (SIGSEGV)
        assert "nesting" in stderr  # ours (64 levels), or libyaml's own parser limit


def test_recursive_alias_is_refused(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    code, stderr, _ = _check(tmp_path, redis_url, key_prefix, "targets: &t {x: *t}\n")
    assert code == 1
    assert "refers to itself" in stderr


def test_ordinary_anchors_and_merge_keys_still_load(tmp_path: Path) -> None:
    text = (
        "secrets: {s: {source: generate}}\n"
        "targets:\n"
        "  a: &base\n"
        "    provider: adobe\n"
        "    base_url: https://platform.adobe.io/x\n"
        "    resource_id: r1\n"
        "    secret: s\n"
        "  b:\n"
        "    <<: *base\n"
        "    resource_id: r2\n"
    )
    path = tmp_path / "rotator.yaml"
    path.write_text(text)
    config = load_targets(path, provider_names(), Settings())
    assert config.targets["b"].resource_id == "r2"
    assert config.targets["b"].base_url == "https://platform.adobe.io/x"


def test_oversized_targets_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rotator import safeyaml

    monkeypatch.setattr(safeyaml, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "rotator.yaml"
    path.write_text("targets: {}\n" + "#" * 2000)
    with pytest.raises(ConfigError, match="larger than 1000 bytes"):
        load_targets(path, provider_names(), Settings())
