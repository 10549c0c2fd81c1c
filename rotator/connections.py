"""Redis clients from one URL, plain or through Redis Sentinel; the broker URL kombu needs.

Every part of rotator that talks to the state store builds its client here, from
``ROTATOR_REDIS_URL``. Besides redis-py's own ``redis://``, ``rediss://`` and ``unix://``, a
Sentinel URL names the sentinels and the master's name::

    sentinel://[[user]:password@]host:port[,host:port...][/db]?master=NAME
               [&sentinel_password=...][&sentinel_username=...]

The user and password are the data nodes' (the master's); ``sentinel_password`` is the
sentinels' own, when they have one (``requirepass`` in sentinel.conf). kombu's spelling
(``sentinel://h1:26379;sentinel://h2:26379``) is accepted too, with the master in
``?master=``. The client asks the sentinels for the master's address on every new connection,
and a connection that finds it has reached a demoted master (``READONLY``) reconnects, so a
failover costs the commands that were in flight, not a restart.

The Celery broker uses the same URL: ``broker_url_and_options`` turns it into kombu's Sentinel
spelling and the transport options (``master_name``, ``sentinel_kwargs``) its Sentinel transport
reads (``rotator.broker.QuarantiningSentinelTransport``).

Redis Cluster is not supported: Celery's Redis broker cannot use it, and rotator's Lua scripts
touch keys of several targets and jobs at once (README, "Redis high availability").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

if TYPE_CHECKING:  # settings parse URLs here, and the engine's imports stay free of redis
    import redis
    import redis.asyncio as aioredis

SENTINEL_SCHEME = "sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``sentinel://`` URL. The passwords never show in a repr."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    def sentinel_kwargs(self, **socket: Any) -> dict[str, Any]:
        """What the connections to the sentinels themselves take."""
        kwargs = dict(socket)
        if self.sentinel_username:
            kwargs["username"] = self.sentinel_username
        if self.sentinel_password:
            kwargs["password"] = self.sentinel_password
        return kwargs

    def master_kwargs(self) -> dict[str, Any]:
        """What the connections to the master take (its database and credentials)."""
        kwargs: dict[str, Any] = {"db": self.db}
        if self.username:
            kwargs["username"] = self.username
        if self.password:
            kwargs["password"] = self.password
        return kwargs


def is_sentinel(url: str | None) -> bool:
    return bool(url) and str(url).partition("://")[0] == SENTINEL_SCHEME


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse a ``sentinel://`` URL; ``ValueError`` says what is wrong, never echoing a password."""
    if not is_sentinel(url):
        raise ValueError("not a sentinel:// URL")
    # kombu's form repeats the scheme per sentinel, separated by ';'.
    body = url.removeprefix("sentinel://").replace(";sentinel://", ",")
    parts = urlsplit("sentinel://" + body)
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, sep, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if sep and secret else None
    sentinels = []
    for entry in netloc.split(","):
        entry = entry.strip()
        if not entry:
            continue
        if entry.startswith("["):  # [ipv6]:port
            host, _, rest = entry[1:].partition("]")
            port_text = rest.removeprefix(":")
        else:
            host, _, port_text = entry.rpartition(":") if ":" in entry else (entry, "", "")
        if not host:
            raise ValueError(f"sentinel address {entry!r} has no host")
        try:
            port = int(port_text) if port_text else DEFAULT_SENTINEL_PORT
        except ValueError:
            raise ValueError(f"sentinel address {entry!r} has no valid port") from None
        if not 0 < port < 65536:
            raise ValueError(f"sentinel address {entry!r} has no valid port")
        sentinels.append((host, port))
    if not sentinels:
        raise ValueError("names no sentinel (sentinel://host:26379,host2:26379/0?master=NAME)")
    path = parts.path.strip("/")
    try:
        db = int(path) if path else 0
    except ValueError:
        raise ValueError(f"database {path!r} is not a number") from None
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    master = query.pop("master", "") or query.pop("master_name", "")
    if not master:
        raise ValueError("names no master: add ?master=NAME (the name the sentinels monitor)")
    sentinel_username = query.pop("sentinel_username", "") or None
    sentinel_password = query.pop("sentinel_password", "") or None
    if query:
        raise ValueError(f"unknown parameter(s) {', '.join(sorted(query))}")
    return SentinelURL(
        tuple(sentinels),
        master,
        db,
        username,
        password,
        sentinel_username,
        sentinel_password,
    )


