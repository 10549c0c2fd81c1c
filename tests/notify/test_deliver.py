"""Draining: signed POSTs, retry with backoff on 5xx, give up on 4xx, rate limit, formats."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest

from rotator.notify import formats
from rotator.notify.deliver import (
    SIGNATURE_HEADER,
    Deliverer,
    DeliveryBackoff,
    WebhookClient,
    sign,
    verify,
)
from rotator.notify.events import EventKind, Notice
from rotator.notify.queue import QueueNotifier
from tests.notify.conftest import SETTINGS, Queue

KEYS = {"NOTIFY_OPS_KEY": "ops-signing-key", "NOTIFY_CHAT_KEY": "chat-signing-key"}


class Receiver:
    """An httpx MockTransport handler answering from a script of statuses per URL host."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, json={"ok": status < 300})


def deliverer(queue: Queue, receiver: Receiver, environ: dict[str, str] | None = None) -> Deliverer:
    sender = WebhookClient(
        SETTINGS.url_policy(),
        environ=KEYS if environ is None else environ,
        transport=httpx.MockTransport(receiver),
    )
    backoff = DeliveryBackoff(base_delay=10.0, max_delay=60.0, max_attempts=3)
    return Deliverer(queue.store, lambda: queue.config, sender, backoff=backoff)


def queue_one(queue: Queue, kind: EventKind = EventKind.FAILED) -> None:
    notice = Notice(kind=kind, subject="job-1", job_id="job-1", target="crm", provider="fake")
    assert queue.run(QueueNotifier(queue.store, lambda: queue.config).notify(notice))


def failed(queue: Queue) -> list[dict[str, Any]]:
    return list(queue.run(queue.store.failed_deliveries()))


def test_a_delivery_is_signed_and_the_signature_verifies(queue: Queue) -> None:
    receiver = Receiver([200])
    queue_one(queue)

    result = queue.run(deliverer(queue, receiver).drain())

    assert result.as_dict() == {"delivered": 1, "retried": 0, "limited": 0, "failed": 0}
    (request,) = receiver.requests
    body = request.content
    assert verify(b"ops-signing-key", body, request.headers[SIGNATURE_HEADER])
    assert not verify(b"another-key", body, request.headers[SIGNATURE_HEADER])
    assert not verify(b"ops-signing-key", body + b" ", request.headers[SIGNATURE_HEADER])
    payload = json.loads(body)
    assert payload["schema"] == formats.SCHEMA and payload["event"] == "failed"
    assert payload["delivery"] == request.headers["X-Rotator-Delivery"]
    assert queue.run(queue.store.queued_deliveries()) == 0


def test_an_old_signature_is_refused() -> None:
    header = sign(b"k", b"{}", 1_000)
    assert verify(b"k", b"{}", header, now=1_100)
    assert not verify(b"k", b"{}", header, now=1_000 + 301)
    assert not verify(b"k", b"{}", "v1=abc")


def test_a_5xx_is_retried_after_a_backoff_then_delivered(queue: Queue) -> None:
    receiver = Receiver([500, 200])
    queue_one(queue)
    drainer = deliverer(queue, receiver)

    first = queue.run(drainer.drain())
    assert first.retried == 1 and first.delivered == 0
    ((delivery, due),) = queue.due().items()
    record = json.loads(queue.run(queue.redis.hget(queue.store.keys.notify_deliveries, delivery)))
    assert record["attempts"] == 1 and record["last_error"] == "HTTP 500"
    assert queue.run(drainer.drain()).as_dict()["delivered"] == 0  # not due yet

    second = queue.run(drainer.drain(now=due))
    assert second.delivered == 1
    ids = [r.headers["X-Rotator-Delivery"] for r in receiver.requests]
    assert ids == [delivery, delivery]  # one delivery id across retries


def test_retries_give_up_after_the_last_attempt_and_are_kept(queue: Queue) -> None:
    receiver = Receiver([503, 503, 503])
    queue_one(queue)
    drainer = deliverer(queue, receiver)
    for _ in range(3):
        queue.run(drainer.drain(now=max(queue.due().values())))

    assert len(receiver.requests) == 3
    assert queue.due() == {}
    (gave_up,) = failed(queue)
    assert gave_up["attempts"] == 3 and gave_up["error"] == "HTTP 503"
    assert gave_up["webhook"] == "ops" and gave_up["event"] == "failed"


def test_a_4xx_is_given_up_at_once(queue: Queue) -> None:
    queue_one(queue)
    result = queue.run(deliverer(queue, Receiver([400])).drain())
    assert result.failed == 1
    assert failed(queue)[0]["error"] == "HTTP 400"


