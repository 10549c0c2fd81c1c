"""A Redis broker transport that survives any bytes on its queue and a restart of Redis.

kombu's Redis transport JSON-decodes every item it pops from a queue list and lets a decode
error escape into the consumer, which Celery treats as unrecoverable: one non-JSON item pushed
onto the queue key (by a bug, or by anyone with Redis write access) stops every worker that
consumes the queue, and the jobs behind it wait. This transport checks each popped item before
kombu sees it. An item that is not a well-formed kombu envelope (not UTF-8 JSON, not an object,
missing the fields kombu reads, or larger than any message rotator sends) is moved aside to a
bounded quarantine list with a reason, and consumption goes on. Well-formed envelopes whose
task or arguments are wrong are left to Celery and ``rotator.tasks``, which already reject them.

The check hooks redis-py's per-client response callbacks for ``BRPOP`` (the consumer's blocking
pop) and ``RPOP`` (kombu's ``basic_get``), so kombu's own read path runs unchanged.

With ``ROTATOR_BROKER_QUORUM`` and RabbitMQ, ``quorum_queues`` declares rotator's queue as a
quorum queue (replicated by Raft across the cluster's nodes, so a node's failure loses no
message) and has every publish confirmed by the broker.

It also turns kombu's crash on a Redis restart with messages in flight (closing the channel
needs the connection parameters that kombu has just dropped) into a connection error, which
Celery answers by reconnecting instead of exiting.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.sentinel
import structlog
from kombu.transport import redis as kombu_redis

log = structlog.get_logger("rotator.broker")

# rotator's messages carry at most a batch of job ids: a few KB. Anything far larger is hostile.
MAX_ENVELOPE_BYTES = 256 * 1024
# What is kept of a quarantined item: enough to recognise it, never enough to fill Redis.
KEPT_RAW_BYTES = 1024
QUARANTINE_LIMIT = 1000


def envelope_problem(raw: bytes) -> str | None:
    """Why ``raw`` is not a kombu envelope this worker can hand to Celery, or None if it is."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        return f"oversized envelope ({len(raw)} bytes > {MAX_ENVELOPE_BYTES})"
    try:
        envelope = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "envelope is not UTF-8"
    except ValueError:
        return "envelope is not JSON"
    if not isinstance(envelope, dict):
        return f"envelope is a JSON {type(envelope).__name__}, not an object"
    properties = envelope.get("properties")
    if not isinstance(properties, dict):
        return "envelope has no properties object"
    if not isinstance(properties.get("delivery_info"), dict):
        return "envelope has no delivery_info"
    if not isinstance(properties.get("delivery_tag"), str):
        return "envelope has no delivery_tag"
    if not isinstance(envelope.get("body"), str):
        return "envelope body is not a string"
    headers = envelope.get("headers", {})
    if headers is not None and not isinstance(headers, dict):
        return "envelope headers are not an object"
    return None


def quarantine_record(raw: bytes, reason: str, queue: str) -> str:
    """The JSON kept for a rejected item: reason, size and a bounded, encoded prefix."""
    return json.dumps(
        {
            "reason": reason,
            "queue": queue,
            "size": len(raw),
            "at": time.time(),
            "raw_b64": base64.b64encode(raw[:KEPT_RAW_BYTES]).decode("ascii"),
            "truncated": len(raw) > KEPT_RAW_BYTES,
        },
        sort_keys=True,
    )


