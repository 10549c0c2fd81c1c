"""``QueueNotifier``: the engine's ``Notifier``. Routes a notice and queues its deliveries.

A notice becomes one delivery per webhook its route names (``rotator.notify.model``), queued
together by one store script that also deduplicates per (subject, event) within the section's
``dedupe_window`` and bounds the queue (``ROTATOR_NOTIFY_MAX_QUEUED``: a receiver that stays
down cannot fill Redis). Nothing is sent here: ``rotator.notify.deliver`` drains the queue.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from rotator.notify.events import Notice

if TYPE_CHECKING:
    from rotator.config import TargetsConfig
    from rotator.store.notify import Claimed

log = structlog.get_logger("rotator.notify")


class NotifyQueue(Protocol):
    """What notification code needs of the store (``rotator.store.notify``)."""

    async def queue_notice(
        self,
        dedupe: tuple[str, str],
        deliveries: dict[str, dict[str, Any]],
        *,
        window: int,
        max_queued: int,
        due: float,
    ) -> int: ...

    async def claim_deliveries(
        self, now: float, limit: int, visibility: float
    ) -> list[Claimed]: ...

    async def retry_delivery(self, delivery_id: str, at: float, record: dict[str, Any]) -> bool: ...

    async def settle_delivery(
        self, delivery_id: str, failed: dict[str, Any] | None = None
    ) -> None: ...

    async def rate_slot(self, webhook: str, now: float, per_minute: int, burst: int) -> float: ...


class QueueNotifier:
    def __init__(
        self,
        store: NotifyQueue,
        config: Callable[[], TargetsConfig],
        *,
        max_queued: int = 10_000,
    ) -> None:
        self.store = store
        self.config = config
        self.max_queued = max_queued

    async def notify(self, notice: Notice) -> bool:
        """Queue ``notice`` for its webhooks; False when none wants it, it is a duplicate or
        the queue is full (logged)."""
        config = self.config()
        section = config.notify
        if not section.webhooks:
            return False
        spec = config.targets.get(notice.target) if notice.target else None
        hooks = section.route(notice.kind, spec.notify if spec else None)
        if not hooks:
            return False
        notice_id = uuid.uuid4().hex
        record = {**notice.to_dict(), "id": notice_id}
        deliveries = {
            f"{notice_id}.{hook}": {"webhook": hook, "notice": record, "attempts": 0}
            for hook in hooks
        }
        queued = await self.store.queue_notice(
            (notice.subject, str(notice.kind)),
            deliveries,
            window=section.dedupe_seconds,
            max_queued=self.max_queued,
            due=time.time(),
        )
        if queued < 0:
            log.warning(
                "notification queue full; notice dropped",
                notice_event=str(notice.kind),
                job_id=notice.job_id,
                target=notice.target,
                max_queued=self.max_queued,
            )
        return queued == 1


__all__ = ["NotifyQueue", "QueueNotifier"]
