"""``rotator embedded status|stop`` against a real embedded Redis in a temporary state dir."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rotator import embedded
from rotator.cli import app

pytestmark = pytest.mark.integration


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "s"  # unix socket paths are short
    yield directory
    embedded.stop(directory)


def invoke(state: Path, *args: str, code: int) -> str:
    env = {"ROTATOR_STATE_DIR": str(state), "ROTATOR_REDIS_URL": None, "COLUMNS": "300"}
    result = CliRunner().invoke(app, ["embedded", *args], env=env)
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result.stdout


def test_status_and_stop(state: Path) -> None:
    # Given a running embedded server
    embedded.ensure_running(state)
    sock = embedded.socket_path(state)
    pid = embedded.server_pid(state)
    assert pid is not None

    # When asked, status says it runs (exit 0), in words and in JSON
    assert invoke(state, "status", code=0) == f"embedded Redis at {sock}: running (pid {pid})\n"
    assert json.loads(invoke(state, "status", "--json", code=0)) == {
        "running": True,
        "socket": str(sock),
        "pid": pid,
        "in_use": True,
    }

    # Then stop shuts it down, status exits 1, and a second stop is a no-op
    assert invoke(state, "stop", code=0) == f"embedded Redis at {sock}: stopped\n"
    assert not embedded.running(state)
    assert invoke(state, "status", code=1) == f"embedded Redis at {sock}: not running\n"
    assert json.loads(invoke(state, "stop", "--json", code=0)) == {
        "stopped": False,
        "socket": str(sock),
    }


def test_status_notes_when_a_redis_url_replaces_it(tmp_path: Path) -> None:
    env = {"ROTATOR_STATE_DIR": str(tmp_path), "ROTATOR_REDIS_URL": "redis://r.invalid:1/0"}
    result = CliRunner().invoke(app, ["embedded", "status"], env={**env, "COLUMNS": "300"})
    assert result.exit_code == 1
    assert result.stdout.endswith("not running; not used: ROTATOR_REDIS_URL is set\n")
