"""A failing task must not leave an event loop (and its thread) behind on every call."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from redis.exceptions import RedisError

from rotator import runtime, tasks
from rotator.models import new_job_id
from tools.common import free_port

# What a build against a closed port raises (redis-py's ConnectionError, or the OS's).
FAILS = (RedisError, OSError)


@pytest.fixture
def unreachable_redis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The environment of a worker whose Redis went away: every runtime build fails."""
    (tmp_path / "rotator.yaml").write_text("targets: {}\n")
    for name, value in {
        "ROTATOR_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
        "ROTATOR_AUDIT_KEY": "leak-test-audit-key-at-least-32-bytes",
        "ROTATOR_TARGETS_FILE": str(tmp_path / "rotator.yaml"),
        "ROTATOR_STATE_DIR": str(tmp_path / "state"),
        "ROTATOR_REDIS_SOCKET_TIMEOUT": "1",
    }.items():
        monkeypatch.setenv(name, value)
    # Logging is process-wide: leave the test session's configuration alone.
    monkeypatch.setattr(runtime, "configure_logging", lambda settings: None)
    monkeypatch.setattr(runtime, "_process", None)
    monkeypatch.setattr(runtime, "_process_pid", None)
    monkeypatch.setattr(runtime, "_loop", None)
    monkeypatch.setattr(runtime, "_loop_pid", None)
    yield
    runtime.shutdown_process_runtime()


def test_failing_task_calls_leave_the_thread_count_flat(unreachable_redis: None) -> None:
    # Given a worker process whose runtime cannot be built (Redis refuses connections)
    job = new_job_id()
    with pytest.raises(FAILS):
        tasks.rotate.run([job])  # the first call may start the one loop thread
    before = threading.active_count()
    # When the rotate and dispatch task bodies fail 50 more times
    for _ in range(25):
        with pytest.raises(FAILS):
            tasks.rotate.run([job])
        with pytest.raises(FAILS):
            tasks.dispatch.run()
    # Then no thread (event loop) was left behind by any of them
    assert threading.active_count() == before


def test_failing_api_calls_leave_the_thread_count_flat(unreachable_redis: None) -> None:
    # Given the Python API, which runs one event loop per call
    from rotator import api

    with pytest.raises(FAILS):
        api.job(new_job_id())
    before = threading.active_count()
    # When 50 calls fail because Redis refuses connections
    for _ in range(50):
        with pytest.raises(FAILS):
            api.job(new_job_id())
    # Then each call's loop (and any executor thread it started) is gone
    assert threading.active_count() == before
