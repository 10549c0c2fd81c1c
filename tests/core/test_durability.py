"""Durable writes: a pin, intent or promotion that too few replicas acknowledged is not acted on.

fakeredis has no replicas (and no WAIT), so the store here stands for a primary whose replicas
do not answer for the steps named in ``unreplicated``: the script runs, as on a real primary,
then the store raises ``WriteNotDurable`` the way ``StoreBase._replicated`` does when WAIT
counts too few acknowledgements. ``tests/integration/test_replication.py`` runs the real WAIT.
"""

from __future__ import annotations

from typing import Any

import pytest

from rotator.engine import Outcome
from rotator.errors import WriteNotDurable
from rotator.models import JobState
from rotator.retry import Retry, RetryPolicy
from rotator.store import Durability, RotatorStore
from tests.core.conftest import CANARY, Harness


class LaggingReplicas(RotatorStore):
    """A store whose replicas acknowledge no durable write of the steps in ``unreplicated``."""

    unreplicated: set[str]
    waited: list[str]

    async def _replicated(self, step: str, name: str, *, keys: list[str], args: list[Any]) -> None:
        self.waited.append(step)
        await self._lua(name)(keys=keys, args=args)
        if step in self.unreplicated:
            raise WriteNotDurable(step, 0, self.durability.min_replicas, self.durability.timeout)

    def _wait_in(self, pipe: Any) -> None:  # WAIT's reply, as ECHO (fakeredis has no WAIT)
        self.waited.append("job")
        pipe.echo(0 if "job" in self.unreplicated else 1)


@pytest.fixture
def lagging(harness: Harness) -> LaggingReplicas:
    old = harness.store
    store = LaggingReplicas(old.redis, old.keys, old.vault, Durability(min_replicas=1, timeout=0.1))
    store.unreplicated, store.waited = set(), []
    harness.store = harness.engine.store = store
    return store


def journal(h: Harness, job_id: str) -> dict[str, Any]:
    import json

    raw = h.run(h.redis.hgetall(h.store.keys.journal(job_id)))
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def test_with_replicas_the_pin_the_intent_and_the_promotion_wait_for_them(
    harness: Harness, lagging: LaggingReplicas
) -> None:
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED

    assert lagging.waited == ["job", "secret", "intent", "promote"]
    assert harness.remote.secret["password"] == CANARY


def test_an_intent_not_replicated_in_time_sends_no_update_and_retries(
    harness: Harness, lagging: LaggingReplicas
) -> None:
    # Given replicas that do not acknowledge the intent in time
    lagging.unreplicated = {"intent"}
    job_id = harness.enqueue()

    # When the attempt runs
    outcome = harness.run(harness.engine.process(job_id))

    # Then nothing was sent to the provider, and the job retries as one where nothing applied
    assert outcome is Outcome.RETRY
    assert harness.remote.applies == 0
    steps = journal(harness, job_id)
    assert steps["apply_failed"] == {"attempt": 1, "maybe_applied": False}
    job = harness.run(harness.store.load_job(job_id))
    assert job.state is JobState.RETRYING
    assert job.last_error_class == "WriteNotDurable"
    # And once the replicas answer again, the next attempt rotates
    lagging.unreplicated = set()
    harness.run(harness.redis.zadd(harness.store.keys.due, {job_id: 0}))
    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED
    assert harness.remote.applies == 1


def test_a_pin_not_replicated_in_time_calls_no_provider_at_all(
    harness: Harness, lagging: LaggingReplicas
) -> None:
    lagging.unreplicated = {"secret"}
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.RETRY

    assert harness.provider.reads == 0
    assert harness.remote.applies == 0
    assert harness.run(harness.store.load_job(job_id)).state is JobState.RETRYING


def test_a_promotion_not_replicated_in_time_skips_the_cleanup_that_depends_on_it(
    harness: Harness, lagging: LaggingReplicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    cleanups: list[str] = []

    async def after_promote(target: Any, journal: Any) -> None:
        cleanups.append(target.name)

    monkeypatch.setattr(harness.provider, "after_promote", after_promote)
    lagging.unreplicated = {"promote"}
    job_id = harness.enqueue()

    # The job ended on the primary (what everyone reads now), its audit event written...
    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED
    assert harness.run(harness.store.load_job(job_id)).state is JobState.COMPLETED
    events = [e["event"] for e in harness.audit_events() if e["job_id"] == job_id]
    assert events[-1] == "job.completed"
    # ...but the post-promotion cleanup (a remote write) waits for a durable promotion.
    assert cleanups == []


def test_an_on_demand_job_is_durable_before_its_id_is_returned(
    harness: Harness, lagging: LaggingReplicas
) -> None:
    lagging.unreplicated = {"job"}

    with pytest.raises(WriteNotDurable, match="job: 0 of 1"):
        harness.enqueue()

    # Asked again once the replicas answer, the caller gets the job the primary already has.
    lagging.unreplicated = set()
    job_id, created = harness.run(harness.store.create_job("crm", "on-demand", "test"))
    assert created is False
    assert harness.run(harness.store.load_job(job_id)).target == "crm"


def test_without_min_replicas_nothing_waits(harness: Harness) -> None:
    assert harness.store.durability == Durability(min_replicas=0)
    assert harness.run(harness.engine.process(harness.enqueue())) is Outcome.COMPLETED


def test_the_retry_decision_treats_a_write_not_durable_as_transient() -> None:
    decision = RetryPolicy(base_delay=1, max_delay=4).decide(
        WriteNotDurable("intent", 0, 1, 2.0), attempt=1, applied_for=None, elapsed=1.0
    )

    assert isinstance(decision, Retry)
    assert decision.state is JobState.RETRYING
