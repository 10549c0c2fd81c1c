"""Without the ``rotator[sandbox]`` extra the command line still works, and the two sandbox
commands say what to install. The extra's absence is simulated in a subprocess by making
``import starlette`` / ``import uvicorn`` fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rotator.cli.sandbox import MISSING_EXTRA

# argv after -c is the rotator command line; sys.modules[name] = None makes `import name` fail.
WITHOUT_EXTRA = """
import sys
for name in ("starlette", "uvicorn"):
    sys.modules[name] = None
from rotator.cli import main
sys.argv = ["rotator", *sys.argv[1:]]
main()
"""

# Prints the rotator/server modules a command imported, whatever it exits with.
IMPORTS_OF = """
import json, sys
from rotator.cli import main
sys.argv = ["rotator", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "rotator.yaml").write_text(
        "secrets:\n  s1: {source: generate}\n"
        "targets:\n  t1: {provider: adobe, base_url: 'https://a.example', resource_id: r1,"
        " secret: s1, schedule: 30d, first_rotation: now, options: {org_id: o@AdobeOrg},"
        " credentials: {client_id: 'env:T_ID', client_secret: 'env:T_SECRET'}}\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    environ.update(
        ROTATOR_STATE_DIR=str(tmp_path / "state"),
        ROTATOR_TARGETS_FILE=str(tmp_path / "rotator.yaml"),
        ROTATOR_ALLOWED_HOSTS="adobe=a.example",
        COLUMNS="200",
        T_ID="id",
        T_SECRET="secret",
    )
    return environ


def run(code: str, env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", [["--help"], ["worker", "--help"], ["config", "check"]])
def test_the_command_line_works_without_the_extra(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    result = run(WITHOUT_EXTRA, env, tmp_path, *args)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", ["sandbox", "demo"])
def test_sandbox_commands_name_the_extra(command: str, env: dict[str, str], tmp_path: Path) -> None:
    result = run(WITHOUT_EXTRA, env, tmp_path, command)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {MISSING_EXTRA}\n"
    assert not (tmp_path / ".rotator").exists()  # the demo stopped before creating anything


@pytest.mark.parametrize("args", [["--help"], ["worker", "--help"], ["audit", "--help"]])
def test_help_imports_neither_the_sandbox_nor_its_server(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    result = run(IMPORTS_OF, env, tmp_path, *args)
    modules = json.loads(result.stdout.splitlines()[-1])
    heavy = ("rotator.sandbox", "rotator.demo", "starlette", "uvicorn")
    assert [m for m in modules if m.startswith(heavy)] == []
