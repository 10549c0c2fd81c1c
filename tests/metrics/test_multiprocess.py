"""The worker's metric directory: fresh per worker, and dead workers' directories removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rotator import metrics


def test_a_fresh_directory_and_dead_workers_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / "metrics" / gone.stdout.strip()
    dead.mkdir(parents=True)
    (dead / "counter_1.db").write_bytes(b"x")
    mine = tmp_path / "metrics" / str(os.getpid())
    mine.mkdir()
    (mine / "counter_old.db").write_bytes(b"x")
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)

    path = metrics.use_multiprocess_dir(tmp_path)

    assert os.environ[metrics.MULTIPROC_ENV] == str(path) == str(mine)
    assert list(path.iterdir()) == []
    assert not dead.exists()
