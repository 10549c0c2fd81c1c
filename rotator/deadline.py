"""Deadlines for work done on behalf of one attempt: no provider call outlives the lease.

A rotation attempt may only act while it holds the target's lease. httpx's timeouts are per
read, so a peer that trickles a byte now and then keeps a call alive indefinitely; the lease
would expire under it and a second worker would take the target over while the first is still
talking to the provider. So every provider call (``rotator.providers.base.send``) runs under
``asyncio.timeout`` for the smaller of its own budget (``ROTATOR_HTTP_TIMEOUT`` for the call as
a whole) and what ``remaining()`` says is left of the attempt.

The hook is a context variable, so it follows one job's task and nothing else:

* the attempt's lease keeper (``rotator.lease.LeaseKeeper``) knows when the lease, as its
  heartbeat last renewed it, runs out: ``remaining()`` reads it;
* ``bounded(seconds)`` narrows the deadline for a block (tests, or a caller with a budget of
  its own), and restores the outer one on exit.

A margin of the lease is held back: when a call is cut off, the attempt still needs the lease
to record the failure and reschedule the job under its fence.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# Monotonic time by which the current attempt's remote work must be over; None: unbounded
# (a CLI call outside any attempt is still bounded per call by ROTATOR_HTTP_TIMEOUT).
_until: ContextVar[float | None] = ContextVar("rotator_deadline", default=None)


def lease_margin(ttl: float) -> float:
    """Lease time kept back for the failure path: a tenth of the lease, at most 30 s."""
    return min(ttl * 0.1, 30.0)


def remaining() -> float | None:
    """Seconds left for the current attempt's remote work; None when nothing bounds it.

    The attempt's lease keeper (``rotator.lease``) knows the lease as its heartbeat last
    renewed it; its renewals run in a task of their own, so they are read here rather than
    pushed into this context.
    """
    from rotator.lease import current  # the lease module imports the providers' base

    until = _until.get()
    left = None if until is None else until - time.monotonic()
    keeper = current()
    if keeper is not None:
        held = keeper.left - lease_margin(keeper.ttl)
        left = held if left is None else min(left, held)
    return left


@contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Run a block with at most ``seconds`` more (never extending an outer deadline)."""
    until = time.monotonic() + seconds
    outer = _until.get()
    token = _until.set(until if outer is None else min(outer, until))
    try:
        yield
    finally:
        _until.reset(token)


__all__ = ["bounded", "lease_margin", "remaining"]
