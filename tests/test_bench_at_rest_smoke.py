"""The at-rest benchmark runs end to end, and what it leaves at rest is only what must stay.
Its figures are printed, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_at_rest_benchmark_leaves_only_per_target_state(tmp_path: Path) -> None:
    out = tmp_path / "rest.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.bench_at_rest", "--targets", "12", "--rotations", "3"]
        + ["--versions-kept", "2", "--synthesize", "200", "--json-out", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    real = json.loads(out.read_text())["real"]
    # Given 12 targets rotated 3 times each, every job completed
    assert real["states"] == {"completed": 36}
    # When retention ran: every job expired, versions pruned to 2, the audit archived
    assert real["expired_jobs"] == 36
    assert real["pruned_versions"] == 12
    assert real["archived_events"] > 36
    # Then no job, journal, audit index or sequence key is left; per target only these stay
    per_target = {name for name, row in real["components"].items() if row["keys"] == 12}
    assert per_target == {
        "target:{name}",
        "secret:{name}:versions",
        "secret:{name}:fingerprints",
    }
    assert not [n for n in real["components"] if n.startswith(("job:", "audit:job", "audit:t"))]
    assert {"jobs:index", "jobs:due"}.isdisjoint(real["components"])
    assert real["synthesized"]["targets"] == 200
