"""The Celery application. Tasks are thin shells; the work happens in rotator.engine."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from rotator import celeryconfig
from rotator.broker import quorum_queues, transport_for
from rotator.config import Settings, load_settings
from rotator.connections import broker_url_and_options
from rotator.embedded import broker_url_from
from rotator.health import connect_signals
from rotator.store.keys import Keys


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or load_settings()
    app = Celery("rotator", include=["rotator.tasks"])
    app.config_from_object(celeryconfig)
    broker = broker_url_from(settings)
    transport_options: dict[str, Any] = dict(celeryconfig.broker_transport_options)
    if broker.startswith(("redis", "rediss", "unix", "sentinel")):
        # Several deployments (or test runs) can share one Redis: kombu's keys get our prefix.
        transport_options["global_keyprefix"] = f"{settings.key_prefix}kombu:"
        transport_options["broker_quarantine_key"] = Keys(settings.key_prefix).broker_quarantine
    # A malformed item on the queue is quarantined instead of stopping the worker. A Sentinel
    # URL becomes kombu's spelling, with the master's name as a transport option.
    transport, broker = transport_for(broker)
    broker, sentinel_options = broker_url_and_options(broker)
    transport_options.update(sentinel_options)
    if settings.broker_quorum:
        quorum_queues(app, settings.queue, transport_options)
    app.conf.update(
        broker_url=broker,
        broker_transport=transport,
        broker_transport_options=transport_options,
        task_default_queue=settings.queue,
        worker_concurrency=settings.worker_concurrency,
        beat_schedule={
            "rotator-dispatch": {
                "task": "rotator.dispatch",
                "schedule": settings.dispatch_interval,
                # A dispatch that could not run in time is superseded by the next one.
                "options": {"expires": max(1.0, settings.dispatch_interval * 2)},
            },
            # Queued webhook notifications (rotator.notify.deliver), as often.
            "rotator-notify": {
                "task": "rotator.notify",
                "schedule": settings.dispatch_interval,
                "options": {"expires": max(1.0, settings.dispatch_interval * 2)},
            },
        },
        beat_schedule_filename=str(settings.state_dir / "celerybeat-schedule"),
    )
    return app


celery_app = make_app()
connect_signals()  # the monitoring port (ROTATOR_METRICS_PORT) of worker and beat
app = celery_app


@signals.worker_init.connect
@signals.beat_init.connect
def _refuse_to_start_broken(**_: Any) -> None:
    """``celery -A rotator.app worker|beat`` runs the same startup checks as ``rotator worker``:
    a process that cannot work exits (code 2, one line) before it reports ready. SystemExit
    is not an Exception, so Celery's signal dispatch lets it through."""
    from rotator import preflight

    preflight.check_or_exit()
