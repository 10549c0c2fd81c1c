"""Every command meets an unreachable Redis with one clear line and exit code 2, not redis-py's
80-line traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tools.common import free_port

JOB = "0123456789abcdef0123456789abcdef"

COMMANDS = [
    ["status"],
    ["enqueue", "t"],
    ["jobs"],
    ["jobs", "--json"],
    ["job", JOB],
    ["run", "--once"],
    ["secrets", "put", "s"],
    ["keys", "rotate"],
    ["audit", "list"],
    ["audit", "verify"],
    ["audit", "export"],
    ["report"],
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp: Path = tmp_path_factory.mktemp("unreachable")
    (tmp / "rotator.yaml").write_text(
        "secrets:\n  s:\n    source: file\n    path: s.json\n"
        "targets:\n  t:\n    provider: adobe\n    base_url: https://platform.adobe.io\n"
        "    resource_id: r\n    secret: s\n"
        "    credentials: {client_id: env:X_ID, client_secret: env:X_SECRET}\n"
        "    options: {ims_url: 'https://ims-na1.adobelogin.com', org_id: o}\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    return {
        **base,
        "ROTATOR_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
        "ROTATOR_AUDIT_KEY": "unreachable-test-audit-key-at-least-32-bytes",
        "ROTATOR_TARGETS_FILE": str(tmp / "rotator.yaml"),
        "ROTATOR_STATE_DIR": str(tmp / "state"),
        "X_ID": "id",
        "X_SECRET": "secret",
    }


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", *args],
        env=env,
        input='{"password": "p"}',
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_one_line_and_exit_2(args: list[str], env: dict[str, str]) -> None:
    result = _run(args, env)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Redis" in lines[0], lines
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_plan_works_without_state_and_says_so(env: dict[str, str]) -> None:
    # `rotator plan` is a preflight: without Redis it still plans, and says what it did not read.
    result = _run(["plan"], env)
    assert "Traceback" not in result.stderr
    notes = result.stdout.splitlines() + result.stderr.splitlines()
    assert any("Redis is unreachable" in line for line in notes), result
