"""The chaos experiment, reduced for CI: tens of targets, a handful of kills, a fixed seed.

The full run is ``make chaos`` (README, "Chaos experiment"). This one starts its own Redis
(with AOF), the sandbox, two workers and beat, kills workers, beat and Redis while faults are
injected, lets everything converge and asserts every invariant. It runs twice: against one
Redis restarted from its AOF, and in Sentinel mode (a primary, a replica and three sentinels,
the workers waiting for the replica on every durable write), where each Redis kill hits the
primary and forces a failover.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.chaos import ChaosOptions, run

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

REDUCED = ChaosOptions(
    seed=20240611,
    targets=25,  # five per provider, blue-green and generated sources included
    duration=35.0,
    workers=2,
    concurrency=8,
    kill_interval=5.0,
    beat_kill_interval=12.0,
    redis_restart_interval=14.0,
    burst_interval=3.0,
    burst_size=8,
    oob_interval=1.0,
    converge_timeout=90.0,
)


MODES = {
    "single-redis": {},
    # About three kill -9s of the primary, each a Sentinel failover.
    "sentinel": {"sentinel": True, "redis_restart_interval": 11.0},
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", MODES)
def test_no_credential_is_lost_under_kills_restarts_and_faults(
    mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the system under kills, restarts and provider faults for the reduced duration
    options = ChaosOptions(**{**vars(REDUCED), **MODES[mode], "output_dir": tmp_path / "chaos"})

    # When it has converged and the invariants are checked
    report = run(options, out=lambda line: None)

    # Then every invariant holds (the figures are printed either way)
    with capsys.disabled():
        print()
        for line in report.lines():
            print(f"chaos {mode} | {line}")
    assert report.tally.worker_kills >= 3
    assert report.tally.redis_restarts >= 1
    if options.sentinel:
        assert report.tally.failovers >= 1, "no kill of the primary led to a failover"
    assert report.converged, "jobs were still open at the convergence deadline"
    failed = [f"{c.name}: {c.problems[:5]}" for c in report.checks if c.problems]
    assert not failed, failed
