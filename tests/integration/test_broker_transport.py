"""The quarantining transport is the one kombu uses: TCP, the embedded unix socket, Sentinel."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator import embedded
from rotator.app import make_app
from rotator.broker import QuarantiningChannel, QuarantiningSentinelChannel, envelope_problem
from rotator.config import load_settings
from rotator.connections import sync_redis
from tools.common import SentinelRedis

pytestmark = pytest.mark.integration


@pytest.fixture
def socket_redis() -> Iterator[str]:
    state = Path("/tmp") / f"rotator-broker-{uuid.uuid4().hex[:8]}"
    url = embedded.ensure_running(state)
    try:
        yield url
    finally:
        embedded.stop(state)


def _consume_one_bad_item(redis_url: str, monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    monkeypatch.setenv("ROTATOR_REDIS_URL", redis_url)
    monkeypatch.setenv("ROTATOR_KEY_PREFIX", prefix)
    monkeypatch.delenv("ROTATOR_BROKER_URL", raising=False)
    app = make_app(load_settings())
    queue = "bad-q"
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        assert isinstance(channel, QuarantiningChannel)
        if redis_url.startswith("sentinel"):
            assert isinstance(channel, QuarantiningSentinelChannel)
        client = sync_redis(redis_url)
        try:
            client.lpush(f"{prefix}kombu:{queue}", b"\x00not json")
            with pytest.raises(Exception) as empty:
                channel._get(queue)
            assert type(empty.value).__name__ == "Empty"
            records = client.lrange(f"{prefix}broker:quarantine", 0, -1)
            assert [json.loads(r)["reason"] for r in records] == ["envelope is not JSON"]
        finally:
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
            client.close()


def test_embedded_socket_broker_quarantines(
    socket_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _consume_one_bad_item(socket_redis, monkeypatch, f"rotator-test:{uuid.uuid4().hex[:8]}:")


def test_tcp_broker_quarantines(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _consume_one_bad_item(redis_url, monkeypatch, key_prefix)


def test_sentinel_broker_quarantines_before_and_after_a_failover(
    sentinel: SentinelRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the broker reached through three sentinels (rotator's transport, not kombu's)
    _consume_one_bad_item(sentinel.url, monkeypatch, "rotator-test:s1:")

    # When the primary is killed and the sentinels promote the replica
    sentinel.kill9()
    while not sentinel.ready_to_restart():
        time.sleep(0.2)

    # Then a new connection finds the new primary, through the same transport
    _consume_one_bad_item(sentinel.url, monkeypatch, "rotator-test:s2:")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{}", "envelope has no properties object"),
        (b'{"properties": {"delivery_info": {}}, "body": ""}', "envelope has no delivery_tag"),
        (
            b'{"properties": {"delivery_info": {}, "delivery_tag": "t"}, "body": "", "headers": 1}',
            "envelope headers are not an object",
        ),
        (b'{"properties": {"delivery_info": {}, "delivery_tag": "t"}, "body": ""}', None),
    ],
)
def test_envelope_shape_checks(raw: bytes, problem: str | None) -> None:
    assert envelope_problem(raw) == problem