def test_an_unset_signing_key_sends_nothing(queue: Queue) -> None:
    receiver = Receiver([])
    queue_one(queue)
    queue.run(deliverer(queue, receiver, environ={}).drain())
    assert receiver.requests == []
    assert failed(queue)[0]["error"] == "signing key variable NOTIFY_OPS_KEY is not set"


def test_a_delivery_over_the_rate_limit_waits_without_spending_an_attempt(queue: Queue) -> None:
    receiver = Receiver([])
    for job in ("job-1", "job-2", "job-3"):  # conflicts go to ops and chat (burst 2)
        notice = Notice(kind=EventKind.CONFLICT, subject=job, job_id=job, target="crm")
        queue.run(QueueNotifier(queue.store, lambda: queue.config).notify(notice))

    result = queue.run(deliverer(queue, receiver).drain())

    assert result.delivered == 5 and result.limited == 1
    ((delivery, due),) = queue.due().items()
    record = json.loads(queue.run(queue.redis.hget(queue.store.keys.notify_deliveries, delivery)))
    assert record["webhook"] == "chat" and record["attempts"] == 0
    hosts = [r.url.host for r in receiver.requests]
    assert hosts.count("hooks.slack.com") == 2


def test_a_url_outside_the_policy_is_refused_per_request(queue: Queue) -> None:
    # A webhook whose URL passed the file check once cannot be sent elsewhere by a redirect
    # or an edit the reload refused: the request hook checks every request.
    receiver = Receiver([])
    sender = WebhookClient(
        SETTINGS.url_policy(), environ=KEYS, transport=httpx.MockTransport(receiver)
    )
    hook = queue.config.notify.webhooks["ops"].model_copy(update={"url": "https://evil.net/x"})
    sent = queue.run(sender.post(hook, b"{}", "d", "test"))
    assert not sent.ok and sent.error == "URLRefused" and not sent.retryable
    assert receiver.requests == []


def test_backoff_is_capped_exponential_with_jitter_and_honours_retry_after() -> None:
    backoff = DeliveryBackoff(base_delay=2, max_delay=30, max_attempts=6, rng=random.Random(7))
    delays = [backoff.delay(n) for n in range(1, 6)]
    for n, delay in enumerate(delays, start=1):
        cap = min(30, 2 * 2 ** (n - 1))
        assert delay is not None and cap / 2 <= delay <= cap
    assert backoff.delay(6) is None
    assert backoff.delay(1, retry_after=20) == 20
    assert backoff.delay(1, retry_after=999) == 30


@pytest.mark.parametrize("fmt", ["json", "slack"])
def test_formats_carry_ids_and_escape_slack_markup(fmt: str) -> None:
    notice = Notice(
        kind=EventKind.CONFLICT,
        subject="j1",
        job_id="j1",
        target="crm",
        provider="fake",
        secret_version="v000000000002",
        fingerprint="ab12cd34",
        detail="changed by <!channel> & <https://evil|click>",
    )
    data = json.loads(formats.body({**notice.to_dict(), "id": "n1"}, "n1.ops", fmt))
    text = json.dumps(data)
    assert "v000000000002" in text and "ab12cd34" in text and "j1" in text
    if fmt == "slack":
        assert "<!channel>" not in text and "&lt;!channel&gt;" in data["text"]
        assert data["blocks"][0]["type"] == "section"
    else:
        assert data["detail"] == notice.detail and data["id"] == "n1"


def test_an_env_url_is_read_at_send_time_and_still_obeys_the_policy(queue: Queue) -> None:
    receiver = Receiver([])
    hook = queue.config.notify.webhooks["ops"].model_copy(update={"url": "env:OPS_URL"})

    def post(environ: dict[str, str]) -> Any:
        sender = WebhookClient(
            SETTINGS.url_policy(), environ=environ, transport=httpx.MockTransport(receiver)
        )
        return queue.run(sender.post(hook, b"{}", "d", "test"))

    assert post({**KEYS, "OPS_URL": "https://hooks.example.com/x"}).ok
    assert receiver.requests[0].url == "https://hooks.example.com/x"
    refused = post({**KEYS, "OPS_URL": "https://evil.net/x"})
    assert (refused.ok, refused.error) == (False, "URLRefused")
    unset = post(KEYS)
    assert (unset.ok, unset.error) == (False, "URL variable OPS_URL is not set")
    assert len(receiver.requests) == 1
