"""Every command's --help reads well: each option has help and a metavar, nothing is labelled
by its Python type (``<bool>``, ``<str>``); ``--version`` and shell completion exist."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from rotator import __version__
from rotator.cli import app, command

BARE = re.compile(r"<(bool|str|int|float|path|list\[[a-z]+\]|[a-z]+)>")


def walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, node
    for name in sorted(getattr(node, "commands", {})):
        yield from walk(node.commands[name], (*path, name))


def test_every_option_has_help_and_a_metavar() -> None:
    problems = []
    for path, node in walk(command()):
        for param in node.params:
            if param.param_type_name != "option":
                continue
            where = f"rotator {' '.join(path)} {param.opts[0]}"
            if not param.help:
                problems.append(f"{where}: no help")
            if not param.is_flag and not param.metavar:
                problems.append(f"{where}: no metavar")
    assert problems == []


def test_no_help_page_shows_a_bare_type_label(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    root = command()
    # The runner builds its command from the app; give it the one `rotator` really runs.
    monkeypatch.setattr("typer.testing._get_command", lambda _app: root)
    pages = 0
    for path, _node in walk(root):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"}, prog_name="rotator")
        assert result.exit_code == 0, (path, result.output)
        assert not BARE.findall(result.output), (path, result.output)
        pages += 1
    assert pages > 30  # every command and group, not just the root


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", *args], capture_output=True, text=True, timeout=60
    )


def test_version_through_the_real_cli() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"rotator {__version__}\n"


def test_shell_completion_is_offered_and_completes_commands() -> None:
    # The script for bash is printed on request...
    result = run("--show-completion", "bash")
    assert result.returncode == 0, result.stderr
    assert "_ROTATOR_COMPLETE" in result.stdout or "complete" in result.stdout
    # ...and the completion protocol answers with the real commands.
    env = {"_ROTATOR_COMPLETE": "complete_bash", "COMP_WORDS": "rotator enq", "COMP_CWORD": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "from rotator.cli import main; main()"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, **env},
    )
    assert "enqueue" in done.stdout, (done.stdout, done.stderr)


def test_flags_keep_working_after_the_help_tidy(monkeypatch: pytest.MonkeyPatch) -> None:
    root = command()
    monkeypatch.setattr("typer.testing._get_command", lambda _app: root)
    result = CliRunner().invoke(app, ["enqueue", "--help"], prog_name="rotator")
    assert "--wait" in result.output and "--secret" in result.output
