"""The demo ends by saying how to continue, and those steps work on the file it wrote; its audit
table folds the detail column instead of cutting ids (issue 12.2)."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from rotator.demo import audit_table, continuation, demo_targets, write_targets
from tests.cli.test_sandbox_walkthrough import _base_env, _env_file
from tools.common import free_port

LONG_ID = "job-" + "0123456789abcdef" * 5  # longer than any old cut (60 characters)


def test_audit_detail_column_never_cuts_an_id() -> None:
    events = [
        {"seq": 1, "time": 0, "target": "t", "event": "job.conflict", "detail": f"see {LONG_ID}"},
        {"seq": 2, "time": 0, "target": "t", "event": "remote.read"},  # routine: hidden
    ]
    table, hidden = audit_table(events)
    assert hidden == 1
    for width in (80, 120):
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(table)
        text = console.export_text()
        # Folded across lines is fine; every character of the id must be there, in order.
        flat = "".join(ch for ch in text if ch not in "│┃ \n")
        assert LONG_ID in flat, text
        assert "…" not in text


def test_demo_continuation_steps_work_on_its_file(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    targets_file = tmp_path / "rotator.yaml"
    write_targets(targets_file, demo_targets(url))
    env = {"ROTATOR_TARGETS_FILE": str(targets_file), "DEMO_X": "1", "HOME": "/nonexistent"}
    lines = continuation(tmp_path, targets_file, env)
    used = tmp_path / "demo.env"
    assert used.stat().st_mode & 0o077 == 0
    assert "ROTATOR_TARGETS_FILE=" in used.read_text() and "HOME" not in used.read_text()
    text = "\n".join(lines)
    assert str(targets_file) in text and str(used) in text
    command = next(line.split() for line in lines if "rotator sandbox --targets" in line)
    assert command[:3] == ["rotator", "sandbox", "--targets"]
    # The printed command, as printed (no --port: the sandbox serves where the file points).
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator", *command[1:]],
        cwd=tmp_path,
        env=_base_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while not seen or "ready" not in seen[-1]:
            assert proc.poll() is None and time.monotonic() < deadline, seen
            seen.append(proc.stderr.readline())
        assert sum(" -> /_sandbox/" in line for line in seen) == 5, seen
        env_file = Path(command[command.index("--env-file") + 1])
        env_file = env_file if env_file.is_absolute() else tmp_path / env_file
        check = subprocess.run(
            [sys.executable, "-m", "rotator", "config", "check"],
            env={**_base_env(), **_env_file(env_file), "ROTATOR_STATE_DIR": str(tmp_path / "s")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0, check.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
