"""Delivering queued notifications: signed, rate-limited, retried with backoff, bounded.

``Deliverer.drain`` claims due deliveries (``rotator.store.notify``) and POSTs each one:

* **Signed**: ``X-Rotator-Signature: t=<unix time>,v1=<hex>`` where ``v1`` is
  HMAC-SHA256(key, ``"<t>." + body``) and the key is the value of the webhook's
  ``secret_env`` variable (never in the targets file). ``verify`` is the receiver's check
  (README "Notifications" has a standalone version). ``X-Rotator-Delivery`` (stable across
  retries), ``X-Rotator-Event`` name the delivery and its event.
* **Rate-limited** per webhook, across processes (GCRA in ``notify_rate.lua``): a delivery
  over the limit is due again when a slot frees up; that costs no attempt.
* **Retried** on a transport failure, a timeout, 408, 425, 429 or 5xx, after
  ``DeliveryBackoff``'s capped exponential delay with jitter (``Retry-After`` honoured up to
  the cap); given up after ``max_attempts`` or at once on any other answer, and kept in a
  bounded list (``{p}notify:failed``). This backoff decides only webhook deliveries: whether a
  *rotation* retries is ``rotator.retry``'s one decision, and no delivery outcome reaches it.
* **Bounded**: each POST ends within ``timeout`` seconds as a whole and reads at most
  ``max_response_bytes`` of the answer (``rotator.providers.bounded``); redirects are not
  followed; the URL passes ``rotator.urlpolicy`` on every request. Webhook URLs are never
  logged (a Slack webhook URL is itself a credential): only webhook names.

Deliveries are at least once: a drainer killed between the POST and settling it re-sends after
the claim's visibility window, with the same ``X-Rotator-Delivery``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import certifi
import httpx
import structlog

from rotator.errors import ProviderError, URLRefused
from rotator.notify import formats
from rotator.notify.model import Webhook
from rotator.providers.bounded import BoundedClient, exchange
from rotator.urlpolicy import WEBHOOKS, UrlPolicy

if TYPE_CHECKING:
    from rotator.config import TargetsConfig
    from rotator.notify.queue import NotifyQueue
    from rotator.store.notify import Claimed

log = structlog.get_logger("rotator.notify")

SIGNATURE_HEADER = "X-Rotator-Signature"
DELIVERY_HEADER = "X-Rotator-Delivery"
EVENT_HEADER = "X-Rotator-Event"
RETRY_STATUSES = frozenset({408, 425, 429})


def sign(key: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    key: bytes, body: bytes, header: str, *, now: float | None = None, tolerance: float = 300.0
) -> bool:
    """The receiver's check: the signature matches and is at most ``tolerance`` seconds old
    (a replayed old delivery is refused)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(key, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass(frozen=True)
class DeliveryBackoff:
    """When a failed webhook delivery is tried again (not a rotation: see ``rotator.retry``)."""

    base_delay: float = 5.0
    max_delay: float = 900.0
    max_attempts: int = 10  # about 2 h of tries with the defaults
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempts: int, retry_after: float | None = None) -> float | None:
        """Seconds until the next try after ``attempts`` failed tries; None: give up."""
        if attempts >= self.max_attempts:
            return None
        backoff = min(self.max_delay, self.base_delay * 2 ** min(max(0, attempts - 1), 30))
        delay = self.rng.uniform(backoff / 2, backoff)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return delay


@dataclass(frozen=True)
class Sent:
    """What one POST came to."""

    ok: bool
    status: int | None = None
    error: str | None = None  # a short reason, never a URL or a body
    retryable: bool = False
    retry_after: float | None = None


@dataclass
class DrainResult:
    delivered: int = 0
    retried: int = 0
    limited: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "retried": self.retried,
            "limited": self.limited,
            "failed": self.failed,
        }


