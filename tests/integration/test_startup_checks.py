"""A worker (or beat) that cannot work exits non-zero with ONE clear line, before it is ready.

It used to log ``celery@host ready.`` without ``ROTATOR_MASTER_KEY`` and raise every 5 s while
staying up, so a restart policy never reacted.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from cryptography.fernet import Fernet

from tests.integration.conftest import System
from tools.common import free_port

pytestmark = pytest.mark.integration

# "within a few seconds" on an idle machine; generous for 2 cores shared by many test runs.
LIMIT = 30.0


def _refused(command: list[str], env: dict[str, str]) -> tuple[int, list[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=LIMIT * 2, check=False
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return result.returncode, lines, time.monotonic() - started


def _assert_one_line(command: list[str], env: dict[str, str], *words: str) -> None:
    code, lines, took = _refused(command, env)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0], lines
    assert "Traceback" not in lines[0]
    assert took < LIMIT


ROTATOR = [sys.executable, "-m", "rotator"]


@pytest.mark.parametrize("kind", ["worker", "beat"])
def test_refuses_without_master_key(system: System, kind: str) -> None:
    env = {k: v for k, v in system.env.items() if k != "ROTATOR_MASTER_KEY"}
    _assert_one_line([*ROTATOR, kind], env, "ROTATOR_MASTER_KEY", "required")


def test_worker_refuses_a_master_key_that_does_not_match(system: System) -> None:
    # Given a store whose check value was written under one master key
    system.cli("jobs")
    assert system.redis.exists(f"{system.prefix}keys:check")
    # When a worker starts with another one
    env = {**system.env, "ROTATOR_MASTER_KEY": Fernet.generate_key().decode()}
    # Then it refuses, naming the variable, before writing or reporting ready
    _assert_one_line([*ROTATOR, "worker"], env, "ROTATOR_MASTER_KEY", "does not match")


def test_worker_refuses_a_too_short_audit_key(system: System) -> None:
    env = {**system.env, "ROTATOR_AUDIT_KEY": "short"}
    _assert_one_line([*ROTATOR, "worker"], env, "ROTATOR_AUDIT_KEY")


@pytest.mark.parametrize("kind", ["worker", "beat"])
def test_refuses_when_redis_is_down(system: System, kind: str) -> None:
    env = {**system.env, "ROTATOR_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    _assert_one_line([*ROTATOR, kind], env, "cannot reach Redis")


def test_worker_refuses_an_invalid_targets_file(system: System) -> None:
    (system.tmp / "bad.yaml").write_text("targets:\n  a: 1\n  b: 2\n")
    env = {**system.env, "ROTATOR_TARGETS_FILE": str(system.tmp / "bad.yaml")}
    _assert_one_line([*ROTATOR, "worker"], env, "bad.yaml", "targets.a", "1 more")


def test_worker_refuses_invalid_settings(system: System) -> None:
    env = {**system.env, "ROTATOR_DISPATCH_INTERVAL": "soon"}
    _assert_one_line([*ROTATOR, "worker"], env, "ROTATOR_DISPATCH_INTERVAL")


def test_celery_run_directly_gets_the_same_checks(system: System) -> None:
    # `celery -A rotator.app worker` (the README's alternative) is held to the same rules.
    env = {**system.env, "ROTATOR_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    command = [sys.executable, "-m", "celery", "-A", "rotator.app", "worker", "--pool", "threads"]
    code, lines, took = _refused(command, env)
    assert code == 2, lines
    ours = [line for line in lines if line.startswith("error: ")]
    assert len(ours) == 1 and "cannot reach Redis" in ours[0], lines
    assert not any("ready." in line or "Traceback" in line for line in lines), lines
    assert took < LIMIT


def test_worker_passes_unknown_options_to_celery(system: System) -> None:
    # Given options rotator does not define (Celery's own)
    process = system.start("worker", "--hostname", "rotator-test@%h", "-E")
    log = system.logs[-1]
    # Then Celery accepts them: the worker comes up under the given name
    system.wait(
        "the worker to be ready",
        lambda: "rotator-test@" in log.read_text() and "ready." in log.read_text(),
        timeout=90,
    )
    assert process.poll() is None
    system.kill("worker")
