"""The lease an attempt holds while it runs: a heartbeat that renews it, and the check every
remote write makes first.

A target's lease (``target:{name}:lease``) is short (``ROTATOR_LEASE_TTL``, 30 s by default)
so that a killed worker's target is taken over within one TTL. While the attempt runs, a
``LeaseKeeper`` task on the same event loop renews it every third of the TTL through the fenced
``renew`` script (arq's job keep-alive is the model), which also moves the job's due score to
the new expiry, so a job whose worker dies comes due exactly when its lease has run out.

The keeper keeps its own, conservative idea of when the lease ends: the time it *sent* the last
successful renewal plus the TTL (Redis starts the TTL later, never earlier). A renewal that
finds the lease gone, or no successful renewal before that local deadline (Redis unreachable),
means the lease is lost: the keeper cancels the attempt, which ends in ``LeaseLost``.

Fencing makes a late *Redis* write fail, but it cannot stop a *provider* write. So every remote
write first calls ``before_remote_write()`` (``rotator.providers.base.send`` does it for each
non-GET request): inside an attempt it refuses the write, with ``LeaseLost``, unless the lease
will still be ours for the whole call (``write_time``, the HTTP deadline), renewing once on the
spot when the time left is short. A write therefore always ends (or times out) before another
worker can take the target over.

After the attempt's final fenced write released the lease (``release()``), the keeper stops and
later writes (post-promotion cleanup, designed to run without the lease) pass unchecked.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

import structlog

from rotator.errors import LeaseLost
from rotator.models import Lease

log = structlog.get_logger("rotator.lease")

# How often the heartbeat renews, as a fraction of the TTL: two renewals may fail in a row
# (a Redis blip) and the lease still holds.
RENEW_FRACTION = 1 / 3
# After a failed renewal, try again this soon (bounded by the time the lease has left).
RETRY_AFTER = 1.0

_current: contextvars.ContextVar[LeaseKeeper | None] = contextvars.ContextVar(
    "rotator_lease", default=None
)


class LeaseRenewer(Protocol):
    async def renew(self, lease: Lease, lease_ttl: float) -> None:
        """Extend the lease to ``lease_ttl`` from now; ``LeaseLost`` if it is not ours."""


class LeaseKeeper:
    """Renews one attempt's lease while the ``async with`` body runs; see the module docstring.

    Like ``asyncio.timeout``, it cancels the task that entered it when the lease is lost and
    turns that cancellation into ``LeaseLost`` on exit.
    """

    def __init__(
        self,
        store: LeaseRenewer,
        lease: Lease,
        ttl: float,
        *,
        write_time: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.lease = lease
        self.ttl = ttl
        self.write_time = write_time
        self._clock = clock
        # begin() took the lease just now; counting from here is conservative.
        self.expires = clock() + ttl
        self.lost: str | None = None
        self.released = False
        self._task: asyncio.Task[object] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._cancelled = False
        # Set before the heartbeat is cancelled: a renewal whose client swallows the cancel
        # (a Redis read deadline firing in the same loop turn turns it into a timeout error)
        # must still end the loop, or the orphaned heartbeat holds the target for good.
        self._stopping = False
        self._cancelling = 0
        self._token: contextvars.Token[LeaseKeeper | None] | None = None
        self._renewing: asyncio.Lock = asyncio.Lock()

    @property
    def left(self) -> float:
        """Seconds the lease is certainly still ours (negative once it may have expired)."""
        return self.expires - self._clock()

    async def __aenter__(self) -> LeaseKeeper:
        self._task = asyncio.current_task()
        assert self._task is not None, "a LeaseKeeper runs inside a task"
        self._cancelling = self._task.cancelling()
        self._token = _current.set(self)
        self._heartbeat = asyncio.create_task(self._beat(), name=f"lease:{self.lease.job_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()
        if self._token is not None:
            _current.reset(self._token)
        if self._cancelled and self._task is not None:
            # Our own cancellation (and no one else's) becomes LeaseLost, as asyncio.timeout
            # turns its cancellation into TimeoutError.
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise LeaseLost(self.lost or "the target lease was lost") from None

    async def release(self) -> None:
        """Called before the fenced write that ends the attempt and deletes the lease: a
        renewal after it would find the lease gone and must not read as a loss."""
        self.released = True
        await self._stop()

    async def ensure(self, needed: float | None = None) -> None:
        """Raise ``LeaseLost`` unless the lease is ours for ``needed`` seconds more (default:
        ``write_time``); renews once first when the time left is short."""
        if self.released:
            return
        needed = self.write_time if needed is None else needed
        if self.lost is None and self.left < needed:
            await self._renew()
        if self.lost is not None:
            raise LeaseLost(self.lost)
        left = self.left
        if left < needed:
            raise LeaseLost(
                f"only {max(left, 0.0):.1f}s of the target lease left; a remote write needs "
                f"{needed:.1f}s (ROTATOR_HTTP_TIMEOUT)"
            )

    # -- heartbeat -------------------------------------------------------------------------

    async def _beat(self) -> None:
        every = self.ttl * RENEW_FRACTION
        wait = every
        while not self._stopping:
            await asyncio.sleep(max(0.0, min(wait, self.left)))
            if await self._renew():
                wait = every
            elif self.released:
                return
            elif self._is_lost():
                self._cancel_attempt()
                return
            else:
                wait = min(RETRY_AFTER, every)

    def _is_lost(self) -> bool:
        return self.lost is not None

    async def _renew(self) -> bool:
        """One renewal, bounded by the time the lease has left. True when it succeeded;
        sets ``lost`` when the lease is gone or its local deadline passed."""
        async with self._renewing:
            if self.lost is not None or self.released or self._stopping:
                return False
            sent = self._clock()
            try:
                async with asyncio.timeout(max(self.left, 0.001)):
                    await self._store.renew(self.lease, self.ttl)
            except LeaseLost:
                self.lost = "the target lease expired or was taken over"
                return False
            except Exception as exc:  # Redis unreachable or slow: the lease may still hold
                if self.left <= 0:
                    self.lost = f"the lease could not be renewed before it expired ({_name(exc)})"
                else:
                    log.warning(
                        "lease renewal failed; retrying",
                        job_id=self.lease.job_id,
                        error=_name(exc),
                        lease_left=round(self.left, 3),
                    )
                return False
            self.expires = sent + self.ttl
            return True

    def _cancel_attempt(self) -> None:
        log.warning("lease lost; stopping the attempt", job_id=self.lease.job_id, why=self.lost)
        if self._task is not None and not self._task.done():
            self._cancelled = True
            self._task.cancel()

    async def _stop(self) -> None:
        self._stopping = True
        beat, self._heartbeat = self._heartbeat, None
        if beat is None or beat is asyncio.current_task():
            return
        beat.cancel()
        # wait() never raises the heartbeat's cancellation, only a cancellation of the caller.
        # Bounded: the attempt's ending must never wait on a renewal stuck in a client.
        await asyncio.wait([beat], timeout=max(self.ttl, 1.0))


def _name(exc: BaseException) -> str:
    return "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__


def lease_margin(ttl: float) -> float:
    """Lease time kept back for the failure path: a tenth of the lease, at most 30 s."""
    return min(ttl * 0.1, 30.0)


def call_time_left() -> float | None:
    """Seconds a provider call of the current attempt may still take; None outside an attempt.

    httpx's timeouts are per read, so a peer trickling a byte now and then would keep a call
    alive past the lease, while another worker takes the target over. ``send`` bounds every
    call by this as well as by its own total timeout. A margin is kept back: when a call is cut
    off, the attempt still needs the lease to record the failure under its fence.
    """
    keeper = _current.get()
    return None if keeper is None else keeper.left - lease_margin(keeper.ttl)


def current() -> LeaseKeeper | None:
    """The lease keeper of the attempt running in this context, if any."""
    return _current.get()


async def before_remote_write(needed: float | None = None) -> None:
    """Refuse (``LeaseLost``) a remote write the current attempt's lease cannot cover.

    Outside an attempt (CLI tools, the sandbox, tests of an adapter alone) there is no lease
    to check and the write goes ahead."""
    keeper = _current.get()
    if keeper is not None:
        await keeper.ensure(needed)


__all__ = [
    "LeaseKeeper",
    "LeaseRenewer",
    "before_remote_write",
    "call_time_left",
    "current",
    "lease_margin",
]
