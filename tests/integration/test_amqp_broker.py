"""`amqp://` works as the broker: state stays in Redis, messages go through RabbitMQ, on a
classic queue or (``ROTATOR_BROKER_QUORUM``, the recommended production setup) a quorum queue."""

from __future__ import annotations

import contextlib
import os
import uuid

import amqp.exceptions
import kombu
import pytest

from tests.integration.conftest import System
from tests.integration.test_worker_e2e import live_params, plant

pytestmark = pytest.mark.integration
AMQP_URL = os.environ.get("ROTATOR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _rabbit_available() -> bool:
    try:
        with kombu.Connection(AMQP_URL, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


def _require_rabbit() -> None:
    if not _rabbit_available():
        if os.environ.get("CI"):
            pytest.fail(f"RabbitMQ is not reachable at {AMQP_URL} in CI")
        pytest.skip(f"no RabbitMQ at {AMQP_URL}")


def _delete(queue: str) -> None:
    """The queue and Celery's exchange of the same name (ours alone: the names are unique)."""
    with kombu.Connection(AMQP_URL) as connection:
        connection.channel().queue_delete(queue)
        with contextlib.suppress(amqp.exceptions.NotFound):
            connection.channel().exchange_delete(queue)


def test_rotation_over_rabbitmq(system: System) -> None:
    _require_rabbit()
    queue = f"rotator-test-{uuid.uuid4().hex[:8]}"
    system.env.update({"ROTATOR_BROKER_URL": AMQP_URL, "ROTATOR_QUEUE": queue})
    canary = plant(system)
    system.start("worker", "--concurrency", "2")
    system.start("beat")
    try:
        job_id = system.cli("enqueue", "adobe-sfdc")["job_id"]
        system.wait(
            "job completed over amqp", lambda: system.job(job_id).get("state") == "completed"
        )
        assert live_params(system)["password"] == canary
    finally:
        system.stop_all()
        _delete(queue)


def test_rotation_over_a_rabbitmq_quorum_queue(system: System) -> None:
    _require_rabbit()
    # Given a worker and beat whose queue is a quorum queue (a unique name, deleted after)
    queue = f"rotator-test-quorum-{uuid.uuid4().hex[:8]}"
    system.env.update(
        {"ROTATOR_BROKER_URL": AMQP_URL, "ROTATOR_QUEUE": queue, "ROTATOR_BROKER_QUORUM": "true"}
    )
    canary = plant(system)
    system.start("worker", "--concurrency", "2")
    system.start("beat")
    try:
        # When a rotation is enqueued
        job_id = system.cli("enqueue", "adobe-sfdc")["job_id"]

        # Then it completes through the quorum queue
        system.wait(
            "job completed over a quorum queue",
            lambda: system.job(job_id).get("state") == "completed",
        )
        assert live_params(system)["password"] == canary
        # And the queue RabbitMQ holds is a quorum queue: declaring it classic is refused
        with kombu.Connection(AMQP_URL) as connection:
            with pytest.raises(amqp.exceptions.PreconditionFailed, match="'quorum'"):
                connection.channel().queue_declare(
                    queue,
                    durable=True,
                    auto_delete=False,
                    arguments={"x-queue-type": "classic"},
                )
    finally:
        system.stop_all()
        _delete(queue)
