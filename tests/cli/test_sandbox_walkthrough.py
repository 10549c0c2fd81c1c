"""The README's "Try it on your own targets file" walkthrough, verbatim, through real processes
(issue 12.1, 12.4): ``rotator sandbox --targets`` seeds every target and writes the env the
file expects; with that env, ``config check``, ``enqueue`` and ``run --once`` succeed, and a
mistyped target name gets "did you mean"."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tools.common import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- walkthrough-targets -->"


def walkthrough_file(port: int) -> str:
    text = README.read_text()
    block = text[text.index(MARKER) :]
    yaml = re.search(r"```yaml\n(.*?)```", block, re.S)
    assert yaml, "README walkthrough has no yaml block after its marker"
    return yaml.group(1).replace("127.0.0.1:8765", f"127.0.0.1:{port}")


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    port = free_port()
    (tmp_path / "rotator.yaml").write_text(walkthrough_file(port))
    stderr = tmp_path / "sandbox.err"
    with stderr.open("w") as err:
        # As in the README: no --port, the sandbox serves where the file points.
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rotator",
                "sandbox",
                "--targets",
                "rotator.yaml",
                "--env-file",
                "sandbox.env",
            ],  # fmt: skip
            cwd=tmp_path,
            env=_base_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        while "ready" not in stderr.read_text():
            assert proc.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, "sandbox never became ready"
            time.sleep(0.1)
        yield tmp_path, stderr.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = shlex.split(value)[0]
    return env


def test_walkthrough_verbatim(seeded: tuple[Path, str], redis_url: str, key_prefix: str) -> None:
    tmp, banner = seeded
    assert "/_sandbox/" in banner  # the admin API is in the banner
    assert banner.count(" -> /_sandbox/") == 4  # one seeded resource per target
    sandbox_env = tmp / "sandbox.env"
    assert sandbox_env.stat().st_mode & 0o077 == 0
    exported = _env_file(sandbox_env)
    assert {"ADOBE_CLIENT_ID", "CTM_PASSWORD", "AWS_KEY_ID", "ROTATOR_INSECURE_HOSTS"} <= set(
        exported
    )
    env = {
        **_base_env(),
        **exported,
        # The test's Redis instead of the embedded one: the shared server, own key prefix.
        "ROTATOR_REDIS_URL": redis_url,
        "ROTATOR_KEY_PREFIX": key_prefix,
        "ROTATOR_QUEUE": f"{key_prefix}q",
        "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
        "ROTATOR_AUDIT_KEY": "walkthrough-audit-key-at-least-32-bytes",
        "ROTATOR_STATE_DIR": str(tmp / "state"),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rotator", *args],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    check = cli("config", "check")
    assert check.returncode == 0, check.stderr
    typo = cli("enqueue", "adobe-sfd")
    assert typo.returncode != 0
    assert "did you mean 'adobe-sfdc'?" in " ".join(typo.stderr.split())  # rich wraps
    typo = cli("plan", "adobe-sfd")
    assert typo.returncode == 2, typo.stdout + typo.stderr
    assert "did you mean 'adobe-sfdc'?" in " ".join(typo.stderr.split())
    enqueued = cli("enqueue", "adobe-sfdc")
    assert enqueued.returncode == 0, enqueued.stderr
    run = cli("run", "--once", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)
    assert summary.get("completed", 0) >= 1, summary
    status = cli("status", "--json")
    rows = {row["target"]: row for row in json.loads(status.stdout)}
    assert rows["adobe-sfdc"]["current"], rows


def test_env_printed_without_env_file(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "rotator.yaml").write_text(walkthrough_file(port))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rotator",
            "sandbox",
            "--targets",
            "rotator.yaml",
            "--port",
            str(port),
        ],  # fmt: skip
        cwd=tmp_path,
        env=_base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("export CL_CLIENT_SECRET=") for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            lines.append(proc.stdout.readline())
        assert any(line.startswith("export ROTATOR_INSECURE_HOSTS=") for line in lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
