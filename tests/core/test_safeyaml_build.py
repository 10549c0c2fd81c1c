"""The targets file's one-pass loader (rotator.safeyaml) gives exactly what yaml.safe_load
gives, and hands anything beyond plain mappings, sequences and scalars to the bounded
composed path."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from rotator import safeyaml
from rotator.errors import YAMLRefused

LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

PLAIN = [
    "",
    "# only a comment\n",
    "a: 1\n",
    "- 1\n- 2.5\n- true\n- null\n- ~\n- 2001-12-14\n- 2001-12-14t21:59:43.10-05:00\n- 0x1F\n"
    "- 0o17\n- 1_000\n- .inf\n- -.Inf\n- .nan\n- yes\n- No\n- on\n- '123'\n- \"true\"\n",
    "a: {b: [1, {c: d}], e: []}\nf: {}\n",
    "a: 1\na: 2\n",
    "'<<': 1\n",
    "--- 5\n",
    "--- |\n  text\n  more\n",
    "a: >\n  folded\n  text\n",
    "null: 1\n1: 2\n2.5: 3\ntrue: 4\n",
    "a:\n- b\n-\n  - c\n",
    "[a, b]",
    "plain string",
    'a: "\\u00e9\\x41"\n',
    "a: 12:30:45\na2: 190:20:30\nb: -0b101\nc: +12e3\nd: 1e3\ne: 0777\nf: 09\n",
    "targets:\n  x:\n    provider: adobe\n    options: {n: 1, list: [a, 2, null]}\n",
]
COMPOSED = [
    "x: &a 1\ny: *a\n",
    "a: !!str 1\n",
    "a: {<<: {b: 1}, c: 2}\n",
    "? [1,2]\n: x\n",
    "=: 1\n",
    "a: =\n",
    "---\na: 1\n---\nb: 2\n",
    "a: 2001-13-45\n",
    "a: !custom 1\n",
]
BROKEN = ["a: b: c\n", "{a: 1", "a: [1, 2\n", "\tx: 1\n"]


def _outcome(load: Any, text: str) -> tuple[str, str]:
    try:
        return "ok", repr(load(text))
    except (yaml.YAMLError, ValueError) as exc:  # an invalid date is a ValueError in both
        return "error", f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("text", PLAIN + COMPOSED + BROKEN)
def test_same_result_or_error_as_safe_load(text: str) -> None:
    assert _outcome(safeyaml.load, text) == _outcome(lambda t: yaml.load(t, Loader=LOADER), text)


@pytest.mark.parametrize("text", PLAIN)
def test_plain_documents_take_the_one_pass_path(text: str) -> None:
    assert safeyaml._build(text) is not safeyaml._COMPOSE


@pytest.mark.parametrize("text", COMPOSED)
def test_everything_else_takes_the_composed_path(text: str) -> None:
    assert safeyaml._build(text) is safeyaml._COMPOSE


def test_equal_scalars_share_one_object() -> None:
    data = safeyaml.load("a: {provider: adobe}\nb: {provider: adobe}\n")
    assert data["a"]["provider"] is data["b"]["provider"]


def test_deep_nesting_is_refused_on_the_one_pass_path() -> None:
    depth = safeyaml.MAX_DEPTH + 1
    with pytest.raises(YAMLRefused, match=f"nesting deeper than {safeyaml.MAX_DEPTH} levels"):
        safeyaml.load("a: " + "[" * depth + "]" * depth)


def test_an_alias_bomb_is_still_refused() -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
    with pytest.raises(YAMLRefused, match="alias bomb"):
        safeyaml.load(bomb)


def test_load_plain_builds_plain_documents_only_and_takes_a_lower_nesting_limit() -> None:
    assert safeyaml.load_plain("a: {b: [1, x]}\n") == (True, {"a": {"b": [1, "x"]}})
    for needs_composing in ("a: &x 1\nb: *x\n", "a: !!str 1\n", "a: 1\n---\nb: 2\n"):
        assert safeyaml.load_plain(needs_composing) == (False, None)
    # A piece one level down a document gets one level less
    nested = "k: " + "[" * (safeyaml.MAX_DEPTH - 1) + "]" * (safeyaml.MAX_DEPTH - 1) + "\n"
    assert safeyaml.load_plain(nested)[0] is True
    with pytest.raises(YAMLRefused, match="nesting deeper"):
        safeyaml.load_plain(nested, safeyaml.MAX_DEPTH - 1)
