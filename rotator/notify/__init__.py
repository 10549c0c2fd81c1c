"""Notifications: events such as a failed or conflicted rotation sent to webhooks.

One module per concern::

    events.py   what a notification says (``Notice``: ids, versions, fingerprints, never a
                value) and the event kinds; imported by the engine, so nothing heavy here
    model.py    the ``notify:`` section of the targets file (global and per target), routing
    queue.py    ``QueueNotifier``: routes a notice to its webhooks and queues one delivery each
                (deduplicated, bounded) through the store (``rotator.store.notify``)
    formats.py  the payloads: generic JSON and Slack-compatible
    deliver.py  draining the queue: signed POSTs (HMAC-SHA256), rate limit per webhook,
                capped exponential backoff with jitter, bounded time and response size

The engine only sees the ``Notifier`` Protocol (``rotator.protocols``): queueing is one Redis
script, and a failure to queue is logged and swallowed, so a failing receiver (or a failing
notification path) never blocks or fails a rotation. Deliveries happen later, in the
``rotator.notify`` task (beat) or ``rotator run --once``.
"""
