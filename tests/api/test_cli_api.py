"""`rotator api` as an operator starts it: misconfiguration is one line and exit 2, Redis down
is 503 JSON (not a traceback), and without the extra the command names what to install."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from rotator.cli.api import MISSING_EXTRA
from tools.common import free_port

from .conftest import api_env, start_api, stop

pytestmark = pytest.mark.integration


def run_api(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", "api", "--port", str(free_port())],
        env={**env, "COLUMNS": "300"},  # rich wraps stderr at 80 columns otherwise
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ("", "ROTATOR_API_TOKENS: no API tokens configured"),
        ("bot:admin:" + "0" * 64, "scopes must be among"),
        ("bot:read:not-hex", "64 hex characters"),
    ],
)
def test_bad_token_settings_exit_2_with_one_clear_line(
    tmp_path: Path, redis_url: str, tokens: str, message: str
) -> None:
    env = api_env(tmp_path, redis_url, f"rotator-test:{uuid.uuid4().hex[:12]}:", {})
    env["ROTATOR_API_TOKENS"] = tokens
    result = run_api(env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_keys_exit_2(tmp_path: Path, redis_url: str) -> None:
    env = api_env(tmp_path, redis_url, f"rotator-test:{uuid.uuid4().hex[:12]}:", {"bot": "t" * 40})
    del env["ROTATOR_MASTER_KEY"]
    result = run_api(env)
    assert result.returncode == 2
    assert "ROTATOR_MASTER_KEY" in result.stderr and "Traceback" not in result.stderr


def test_redis_down_is_503_json(tmp_path: Path) -> None:
    token = "t" * 40
    env = api_env(
        tmp_path, f"redis://127.0.0.1:{free_port()}/0", "rotator-test:down:", {"bot": token}
    )
    process, url = start_api(env, tmp_path / "api.log")
    try:
        headers = {"Authorization": f"Bearer {token}"}
        ready = httpx.get(url + "/v1/readyz", timeout=30)
        call = httpx.post(url + "/v1/targets/crm/rotations", headers=headers, timeout=30)
    finally:
        stop(process)
    assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
    assert call.status_code == 503, call.text
    assert call.json()["error"]["code"] in ("store_unavailable", "audit_unavailable")
    assert "Traceback" not in call.text


WITHOUT_EXTRA = """
import sys
for name in ("starlette", "uvicorn"):
    sys.modules[name] = None
from rotator.cli import main
sys.argv = ["rotator", "api"]
main()
"""


def test_without_the_extra_the_command_names_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert MISSING_EXTRA in result.stderr
