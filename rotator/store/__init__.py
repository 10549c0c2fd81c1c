"""All Redis state behind one class; the key layout is documented in ``rotator.store.keys``.

Every change that touches more than one key is one Lua script (``rotator/store/lua/``, loaded
by ``rotator.store.scripts``), so a worker killed between two Redis calls never leaves half a
transition behind. Scripts reach keys only through KEYS. Writes made on behalf of a running job
are *fenced*: the script first checks that the target's lease still holds the job's fencing
token, so a worker that stalled past its lease can no longer change anything.

Hot paths are O(log n): claims use ZRANGEBYSCORE with LIMIT on sorted sets; nothing scans keys.

``RotatorStore`` is assembled from one part per concern: ``jobs`` (job records and their
transitions), ``schedule``, ``secrets`` (sealed secret versions), ``views`` (read models for
the CLI and the report), ``retention`` (deleting what has aged out) and ``notify`` (the
notification delivery queue); ``audit`` holds the audit log's own scripts.
"""

from __future__ import annotations

from rotator.models import BeginRefused, Begun, Lease
from rotator.store.base import Durability
from rotator.store.jobs import JobStore
from rotator.store.notify import NotifyQueueStore
from rotator.store.retention import RetentionStore
from rotator.store.schedule import ScheduleStore
from rotator.store.secrets import SecretStore
from rotator.store.views import ViewStore

__all__ = ["BeginRefused", "Begun", "Durability", "Lease", "RotatorStore"]


class RotatorStore(
    JobStore, ScheduleStore, SecretStore, ViewStore, RetentionStore, NotifyQueueStore
):
    """The store: ``RotatorStore(redis, keys, vault[, durability])``; see the parts for each
    concern, and ``rotator.store.base`` for durable (replicated) writes."""
