"""Sentinel URLs: parsed once, refused with the field's name, turned into kombu's spelling."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rotator.config import Settings, load_settings
from rotator.connections import (
    SentinelURL,
    async_redis,
    broker_url_and_options,
    parse_sentinel_url,
    sync_redis,
)
from rotator.errors import ConfigError

URL = "sentinel://:s3cret@h1:26379,h2:26380,[::1]:26381/2?master=mymaster&sentinel_password=sp"


def test_a_sentinel_url_names_every_sentinel_the_master_and_the_database() -> None:
    parsed = parse_sentinel_url(URL)

    assert parsed == SentinelURL(
        sentinels=(("h1", 26379), ("h2", 26380), ("::1", 26381)),
        master="mymaster",
        db=2,
        password="s3cret",
        sentinel_password="sp",
    )
    assert "s3cret" not in repr(parsed) and "sp'" not in repr(parsed)
    assert parsed.master_kwargs() == {"db": 2, "password": "s3cret"}
    assert parsed.sentinel_kwargs(socket_timeout=3) == {"socket_timeout": 3, "password": "sp"}


def test_kombus_own_spelling_and_the_default_port_are_accepted() -> None:
    parsed = parse_sentinel_url("sentinel://h1;sentinel://h2:26380?master=m")

    assert parsed.sentinels == (("h1", 26379), ("h2", 26380))
    assert (parsed.master, parsed.db, parsed.password) == ("m", 0, None)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sentinel://h1:26379/0", "names no master"),
        ("sentinel:///0?master=m", "names no sentinel"),
        ("sentinel://h1:port/0?master=m", "no valid port"),
        ("sentinel://h1:26379/zero?master=m", "database 'zero' is not a number"),
        ("sentinel://h1:26379/0?master=m&mastr=x", "unknown parameter(s) mastr"),
    ],
)
def test_a_bad_sentinel_url_is_refused_naming_the_variable_never_the_password(
    url: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(redis_url=url.replace("//", "//:hunter2@", 1))

    assert "ROTATOR_REDIS_URL" in str(caught.value)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_broker_url_is_checked_the_same_way() -> None:
    with pytest.raises(ConfigError, match="ROTATOR_BROKER_URL.*names no master"):
        load_settings(broker_url="sentinel://h1:26379/0")


def test_a_sentinel_broker_url_becomes_kombus_spelling_and_transport_options() -> None:
    url, options = broker_url_and_options(URL)

    # One URL: kombu would take ';'-separated sentinels for brokers to switch to, and with
    # them its own transport in place of rotator's.
    assert url == "sentinel://:s3cret@h1:26379/2"
    assert options == {
        "master_name": "mymaster",
        "sentinels": [["h1", 26379], ["h2", 26380], ["::1", 26381]],
        "sentinel_kwargs": {"password": "sp"},
    }
    assert broker_url_and_options("redis://r:6379/0") == ("redis://r:6379/0", {})


def make_app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    # rotator.app builds a default app on import: from a URL, so no embedded Redis starts.
    monkeypatch.setenv("ROTATOR_REDIS_URL", "redis://127.0.0.1:1/0")
    from rotator.app import make_app

    return make_app(settings)


def test_the_celery_app_gets_the_master_name_and_rotators_key_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings(
        redis_url="sentinel://h1:26379,h2:26379/0?master=mymaster", key_prefix="p1:"
    )

    app = make_app(settings, monkeypatch)

    options: dict[str, Any] = app.conf.broker_transport_options
    assert app.conf.broker_url == "sentinel://h1:26379/0"
    assert options["sentinels"] == [["h1", 26379], ["h2", 26379]]
    assert app.conf.broker_transport == "rotator.broker:QuarantiningSentinelTransport"
    assert options["master_name"] == "mymaster"
    assert options["global_keyprefix"] == "p1:kombu:"
    assert options["broker_quarantine_key"] == "p1:broker:quarantine"


def test_clients_built_from_a_sentinel_url_ask_the_sentinels_for_the_master() -> None:
    client = sync_redis(URL, socket_timeout=2)
    pool = client.connection_pool

    assert pool.service_name == "mymaster"  # type: ignore[attr-defined]
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "s3cret"
    client.close()


def test_the_workers_async_pool_stays_blocking_behind_sentinel() -> None:
    import redis.asyncio as aioredis

    client = async_redis(URL, blocking=True, max_connections=7, timeout=3, socket_timeout=2)
    pool = client.connection_pool

    assert isinstance(pool, aioredis.BlockingConnectionPool)
    assert pool.service_name == "mymaster"  # type: ignore[attr-defined]
    assert pool.max_connections == 7
    asyncio.run(client.aclose())


def test_waiting_for_replicas_needs_a_redis_that_has_them() -> None:
    settings = load_settings(redis_url=None, redis_min_replicas=1)  # embedded Redis

    with pytest.raises(ConfigError, match="ROTATOR_REDIS_MIN_REPLICAS: the embedded Redis"):
        settings.validate_runtime()


def test_quorum_queues_need_an_amqp_broker() -> None:
    settings = load_settings(broker_quorum=True, broker_url="redis://r:6379/0")

    with pytest.raises(ConfigError, match="ROTATOR_BROKER_QUORUM"):
        settings.validate_runtime()


def test_quorum_queues_declare_the_task_queue_as_quorum_with_confirmed_publishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(
        load_settings(
            redis_url="redis://r:6379/0",
            broker_url="amqp://guest:guest@rabbit:5672//",
            broker_quorum=True,
            queue="q1",
        ),
        monkeypatch,
    )

    (queue,) = app.conf.task_queues
    assert (queue.name, queue.durable) == ("q1", True)
    assert queue.queue_arguments == {"x-queue-type": "quorum"}
    assert app.conf.broker_transport_options["confirm_publish"] is True
    assert app.conf.task_acks_late is True


MASTER_KEY = "uQ1v0k1bXy2Hq7ZP0n8m9GgE3kq0bq3J5l2b0Xz4N9w="


def test_the_targets_snapshot_cache_reaches_redis_behind_sentinel_too() -> None:
    # The reduced Sentinel chaos run rotated nothing: the snapshot cache's client was built
    # with redis-py's from_url, which refuses sentinel:// and broke every worker's runtime.
    from rotator.runtime import snapshot_cache

    settings = load_settings(redis_url=URL, audit_key="a" * 32, master_key=MASTER_KEY)
    cache = snapshot_cache(settings)
    pool = cache._client.connection_pool  # type: ignore[union-attr]
    assert pool.service_name == "mymaster"  # type: ignore[union-attr]
    assert pool.connection_kwargs["db"] == 2  # type: ignore[union-attr]
