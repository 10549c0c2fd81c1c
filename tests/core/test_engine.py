"""The rotation state machine against a scripted provider: every path ends in a known state."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from rotator.engine import Outcome
from rotator.errors import BadRequest, TransportError
from rotator.models import JobState, Reason, new_job_id
from tests.core.conftest import CANARY, Harness
from tests.core.fakes import transient


class Killed(BaseException):
    """Stands in for SIGKILL: escapes every handler, so nothing after it runs."""


def job_state(h: Harness, job_id: str) -> JobState:
    return h.run(h.store.load_job(job_id)).state


def target(h: Harness) -> dict[str, str]:
    return dict(h.run(h.store.target_state("crm")))


def test_rotation_applies_verifies_and_promotes(harness: Harness) -> None:
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED

    assert harness.remote.secret == {"username": "svc", "password": CANARY}
    state = target(harness)
    assert state["current"] == "v000000000001"
    assert state["pending"] == ""
    assert state["last_outcome"] == "completed"
    assert job_state(harness, job_id) is JobState.COMPLETED
    events = [e["event"] for e in harness.audit_events() if e["job_id"] == job_id]
    assert events == [
        "job.started",
        "secret.loaded",
        "remote.read",
        "update.intent",
        "update.applied",
        "update.verified",
        "job.completed",
    ]


def test_same_version_again_is_a_noop_success(harness: Harness) -> None:
    harness.run(harness.engine.process(harness.enqueue()))
    second = harness.enqueue()

    assert harness.run(harness.engine.process(second)) is Outcome.NOOP
    assert harness.remote.applies == 1
    assert job_state(harness, second) is JobState.COMPLETED


def test_new_value_moves_current_to_previous(harness: Harness) -> None:
    harness.run(harness.engine.process(harness.enqueue()))
    harness.write_secret("second-value")

    assert harness.run(harness.engine.process(harness.enqueue())) is Outcome.COMPLETED
    state = target(harness)
    assert (state["current"], state["previous"]) == ("v000000000002", "v000000000001")
    assert harness.remote.secret["password"] == "second-value"


def test_lost_response_converges_without_a_second_update(harness: Harness) -> None:
    harness.provider.apply_then.append(TransportError("read timeout", maybe_applied=True))
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.RETRY
    # The update may have applied: the job verifies instead of retrying on the attempt budget.
    assert job_state(harness, job_id) is JobState.VERIFYING
    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED

    assert harness.remote.applies == 1
    assert target(harness)["current"] == "v000000000001"


def test_killed_before_update_converges(harness: Harness) -> None:
    harness.provider.apply_faults.append(Killed())  # type: ignore[arg-type]
    job_id = harness.enqueue()
    try:
        harness.run(harness.engine.process(job_id))
    except Killed:
        pass
    # Given the worker died with the lease held, the job stays due at the lease's expiry.
    score = harness.run(harness.redis.zscore(harness.store.keys.due, job_id))
    assert score is not None
    harness.expire_lease()

    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED
    assert harness.remote.applies == 1
    assert harness.remote.secret["password"] == CANARY


def test_killed_after_update_before_response_converges(harness: Harness) -> None:
    harness.provider.apply_then.append(Killed())  # type: ignore[arg-type]
    job_id = harness.enqueue()
    try:
        harness.run(harness.engine.process(job_id))
    except Killed:
        pass
    assert target(harness)["pending"] == "v000000000001"  # never lost track of it
    harness.expire_lease()

    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED
    assert harness.remote.applies == 1
    assert target(harness)["current"] == "v000000000001"


def test_out_of_band_change_between_attempts_is_a_conflict(harness: Harness) -> None:
    harness.provider.apply_faults.append(transient())
    job_id = harness.enqueue()
    assert harness.run(harness.engine.process(job_id)) is Outcome.RETRY
    harness.remote.oob_edit()

    assert harness.run(harness.engine.process(job_id)) is Outcome.CONFLICT
    assert harness.remote.secret == {"password": "someone-else"}  # never blind-overwritten
    state = target(harness)
    assert state["pending"] == "" and state.get("current", "") == ""
    conflict = [e for e in harness.audit_events() if e["event"] == "job.conflict"][0]
    assert conflict["outcome"] == "conflict"
    assert "out of band" in conflict["detail"]


def test_stale_if_match_with_foreign_change_is_a_conflict(harness: Harness) -> None:
    # The resource changes between our read and our update: the provider answers 412.
    harness.provider.after_read.append(harness.remote.oob_edit)
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.CONFLICT
    assert harness.remote.applies == 0


def test_transient_errors_exhaust_into_dead_letter(harness: Harness) -> None:
    harness.provider.read_faults.extend([transient(), transient(), transient()])
    job_id = harness.enqueue()
    outcomes = [harness.run(harness.engine.process(job_id)) for _ in range(3)]

    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.DEAD]
    assert job_state(harness, job_id) is JobState.DEAD
    assert harness.run(harness.store.dead_jobs()) == [job_id]


def test_permanent_error_fails_at_once(harness: Harness) -> None:
    harness.provider.apply_faults.append(
        BadRequest("invalid patch", status=400, code="FLOW-1455-400")
    )
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.FAILED
    job = harness.run(harness.store.load_job(job_id))
    assert job.last_error_class == "BadRequest"
    assert "FLOW-1455-400" in job.last_error


def test_older_version_is_refused(harness: Harness) -> None:
    harness.run(harness.engine.process(harness.enqueue()))
    harness.write_secret("newer")
    harness.run(harness.engine.process(harness.enqueue()))

    old = harness.enqueue(requested_version="v000000000001")
    assert harness.run(harness.engine.process(old)) is Outcome.FAILED
    assert harness.run(harness.store.load_job(old)).last_error_class == "StaleVersion"
    assert harness.remote.secret["password"] == "newer"


def test_missing_source_file_fails_with_a_clear_reason(harness: Harness) -> None:
    (harness.tmp / "secret.json").unlink()
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.FAILED
    job = harness.run(harness.store.load_job(job_id))
    assert "cannot read" in job.last_error and "secret.json" in job.last_error


def test_malformed_job_is_quarantined_and_others_still_run(harness: Harness) -> None:
    keys = harness.store.keys
    bad = new_job_id()  # a well-formed id whose record is not
    harness.run(harness.redis.hset(keys.job(bad), mapping={"id": bad, "state": "??"}))
    harness.run(harness.redis.zadd(keys.due, {bad: 0}))

    assert harness.run(harness.engine.process(bad)) is Outcome.QUARANTINED
    quarantined = harness.run(harness.store.quarantined())
    assert bad in quarantined and quarantined[bad]["reason"]
    assert harness.run(harness.redis.zscore(keys.due, bad)) is None
    assert harness.run(harness.engine.process(harness.enqueue())) is Outcome.COMPLETED


def test_identical_request_returns_the_queued_job(harness: Harness) -> None:
    first, created = harness.run(harness.store.create_job("crm", Reason.ON_DEMAND, "a"))
    second, created_again = harness.run(harness.store.create_job("crm", Reason.SCHEDULED, "b"))

    assert created and not created_again and first == second
    harness.run(harness.engine.process(first))
    third, created_third = harness.run(harness.store.create_job("crm", Reason.ON_DEMAND, "a"))
    assert created_third and third != first


def test_busy_target_defers_the_other_job(harness: Harness) -> None:
    first = harness.enqueue()
    begun = harness.run(harness.store.begin(first, "crm", 30))
    assert not hasattr(begun, "reason")
    other, _ = harness.run(harness.store.create_job("other", Reason.ON_DEMAND, "t"))
    # Same target, a different job id placed by hand (the active-job dedupe would merge them).
    harness.run(harness.redis.hset(harness.store.keys.job(other), "target", "crm"))

    assert harness.run(harness.engine.process(other)) is Outcome.DEFERRED
    assert harness.run(harness.engine.process(first)) is Outcome.SKIPPED  # its own lease: a dup
    # The duplicate comes due again when the lease ends, not after a claim's visibility window.
    due = harness.run(harness.redis.zscore(harness.store.keys.due, first))
    assert due is not None and time.time() + 25 < due < time.time() + 31


def test_secret_never_stored_or_audited_in_clear(harness: Harness) -> None:
    harness.provider.apply_then.append(TransportError("reset", maybe_applied=True))
    job_id = harness.enqueue()
    harness.run(harness.engine.process(job_id))
    harness.run(harness.engine.process(job_id))

    dump: list[bytes] = []
    for key in harness.run(harness.redis.keys("*")):
        kind = harness.run(harness.redis.type(key))
        if kind == b"hash":
            value: Any = harness.run(harness.redis.hgetall(key))
        elif kind == b"stream":
            value = harness.run(harness.redis.xrange(key))
        elif kind == b"zset":
            value = harness.run(harness.redis.zrange(key, 0, -1))
        elif kind == b"list":
            value = harness.run(harness.redis.lrange(key, 0, -1))
        elif kind == b"set":
            value = harness.run(harness.redis.smembers(key))
        else:
            value = harness.run(harness.redis.get(key))
        dump.append(repr(value).encode())
    blob = b"\n".join(dump)
    assert CANARY.encode() not in blob
    assert harness.remote.secret["password"] == CANARY  # it did reach the provider
    events = json.dumps(harness.audit_events())
    assert CANARY not in events


def test_no_update_is_attempted_when_the_audit_cannot_be_written(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rotator.errors import AuditUnavailable

    real_emit = harness.engine.audit.emit

    async def failing_emit(event: Any) -> Any:
        if event.event == "update.intent":
            raise AuditUnavailable("audit stream unavailable: ConnectionError")
        return await real_emit(event)

    monkeypatch.setattr(harness.engine.audit, "emit", failing_emit)
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.RETRY
    assert harness.remote.applies == 0  # fail closed: the provider was never called
    assert harness.run(harness.store.load_job(job_id)).last_error_class == "AuditUnavailable"
    # No update was sent, so none may have applied: an ordinary retry on the attempt budget.
    assert job_state(harness, job_id) is JobState.RETRYING

    monkeypatch.setattr(harness.engine.audit, "emit", real_emit)
    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED
    assert harness.remote.applies == 1


def test_a_provider_message_quoting_the_secret_is_redacted(harness: Harness) -> None:
    # Some APIs echo the offending value in validation errors; it must not reach job records.
    harness.provider.apply_faults.append(
        BadRequest(f"value '{CANARY}' at 'password' failed to satisfy constraint", status=400)
    )
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.FAILED
    job = harness.run(harness.store.load_job(job_id))
    assert CANARY not in job.last_error and "[redacted]" in job.last_error
    assert CANARY not in json.dumps(harness.audit_events())


def test_terminal_event_lost_to_a_crash_is_written_by_the_next_delivery(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_emit = harness.engine.audit.emit

    async def die_on_completion(event: Any) -> Any:
        if event.event == "job.completed":
            raise Killed()
        return await real_emit(event)

    monkeypatch.setattr(harness.engine.audit, "emit", die_on_completion)
    job_id = harness.enqueue()
    try:
        harness.run(harness.engine.process(job_id))
    except Killed:
        pass
    # Given the job is completed in Redis but its terminal event was never written
    assert job_state(harness, job_id) is JobState.COMPLETED
    assert "job.completed" not in [e["event"] for e in harness.audit_events()]
    assert harness.run(harness.redis.zscore(harness.store.keys.due, job_id)) is not None

    # When the job is delivered again
    monkeypatch.setattr(harness.engine.audit, "emit", real_emit)
    assert harness.run(harness.engine.process(job_id)) is Outcome.SKIPPED

    # Then the owed event is written once and nothing is due any more
    completed = [e for e in harness.audit_events() if e["event"] == "job.completed"]
    assert len(completed) == 1 and completed[0]["job_id"] == job_id
    assert harness.run(harness.redis.zscore(harness.store.keys.due, job_id)) is None
    assert harness.run(harness.redis.hget(harness.store.keys.job(job_id), "audit_owed")) is None
    assert harness.remote.applies == 1


def test_an_ended_job_left_due_by_a_half_done_settle_is_dropped_from_the_due_set(
    harness: Harness,
) -> None:
    # Given a settle that lost its ZREM (Redis died between its two commands): the job ended
    # and owes nothing, yet is still due
    job_id = harness.enqueue()
    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED
    harness.run(harness.redis.zadd(harness.store.keys.due, {job_id: 0}))

    # When it is delivered again, it is skipped and leaves the due set for good
    assert harness.run(harness.engine.process(job_id)) is Outcome.SKIPPED
    assert harness.run(harness.redis.zscore(harness.store.keys.due, job_id)) is None
    assert harness.remote.applies == 1


def test_finished_jobs_owe_nothing(harness: Harness) -> None:
    job_id = harness.enqueue()
    harness.run(harness.engine.process(job_id))
    assert harness.run(harness.redis.zscore(harness.store.keys.due, job_id)) is None
    assert harness.run(harness.redis.hget(harness.store.keys.job(job_id), "audit_owed")) is None


def test_an_unclassified_provider_error_fails_instead_of_retrying(harness: Harness) -> None:
    # A bare ProviderError: the provider answered in a shape the adapter does not understand.
    from rotator.errors import ProviderError

    harness.provider.read_faults.append(
        ProviderError("read returned no object", provider="fake", status=200)
    )
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.FAILED
    job = harness.run(harness.store.load_job(job_id))
    assert job.last_error_class == "ProviderError"
    assert harness.remote.applies == 0