class QuarantiningChannel(kombu_redis.Channel):
    """kombu's Redis channel, with malformed queue items moved aside instead of raised."""

    #: Full Redis key (outside kombu's key prefix) of the list of quarantined envelopes.
    broker_quarantine_key: str = "rotator:broker:quarantine"
    from_transport_options = kombu_redis.Channel.from_transport_options + (  # type: ignore[assignment]
        "broker_quarantine_key",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._rejected: list[tuple[bytes, str, str]] = []
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

    def _connparams(self, asynchronous: bool = False) -> Any:
        # After a lost connection Celery closes the channel, and closing restores unacked
        # messages through a fresh pool built from the connection's parameters, which kombu
        # has already dropped: an AttributeError that Celery treats as unrecoverable. Saying
        # "connection error" instead lets Celery reconnect; the unacked messages are restored
        # after the visibility timeout, and rotator's due set re-delivers the jobs sooner.
        if self.connection.client is None:
            raise redis.ConnectionError("broker connection already closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]

    def _create_client(self, asynchronous: bool = False) -> Any:
        client = super()._create_client(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        brpop = client.response_callbacks.get("BRPOP")
        client.set_response_callback("BRPOP", self._checked_brpop(brpop))
        client.set_response_callback("RPOP", self._checked_rpop)
        return client

    def _checked_brpop(self, original: Callable[[Any], Any] | None) -> Callable[..., Any]:
        def check(response: Any, **options: Any) -> Any:
            result = original(response) if original is not None else response
            if not result:
                return result
            dest, item = result
            if isinstance(item, bytes) and self._reject_if_malformed(item, dest):
                return None  # kombu reads "nothing popped" and polls again
            return result

        return check

    def _checked_rpop(self, response: Any, **options: Any) -> Any:
        if isinstance(response, bytes) and self._reject_if_malformed(response, b"?"):
            return None
        return response

    def _reject_if_malformed(self, item: bytes, dest: Any) -> bool:
        problem = envelope_problem(item)
        if problem is None:
            return False
        queue = dest.decode("utf-8", "replace") if isinstance(dest, bytes) else str(dest)
        self._rejected.append((item, problem, queue))
        return True

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)  # type: ignore[no-untyped-call]
        finally:
            self._flush_rejected()

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        try:
            return super()._get(queue)  # type: ignore[no-untyped-call]
        finally:
            self._flush_rejected()

    def _flush_rejected(self) -> None:
        if not self._rejected:
            return
        rejected, self._rejected = self._rejected, []
        # An unprefixed client: the quarantine key is rotator's, not inside kombu's namespace.
        client = redis.Redis(connection_pool=self.pool)
        try:
            with client.pipeline(transaction=False) as pipe:
                for raw, reason, queue in rejected:
                    pipe.lpush(self.broker_quarantine_key, quarantine_record(raw, reason, queue))
                pipe.ltrim(self.broker_quarantine_key, 0, QUARANTINE_LIMIT - 1)
                pipe.execute()
        except redis.RedisError:
            pass  # the item is already off the queue; losing its copy must not stop the worker
        finally:
            client.close()
        for _raw, reason, queue in rejected:
            log.error("malformed broker message quarantined", reason=reason, queue=queue)


class QuarantiningTransport(kombu_redis.Transport):
    Channel = QuarantiningChannel


class QuarantiningSentinelChannel(QuarantiningChannel, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel, quarantining like the plain one, that reads the sentinels from
    the ``sentinels`` transport option.

    kombu's own reads them from the broker URL's ``;``-separated alternates, and kombu treats
    alternates as brokers to fail over to: after the first connection error it *switches* to
    the next URL, re-resolving the transport from its scheme, which silently replaces this
    transport with kombu's (no quarantine, and the crash on a lost connection this module
    turns into a reconnect; the chaos experiment's Sentinel mode found it). So rotator gives
    kombu one URL and the whole list here (``rotator.connections.broker_url_and_options``).
    """

    sentinels: list[tuple[str, int]] | None = None
    from_transport_options = kombu_redis.SentinelChannel.from_transport_options + (  # type: ignore[assignment]
        "broker_quarantine_key",
        "sentinels",
    )

    def _sentinel_managed_pool(self, asynchronous: bool = False) -> Any:
        if not self.sentinels:
            return super()._sentinel_managed_pool(asynchronous)  # type: ignore[no-untyped-call]
        params = dict(self._connparams(asynchronous))
        params.pop("host", None)
        params.pop("port", None)
        manager = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            [(str(host), int(port)) for host, port in self.sentinels],
            min_other_sentinels=getattr(self, "min_other_sentinels", 0),
            sentinel_kwargs=getattr(self, "sentinel_kwargs", None),
            **params,
        )
        # kept so that kombu closes the sentinels' connections with the channel
        if asynchronous:
            self._async_sentinel_manager = manager
        else:
            self._sentinel_manager = manager
        master_name = getattr(self, "master_name", None)
        if master_name is None:
            raise ValueError("'master_name' transport option must be specified.")
        credentials = {k: params[k] for k in ("username", "password") if k in params}
        client = manager.master_for(master_name, redis.Redis, **credentials)  # type: ignore[no-untyped-call]
        return client.connection_pool


class QuarantiningSentinelTransport(kombu_redis.SentinelTransport):
    Channel = QuarantiningSentinelChannel


class QuarantiningSocketTransport(QuarantiningTransport):
    # kombu must hand "socket:///path" to the channel as-is (its own redis+socket:// spelling
    # would pick kombu's transport by name and bypass ours).
    can_parse_url = True


def quorum_queues(app: Any, queue: str, transport_options: dict[str, Any]) -> None:
    """RabbitMQ quorum queues for ``app``: the task queue is declared ``x-queue-type: quorum``
    (durable, as quorum queues must be), and publishes wait for the broker's confirm, so
    ``enqueue`` returns only once the message is on a majority of the nodes. Celery (5.5+)
    sees the quorum queue and drops global QoS, which quorum queues do not support; acks late
    (celeryconfig) means a message is removed only after its task ran. rotator uses no
    countdowns or ETAs, which quorum queues cannot delay natively."""
    from kombu.entity import Exchange, Queue

    exchange = Exchange(queue, type="direct", durable=True)  # type: ignore[no-untyped-call]
    app.conf.task_queues = [
        Queue(  # type: ignore[no-untyped-call]
            queue,
            exchange,
            routing_key=queue,
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )
    ]
    app.conf.task_default_exchange = queue
    app.conf.task_default_routing_key = queue
    transport_options["confirm_publish"] = True


_TRANSPORTS = {
    "redis": "rotator.broker:QuarantiningTransport",
    "rediss": "rotator.broker:QuarantiningTransport",
    "sentinel": "rotator.broker:QuarantiningSentinelTransport",
    "redis+socket": "rotator.broker:QuarantiningSocketTransport",
}


def transport_for(broker_url: str) -> tuple[str | None, str]:
    """(transport class path, broker URL to give kombu); (None, url) keeps kombu's choice."""
    scheme = broker_url.partition("://")[0]
    transport = _TRANSPORTS.get(scheme)
    if scheme == "redis+socket":
        return transport, broker_url.removeprefix("redis+")
    return transport, broker_url
