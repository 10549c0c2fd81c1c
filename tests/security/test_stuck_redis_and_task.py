"""Issue 10.11: a Redis that stops answering, or a task that overruns, cannot pin a worker.

A Redis connection that accepts and then says nothing (a half-open socket, a paused VM) used to
block a command forever; Celery's threads pool ignores ``task_time_limit``, so a stuck
rotation held its thread for good.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet

from rotator import celeryconfig, tasks
from rotator.config import load_settings
from rotator.models import new_job_id
from rotator.runtime import ConfigHolder, LoopThread, Runtime


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_runtime_redis_command_times_out_on_a_silent_server(
    silent_redis: str, tmp_path: Path
) -> None:
    # Given a worker runtime whose Redis accepts connections and never replies
    settings = load_settings(
        redis_url=silent_redis,
        master_key=Fernet.generate_key().decode(),
        audit_key="k" * 32,
        targets_file=tmp_path / "rotator.yaml",
        state_dir=tmp_path / "state",
        redis_socket_timeout=1.0,
    )

    async def ping() -> float:
        runtime = Runtime(settings, ConfigHolder(settings, lenient=True))
        started = time.monotonic()
        try:
            # The outer bound only keeps this test from hanging on unfixed code.
            with pytest.raises(redis.TimeoutError):
                await asyncio.wait_for(runtime.redis.ping(), timeout=20)
            return time.monotonic() - started
        finally:
            await runtime.redis.aclose()

    # When a command is sent, Then it fails after the socket timeout instead of hanging
    assert asyncio.run(ping()) < 10


def test_loop_wait_is_bounded_and_cancels_the_work() -> None:
    loop = LoopThread()
    cancelled = threading.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        loop.run(stuck(), timeout=0.3)
    assert time.monotonic() - started < 5
    assert cancelled.wait(5), "the coroutine kept running after the wait gave up"
    loop.loop.call_soon_threadsafe(loop.loop.stop)


def test_rotate_task_frees_its_thread_at_the_soft_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a worker whose rotation never finishes (a peer or Redis that hangs)
    loop = LoopThread()
    cancelled = threading.Event()

    class StuckRuntime:
        async def process(self, job_id: str) -> str:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return "never"

    monkeypatch.setattr(tasks, "process_runtime", lambda: (loop, StuckRuntime()))
    monkeypatch.setattr(celeryconfig, "task_soft_time_limit", 0.5)
    # When the rotate task runs on a Celery thread, Then the thread gets control back at the
    # time limit (the threads pool does not enforce it) and the stuck work is cancelled
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        tasks.rotate.run([new_job_id()])
    assert time.monotonic() - started < 5
    assert cancelled.wait(5)
    loop.loop.call_soon_threadsafe(loop.loop.stop)