class WebhookClient:
    """Signed, bounded POSTs to webhooks: what ``Deliverer`` and ``rotator notify test`` send
    with."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        environ: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        max_response_bytes: int = 64 * 1024,
        concurrency: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,  # tests inject MockTransport
    ) -> None:
        self.policy = policy
        self.environ = environ
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.concurrency = concurrency
        self._transport = transport
        self._client: BoundedClient | None = None

    def client(self) -> BoundedClient:
        if self._client is None:
            refuse = self.policy.request_hook(WEBHOOKS)
            self._client = BoundedClient(
                total_timeout=self.timeout,
                max_response_bytes=self.max_response_bytes,
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=self.concurrency),
                verify=ssl.create_default_context(cafile=certifi.where()),
                transport=self._transport,
                follow_redirects=False,
                event_hooks={"request": [refuse]},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def signing_key(self, hook: Webhook) -> bytes | None:
        value = self._env().get(hook.secret_env, "")
        return value.encode() if value else None

    def url(self, hook: Webhook) -> str | None:
        """The webhook's URL, read from its variable when it is an ``env:`` reference."""
        if hook.url_env is None:
            return hook.url
        return self._env().get(hook.url_env) or None

    def _env(self) -> Mapping[str, str]:
        return os.environ if self.environ is None else self.environ

    async def post(self, hook: Webhook, body: bytes, delivery_id: str, event: str) -> Sent:
        """One signed POST of ``body``; never raises for a receiver's fault."""
        key = self.signing_key(hook)
        if key is None:
            return Sent(False, error=f"signing key variable {hook.secret_env} is not set")
        url = self.url(hook)
        if url is None:
            return Sent(False, error=f"URL variable {hook.url_env} is not set")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "rotator-notify/1",
            SIGNATURE_HEADER: sign(key, body, int(time.time())),
            DELIVERY_HEADER: delivery_id,
            EVENT_HEADER: event,
        }
        request = {"content": body, "headers": headers}
        client = self.client()
        try:
            async with asyncio.timeout(self.timeout):
                response = await exchange(
                    client, "POST", url, self.max_response_bytes, WEBHOOKS, True, request
                )
        except TimeoutError:
            return Sent(False, error=f"no answer within {self.timeout:g}s", retryable=True)
        except ProviderError as exc:  # URLRefused (permanent), transport failures (transient)
            refused = isinstance(exc, URLRefused)
            return Sent(False, error=type(exc).__name__, retryable=not refused)
        except httpx.HTTPError as exc:
            return Sent(False, error=type(exc).__name__, retryable=True)
        status = response.status_code
        if 200 <= status < 300:
            return Sent(True, status)
        retry_after = _retry_after(response)
        retryable = status in RETRY_STATUSES or status >= 500
        return Sent(False, status, f"HTTP {status}", retryable, retry_after)


class Deliverer:
    """Drains the queue through a ``WebhookClient``."""

    def __init__(
        self,
        store: NotifyQueue,
        config: Callable[[], TargetsConfig],
        sender: WebhookClient,
        *,
        backoff: DeliveryBackoff | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.sender = sender
        self.backoff = backoff or DeliveryBackoff()

    async def aclose(self) -> None:
        await self.sender.aclose()

    async def drain(self, *, now: float | None = None, limit: int = 100) -> DrainResult:
        """Deliver what is due (at most ``limit``); every outcome is settled in the store."""
        now = time.time() if now is None else now
        # A claim outlives one POST by far: a drainer that dies mid-POST is redone after it.
        visibility = self.sender.timeout * 6
        claimed = await self.store.claim_deliveries(now, limit, visibility=visibility)
        result = DrainResult()
        gate = asyncio.Semaphore(self.sender.concurrency)

        async def one(item: Claimed) -> None:
            async with gate:
                await self._deliver(item, result)

        await asyncio.gather(*(one(item) for item in claimed))
        return result

    async def _deliver(self, item: Claimed, result: DrainResult) -> None:
        record = item.record
        name = str(record.get("webhook", ""))
        notice: dict[str, Any] = record.get("notice") or {}
        hook = self.config().notify.webhooks.get(name)
        if hook is None:
            result.failed += 1
            await self._give_up(item, "the webhook is no longer configured")
            return
        wait = await self.store.rate_slot(name, time.time(), hook.rate_per_minute, hook.burst)
        if wait > 0:
            result.limited += 1
            await self.store.retry_delivery(item.id, time.time() + wait, record)
            return
        event = str(notice.get("kind", ""))
        body = formats.body(notice, item.id, hook.format)
        sent = await self.sender.post(hook, body, item.id, event)
        attempts = int(record.get("attempts", 0)) + 1
        if sent.ok:
            result.delivered += 1
            await self.store.settle_delivery(item.id)
            log.info("notification delivered", webhook=name, notice_event=event, attempts=attempts)
            return
        delay = self.backoff.delay(attempts, sent.retry_after) if sent.retryable else None
        if delay is None:
            result.failed += 1
            await self._give_up(item, sent.error or "failed", attempts)
            return
        result.retried += 1
        updated = {**record, "attempts": attempts, "last_error": sent.error}
        await self.store.retry_delivery(item.id, time.time() + delay, updated)
        log.info(
            "notification delivery failed; retrying",
            webhook=name,
            notice_event=event,
            error=sent.error,
            attempts=attempts,
            delay=round(delay, 2),
        )

    async def _give_up(self, item: Claimed, error: str, attempts: int | None = None) -> None:
        notice = item.record.get("notice") or {}
        failed = {
            "delivery": item.id,
            "webhook": item.record.get("webhook"),
            "event": notice.get("kind"),
            "job_id": notice.get("job_id"),
            "target": notice.get("target"),
            "attempts": attempts if attempts is not None else item.record.get("attempts", 0),
            "error": error,
            "at": time.time(),
        }
        await self.store.settle_delivery(item.id, failed)
        log.warning(
            "notification delivery given up",
            webhook=failed["webhook"],
            notice_event=failed["event"],
            error=error,
            attempts=failed["attempts"],
        )


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "Deliverer",
    "DeliveryBackoff",
    "DrainResult",
    "Sent",
    "WebhookClient",
    "sign",
    "verify",
]
