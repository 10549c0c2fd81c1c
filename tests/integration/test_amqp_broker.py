"""`amqp://` works as the broker: state stays in Redis, messages go through RabbitMQ."""

from __future__ import annotations

import os
import uuid

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


def test_rotation_over_rabbitmq(system: System) -> None:
    if not _rabbit_available():
        if os.environ.get("CI"):
            pytest.fail(f"RabbitMQ is not reachable at {AMQP_URL} in CI")
        pytest.skip(f"no RabbitMQ at {AMQP_URL}")
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
        with kombu.Connection(AMQP_URL) as connection:
            connection.default_channel.queue_delete(queue)
