"""Issue 9.1: once an update applied or may have applied, the attempt budget never ends the job.

It verifies (state ``verifying``, "applied, verifying") until the remote decides, and only after
the verify limit does it end ``unverified`` with the pending version still pinned.
"""

from __future__ import annotations

import random
import time

from rotator.engine import Outcome
from rotator.errors import AuthError, RateLimited, TransportError
from rotator.models import JobState
from rotator.retry import RetryPolicy
from tests.core.conftest import CANARY, Harness
from tests.core.fakes import transient

V1 = "v000000000001"


def job_state(h: Harness, job_id: str) -> JobState:
    return h.run(h.store.load_job(job_id)).state


def target(h: Harness) -> dict[str, str]:
    return dict(h.run(h.store.target_state("crm")))


def reads_fail_after_the_update(h: Harness, times: int) -> None:
    """The first read succeeds; the update then lands, and the next ``times`` reads fail."""
    h.provider.after_read.append(lambda: h.provider.read_faults.extend([transient()] * times))


def test_reads_failing_past_the_attempt_budget_keep_verifying_then_complete(
    harness: Harness,
) -> None:
    # Given a budget of 3 attempts and re-reads that fail 5 times after the update lands
    reads_fail_after_the_update(harness, 5)
    job_id = harness.enqueue()

    outcomes = [harness.run(harness.engine.process(job_id)) for _ in range(5)]

    # Then no attempt ends the job: it verifies, with the pending version pinned
    assert outcomes == [Outcome.RETRY] * 5
    job = harness.run(harness.store.load_job(job_id))
    assert job.state is JobState.VERIFYING and job.attempts == 5
    assert job.verifying_since is not None and job.verifying_since <= time.time()
    assert target(harness)["pending"] == V1
    assert harness.run(harness.store.dead_jobs()) == []

    # When reads succeed again, the job promotes the version it applied once
    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED
    assert harness.remote.applies == 1
    assert harness.remote.secret["password"] == CANARY
    assert target(harness)["current"] == V1 and target(harness)["pending"] == ""


def test_verifying_since_is_kept_from_the_first_verifying_attempt(harness: Harness) -> None:
    reads_fail_after_the_update(harness, 3)
    job_id = harness.enqueue()
    harness.run(harness.engine.process(job_id))
    first = harness.run(harness.store.load_job(job_id)).verifying_since

    harness.run(harness.engine.process(job_id))

    assert harness.run(harness.store.load_job(job_id)).verifying_since == first


def test_past_the_verify_limit_the_job_ends_unverified_with_pending_pinned(
    harness: Harness,
) -> None:
    harness.engine.options.retry = RetryPolicy(max_attempts=3, base_delay=0.01, verify_limit=3600)
    reads_fail_after_the_update(harness, 10)
    job_id = harness.enqueue()
    assert harness.run(harness.engine.process(job_id)) is Outcome.RETRY
    # Given the job has been verifying for two hours
    harness.run(
        harness.redis.hset(harness.store.keys.job(job_id), "verifying_since", time.time() - 7200)
    )

    assert harness.run(harness.engine.process(job_id)) is Outcome.UNVERIFIED

    job = harness.run(harness.store.load_job(job_id))
    assert job.state is JobState.UNVERIFIED and job.state.terminal
    state = target(harness)
    assert state["pending"] == V1 and state["pending_job"] == job_id  # never cleared
    assert state["last_outcome"] == "unverified"
    assert state.get("current", "") == ""
    assert harness.run(harness.store.dead_jobs()) == []  # not dead-lettered


def test_the_next_job_promotes_an_unverified_version_that_is_live(harness: Harness) -> None:
    harness.engine.options.retry = RetryPolicy(max_attempts=3, base_delay=0.01, verify_limit=0)
    reads_fail_after_the_update(harness, 1)
    first = harness.enqueue()
    assert harness.run(harness.engine.process(first)) is Outcome.UNVERIFIED

    # When a newer value is rotated by the next job
    harness.write_secret("newer")
    second = harness.enqueue()
    assert harness.run(harness.engine.process(second)) is Outcome.COMPLETED

    # Then the unverified version was recognised as live and promoted on the way
    state = target(harness)
    assert state["previous"] == V1
    assert state["current"] == "v000000000002"
    assert [e["event"] for e in harness.audit_events()].count("version.recovered") == 1


def test_a_permanent_error_after_the_update_is_unverified_not_failed(harness: Harness) -> None:
    harness.provider.after_read.append(
        lambda: harness.provider.read_faults.append(AuthError("denied", status=403))
    )
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.UNVERIFIED
    assert target(harness)["pending"] == V1
    assert target(harness)["last_outcome"] == "unverified"


def test_a_foreign_change_while_verifying_is_a_conflict(harness: Harness) -> None:
    reads_fail_after_the_update(harness, 1)
    job_id = harness.enqueue()
    assert harness.run(harness.engine.process(job_id)) is Outcome.RETRY
    harness.remote.oob_edit()

    assert harness.run(harness.engine.process(job_id)) is Outcome.CONFLICT
    assert harness.remote.applies == 1  # the foreign change was not overwritten


def test_a_lost_update_response_past_the_budget_keeps_verifying(harness: Harness) -> None:
    # The update's response is lost, then every read fails: it may have applied.
    harness.provider.apply_then.append(TransportError("read timeout", maybe_applied=True))
    harness.provider.read_faults.extend([])
    job_id = harness.enqueue()
    assert harness.run(harness.engine.process(job_id)) is Outcome.RETRY
    harness.provider.read_faults.extend([transient()] * 4)

    outcomes = [harness.run(harness.engine.process(job_id)) for _ in range(4)]

    assert outcomes == [Outcome.RETRY] * 4
    assert job_state(harness, job_id) is JobState.VERIFYING
    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED
    assert harness.remote.applies == 1


def test_a_refused_update_still_spends_the_attempt_budget(harness: Harness) -> None:
    # A 429 on the update is a refusal: nothing applied, so the ordinary budget ends the job.
    harness.engine.options.retry = RetryPolicy(
        max_attempts=2, base_delay=0.01, rng=random.Random(0)
    )
    harness.provider.apply_faults.extend([RateLimited("slow", provider="fake", status=429)] * 2)
    job_id = harness.enqueue()

    outcomes = [harness.run(harness.engine.process(job_id)) for _ in range(2)]

    assert outcomes == [Outcome.RETRY, Outcome.DEAD]
    assert target(harness)["last_outcome"] == "dead"