@functools.cache
def _blocking_sentinel_pool() -> type[Any]:
    import redis.asyncio as aioredis
    import redis.asyncio.sentinel as aiosentinel

    class BlockingSentinelPool(aiosentinel.SentinelConnectionPool, aioredis.BlockingConnectionPool):
        """A Sentinel-managed pool that, like the plain one rotator uses, waits for a free
        connection instead of failing a burst with "Too many connections"."""

    return BlockingSentinelPool


def async_redis(url: str, *, blocking: bool = False, **kwargs: Any) -> aioredis.Redis:
    """An asyncio client for ``url``. ``kwargs`` are redis-py's connection options
    (socket_timeout, health_check_interval, max_connections; ``timeout`` for a blocking pool's
    wait for a free connection)."""
    import redis.asyncio as aioredis
    import redis.asyncio.sentinel as aiosentinel

    if is_sentinel(url):
        target = parse_sentinel_url(url)
        socket = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
        manager = aiosentinel.Sentinel(  # type: ignore[no-untyped-call]
            target.sentinels, sentinel_kwargs=target.sentinel_kwargs(**socket)
        )
        pool_class = _blocking_sentinel_pool() if blocking else aiosentinel.SentinelConnectionPool
        if not blocking:
            kwargs.pop("timeout", None)
        client: aioredis.Redis = manager.master_for(
            target.master,
            connection_pool_class=pool_class,
            **target.master_kwargs(),
            **kwargs,
        )
        return client
    if blocking:
        return aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(url, **kwargs)
        )
    return aioredis.Redis.from_url(url, **kwargs)


def sync_redis(url: str, **kwargs: Any) -> redis.Redis:
    """A blocking client for ``url``; ``kwargs`` are redis-py's connection options."""
    import redis
    import redis.sentinel

    if is_sentinel(url):
        target = parse_sentinel_url(url)
        socket = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
        manager = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            target.sentinels, sentinel_kwargs=target.sentinel_kwargs(**socket)
        )
        sync: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call]
            target.master, **target.master_kwargs(), **kwargs
        )
        return sync
    return redis.Redis.from_url(url, **kwargs)


def broker_url_and_options(url: str) -> tuple[str, dict[str, Any]]:
    """The broker URL as kombu reads it, and the transport options it needs besides.

    A Sentinel URL becomes one kombu URL (``sentinel://:pw@h1:p1/db``, the master's database
    and credentials), with every sentinel, the master's name and the sentinels' credentials as
    transport options (``rotator.broker.QuarantiningSentinelChannel`` says why not kombu's
    ``;``-separated list); any other URL is returned as it is."""
    if not is_sentinel(url):
        return url, {}
    target = parse_sentinel_url(url)
    userinfo = ""
    if target.username or target.password:
        userinfo = (
            f"{quote(target.username or '', safe='')}:{quote(target.password or '', safe='')}@"
        )
    host, port = target.sentinels[0]
    host = f"[{host}]" if ":" in host else host
    options: dict[str, Any] = {
        "master_name": target.master,
        "sentinels": [list(address) for address in target.sentinels],
    }
    sentinel_kwargs = target.sentinel_kwargs()
    if sentinel_kwargs:
        options["sentinel_kwargs"] = sentinel_kwargs
    return f"sentinel://{userinfo}{host}:{port}/{target.db}", options


__all__ = [
    "SentinelURL",
    "async_redis",
    "broker_url_and_options",
    "is_sentinel",
    "parse_sentinel_url",
    "sync_redis",
]
