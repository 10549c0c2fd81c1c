"""A plain `pip install .` (no extras) gives a working worker, without the sandbox's server stack."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

from tests.providers.test_config_options import provision_example

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.timeout(900)
def test_plain_install_runs_the_worker_without_sandbox_dependencies(tmp_path: Path) -> None:
    # Given a fresh virtual environment with rotator installed without extras
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    install = _run(
        str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(ROOT), cwd=tmp_path
    )
    assert install.returncode == 0, install.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATOR_", "PYTHON"))}
    env["ROTATOR_TARGETS_FILE"] = str(ROOT / "deploy" / "rotator.example.yaml")
    # the example's self-hosted products, as deploy/rotator.env.example allows them
    env["ROTATOR_ALLOWED_HOSTS"] = (
        "uipath=automation.example.com,ciphertrust=ciphertrust.example.com"
    )
    provision_example(env, tmp_path)
    try:
        # Then the sandbox's server stack is absent and no global celeryconfig module is installed
        listed = _run(str(bin_dir / "python"), "-m", "pip", "list", "--format=freeze", cwd=tmp_path)
        names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
        assert "starlette" not in names and "uvicorn" not in names
        probe = _run(str(bin_dir / "python"), "-c", "import celeryconfig", cwd=tmp_path, env=env)
        assert probe.returncode != 0

        # And the worker's commands and its Celery app (with the Redis transport) load
        for args in (["--help"], ["worker", "--help"], ["config", "check"]):
            result = _run(str(bin_dir / "rotator"), *args, cwd=tmp_path, env=env)
            assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
        app = _run(
            str(bin_dir / "python"),
            "-c",
            "import kombu.transport.redis; from rotator.app import app; print(app.conf.task_acks_late)",
            cwd=tmp_path,
            env=env,
        )
        assert app.stdout.strip() == "True", app.stderr[-2000:]
        lua = list((tmp_path / "venv").glob("lib/python*/site-packages/rotator/store/lua/*.lua"))
        assert lua, "the store's Lua scripts are missing from the wheel"

        # And the sandbox says which extra it needs, in one line
        sandbox = _run(str(bin_dir / "rotator"), "sandbox", cwd=tmp_path, env=env)
        assert sandbox.returncode != 0
        assert "pip install 'rotator[sandbox]'" in sandbox.stdout + sandbox.stderr
        assert "Traceback" not in sandbox.stdout + sandbox.stderr
    finally:
        # `config check` started the embedded Redis (no ROTATOR_REDIS_URL): stop it, or every
        # run of this test leaves a redis-server behind.
        _run(str(bin_dir / "rotator"), "embedded", "stop", cwd=tmp_path, env=env)
