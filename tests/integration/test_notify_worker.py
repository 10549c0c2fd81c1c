"""Notifications through real processes: `rotator worker` and `rotator beat` on real Redis,
the provider sandbox and a webhook receiver on sockets. A rotation the provider refuses ends
`failed` (the resource is gone: 404); beat's `rotator.notify` task has a worker deliver it, signed, after a retry."""

from __future__ import annotations

import json
import uuid

import pytest

from rotator.notify.deliver import verify
from tests.integration.conftest import CANARY_PREFIX, System
from tests.integration.webhook import receiver

pytestmark = pytest.mark.integration

NOTIFY = """
notify:
  webhooks:
    ops: {{url: "http://127.0.0.1:{port}/hook", secret_env: IT_HOOK_KEY}}
"""
HOOK_KEY = "it-hook-key-8d1f"


def test_a_failed_rotation_is_delivered_by_the_worker_signed_and_retried(system: System) -> None:
    with receiver() as webhook:
        # Given a targets file with a webhook, and a target whose resource does not exist
        targets = system.tmp / "rotator.yaml"
        text = targets.read_text().replace("conn-it-1", "conn-gone")
        targets.write_text(text + NOTIFY.format(port=webhook.port))
        canary = CANARY_PREFIX + uuid.uuid4().hex
        (system.tmp / "sfdc.json").write_text(json.dumps({"username": "etl", "password": canary}))
        system.env["IT_HOOK_KEY"] = HOOK_KEY
        system.env["ROTATOR_INSECURE_HOSTS"] += f",127.0.0.1:{webhook.port}"
        system.start("worker", "--concurrency", "2")
        system.start("beat")

        # When a rotation is requested
        job_id = system.cli("enqueue", "adobe-sfdc")["job_id"]
        system.wait("the job to fail", lambda: system.job(job_id).get("state") == "failed")

        # Then the webhook hears of it: refused once (500), delivered on the retry
        system.wait("the notification", lambda: bool(webhook.delivered()), timeout=60)
        first, second = webhook.hits[:2]
        assert (first.status, second.status) == (500, 200)
        assert first.headers["x-rotator-delivery"] == second.headers["x-rotator-delivery"]
        assert verify(HOOK_KEY.encode(), second.body, second.headers["x-rotator-signature"])
        payload = json.loads(second.body)
        assert (payload["event"], payload["job_id"], payload["target"]) == (
            "failed",
            job_id,
            "adobe-sfdc",
        )
        assert all(canary not in hit.body.decode() for hit in webhook.hits)
