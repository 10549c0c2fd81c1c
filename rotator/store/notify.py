"""The notification delivery queue (``{p}notify:*``): queued, claimed, retried, settled.

Every transition is one script: ``notify_enqueue`` (dedupe mark, bound, one delivery per
webhook, together or not at all), ``notify_claim`` (due deliveries, pushed past a visibility
window like job claims), ``notify_retry`` (due again later), ``notify_done`` (delivered, or
given up and kept in a bounded list) and ``notify_rate`` (a GCRA slot of a webhook's rate
limit). What a delivery is and when it retries is ``rotator.notify``'s business; this part
only keeps the state.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from rotator.store.base import StoreBase
from rotator.store.codec import text

FAILED_KEPT = 200  # given-up deliveries kept for `rotator notify failed`-style inspection


@dataclass(frozen=True)
class Claimed:
    id: str
    record: dict[str, Any]


class NotifyQueueStore(StoreBase):
    async def queue_notice(
        self,
        dedupe: tuple[str, str],
        deliveries: dict[str, dict[str, Any]],
        *,
        window: int,
        max_queued: int,
        due: float,
    ) -> int:
        """Queue one delivery per entry of ``deliveries`` (id -> record) unless a notice for
        ``dedupe`` = (subject, event) was queued within ``window`` seconds. 1 queued,
        0 duplicate, -1 queue full."""
        digest = hashlib.sha256("\0".join(dedupe).encode()).hexdigest()[:32]
        args: list[Any] = [max(1, int(window)), max_queued, due]
        for delivery_id, record in deliveries.items():
            args += [delivery_id, json.dumps(record, separators=(",", ":"))]
        keys = [self.keys.notify_dedupe(digest), self.keys.notify_due, self.keys.notify_deliveries]
        return int(await self._lua("notify_enqueue")(keys=keys, args=args))

    async def claim_deliveries(self, now: float, limit: int, visibility: float) -> list[Claimed]:
        raw = await self._lua("notify_claim")(
            keys=[self.keys.notify_due, self.keys.notify_deliveries],
            args=[now, limit, now + visibility],
        )
        claimed = []
        for index in range(0, len(raw), 2):
            try:
                record = json.loads(raw[index + 1])
            except ValueError:
                record = None
            if not isinstance(record, dict):
                await self.settle_delivery(text(raw[index]), {"error": "unreadable record"})
                continue
            claimed.append(Claimed(text(raw[index]), record))
        return claimed

    async def retry_delivery(self, delivery_id: str, at: float, record: dict[str, Any]) -> bool:
        keys = [self.keys.notify_due, self.keys.notify_deliveries]
        args: list[str | float] = [delivery_id, at, json.dumps(record, separators=(",", ":"))]
        return bool(await self._lua("notify_retry")(keys=keys, args=args))

    async def settle_delivery(self, delivery_id: str, failed: dict[str, Any] | None = None) -> None:
        """Delivered (``failed`` None), or given up: then ``failed`` is kept, bounded."""
        record = "" if failed is None else json.dumps(failed, separators=(",", ":"))
        await self._lua("notify_done")(
            keys=[self.keys.notify_due, self.keys.notify_deliveries, self.keys.notify_failed],
            args=[delivery_id, record, FAILED_KEPT],
        )

    async def rate_slot(self, webhook: str, now: float, per_minute: int, burst: int) -> float:
        """0 when a delivery to ``webhook`` may go now (the slot is taken), else the seconds
        until one may."""
        wait = await self._lua("notify_rate")(
            keys=[self.keys.notify_rate(webhook)], args=[now, 60.0 / per_minute, burst]
        )
        if isinstance(wait, int) and wait < 0:
            return 0.0
        return max(0.0, float(text(wait)))

    async def queued_deliveries(self) -> int:
        return int(await self.redis.hlen(self.keys.notify_deliveries))

    async def failed_deliveries(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self.redis.lrange(self.keys.notify_failed, 0, limit - 1)
        return [json.loads(row) for row in rows]


__all__ = ["FAILED_KEPT", "Claimed", "NotifyQueueStore"]
