"""Issue 14: a scheduled target whose job failed or was dead-lettered comes due again after
the failure retry interval, and the report shows it overdue until a rotation succeeds."""

from __future__ import annotations

import time

from rotator.engine import Outcome
from rotator.errors import AuthError
from rotator.models import JobState
from rotator.retry import RetryPolicy
from tests.core.conftest import Harness
from tests.core.fakes import transient

MONTH = 30 * 86400.0


def _due(harness: Harness, target: str = "crm") -> float | None:
    return harness.run(harness.store.next_due([target]))[target]


def test_a_failed_job_brings_its_scheduled_target_back_after_the_interval(
    harness: Harness,
) -> None:
    # Given a target next due in a month (its period) and a permanent error
    harness.engine.options.failure_retry_interval = 60.0
    harness.run(harness.store.set_next_due({"crm": time.time() + MONTH}))
    harness.provider.read_faults.append(AuthError("denied", provider="fake", status=401))
    # When its job fails
    job_id = harness.enqueue()
    assert harness.run(harness.engine.process(job_id)) is Outcome.FAILED
    # Then it comes due again within the failure retry interval, not a month later
    due = _due(harness)
    assert due is not None and due <= time.time() + 60.0


def test_a_dead_lettered_job_brings_it_back_too(harness: Harness) -> None:
    harness.engine.options.failure_retry_interval = 60.0
    harness.engine.options.retry = RetryPolicy(max_attempts=1, base_delay=0.01)
    harness.run(harness.store.set_next_due({"crm": time.time() + MONTH}))
    harness.provider.read_faults.append(transient())
    job_id = harness.enqueue()
    assert harness.run(harness.engine.process(job_id)) is Outcome.DEAD
    assert harness.run(harness.store.load_job(job_id)).state is JobState.DEAD
    due = _due(harness)
    assert due is not None and due <= time.time() + 60.0


def test_an_earlier_due_time_is_kept_and_unscheduled_targets_stay_unscheduled(
    harness: Harness,
) -> None:
    soon = time.time() + 5
    harness.run(harness.store.set_next_due({"crm": soon}))
    harness.run(harness.store.due_again_after_failure("crm", soon + 3600))
    assert _due(harness) == soon
    harness.run(harness.store.due_again_after_failure("not-scheduled", soon))
    assert _due(harness, "not-scheduled") is None
