"""Liveness does not depend on configuration (issue 12.3): the Docker HEALTHCHECK and the
Kubernetes livenessProbe run ``python -m rotator.liveness``, which passes for a live rotator
process even when the targets file is broken, and fails for a process that is not rotator."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _health(pid: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rotator.yaml").write_text("targets: [broken\n")
    env = {**os.environ, "ROTATOR_TARGETS_FILE": str(tmp_path / "rotator.yaml")}
    return subprocess.run(
        [sys.executable, "-m", "rotator.liveness", str(pid)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_live_rotator_process_is_healthy_with_a_broken_targets_file(tmp_path: Path) -> None:
    # A live process whose command line is rotator's, like PID 1 in the container.
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "rotator", "worker"]
    )
    try:
        result = _health(proc.pid, tmp_path)
        assert result.returncode == 0, result.stderr
    finally:
        proc.kill()
        proc.wait()


def test_other_or_dead_process_is_unhealthy(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        assert _health(proc.pid, tmp_path).returncode == 1
    finally:
        proc.kill()
    # Killed but not yet reaped: a zombie (wait for the kernel to say so, not for a delay).
    stat = Path(f"/proc/{proc.pid}/stat")
    deadline = time.monotonic() + 30
    while stat.read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    result = _health(proc.pid, tmp_path)
    assert result.returncode == 1 and "state Z" in result.stderr
    proc.wait()


def test_docker_and_kubernetes_liveness_do_not_run_config_check() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    health = dockerfile[dockerfile.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "rotator.liveness" in health and "config" not in health
    worker = (ROOT / "deploy" / "kubernetes" / "worker.yaml").read_text()
    liveness = worker[worker.index("livenessProbe:") :].split("resources:")[0]
    assert "rotator.liveness" in liveness and "config" not in liveness
    readiness = worker[worker.index("readinessProbe:") :].split("livenessProbe:")[0]
    assert '"config", "check"' in readiness  # readiness keeps the configuration check
