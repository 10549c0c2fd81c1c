"""Log format: human-readable on a terminal, JSON for everything else, ROTATOR_LOG_JSON wins."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import structlog
from rotator.config import load_settings
from rotator.runtime import configure_logging
configure_logging(load_settings())
with structlog.contextvars.bound_contextvars(job_id="j1", target="crm"):
    structlog.get_logger("t").warning("rotation ended without success")
"""


def run(tmp_path: Path, *, tty: bool, log_json: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env["ROTATOR_STATE_DIR"] = str(tmp_path)
    if log_json is not None:
        env["ROTATOR_LOG_JSON"] = log_json
    if not tty:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stderr
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=follower,
            timeout=60,
            check=True,
        )
        assert done.returncode == 0
        return os.read(leader, 65536).decode()
    finally:
        os.close(leader)
        os.close(follower)


def test_json_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    line = json.loads(run(tmp_path, tty=False).strip())
    assert {k: line[k] for k in ("event", "level", "job_id", "target")} == {
        "event": "rotation ended without success",
        "level": "warning",
        "job_id": "j1",
        "target": "crm",
    }


def test_readable_on_a_terminal(tmp_path: Path) -> None:
    text = run(tmp_path, tty=True)
    assert "[warning  ] rotation ended without success" in text
    assert "job_id=j1" in text and "target=crm" in text
    assert not text.lstrip().startswith("{")


@pytest.mark.parametrize(
    ("setting", "tty", "is_json"), [("true", True, True), ("false", False, False)]
)
def test_the_setting_overrides_the_terminal_check(
    tmp_path: Path, setting: str, tty: bool, is_json: bool
) -> None:
    text = run(tmp_path, tty=tty, log_json=setting).strip()
    assert text.startswith("{") is is_json, text
