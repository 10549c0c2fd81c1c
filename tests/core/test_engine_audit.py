"""The audit trail of each main path, event by event, as exact dicts.

Only the volatile fields are masked: ``time`` and ``duration_ms``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from rotator.engine import Outcome
from rotator.errors import BadRequest, ProviderUnavailable, RateLimited
from rotator.models import JobState
from rotator.retry import RetryPolicy
from tests.core.conftest import CANARY, Harness
from tests.core.fakes import CapturingAudit

MASKED = "<masked>"
V1 = "v000000000001"


@pytest.fixture
def audit(harness: Harness) -> Iterator[CapturingAudit]:
    sink = CapturingAudit()
    harness.engine.audit = sink
    harness.engine.options.retry = RetryPolicy(
        max_attempts=2, base_delay=0.01, rng=random.Random(0)
    )
    yield sink


def masked(sink: CapturingAudit) -> list[dict[str, Any]]:
    return [{**e, "time": MASKED, "duration_ms": MASKED} for e in sink.events]


def fingerprint(h: Harness) -> str:
    return h.store.vault.fingerprint({"username": "svc", "password": CANARY})


def event(name: str, job_id: str, attempt: int = 1, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "time": MASKED,
        "event": name,
        "job_id": job_id,
        "target": "crm",
        "provider": "fake",
        "attempt": attempt,
        "actor": "test",
        "reason": "on-demand",
        "secret_version": None,
        "fingerprint": None,
        "remote_version_before": None,
        "remote_version_after": None,
        "duration_ms": MASKED,
        "error_class": None,
        "outcome": None,
        "detail": None,
    }
    return {**base, **fields}


def until_intent(h: Harness, job_id: str) -> list[dict[str, Any]]:
    """A first attempt's events up to its update: started, pinned, read, intent."""
    pinned = {"secret_version": V1, "fingerprint": fingerprint(h)}
    return [
        event("job.started", job_id),
        event("secret.loaded", job_id, **pinned),
        event("remote.read", job_id, **pinned, remote_version_before="e1"),
        event("update.intent", job_id, **pinned, remote_version_before="e1"),
    ]


def test_success(harness: Harness, audit: CapturingAudit) -> None:
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.COMPLETED

    pinned = {"secret_version": V1, "fingerprint": fingerprint(harness)}
    assert masked(audit) == [
        *until_intent(harness, job_id),
        event(
            "update.applied",
            job_id,
            **pinned,
            remote_version_before="e1",
            remote_version_after="e2",
        ),
        event(
            "update.verified",
            job_id,
            **pinned,
            remote_version_before="e1",
            remote_version_after="e2",
        ),
        event(
            "job.completed",
            job_id,
            **pinned,
            remote_version_after="e2",
            outcome="success",
            detail=f"promoted {V1} to current (previous: -)",
        ),
    ]


def test_retry_then_dead(harness: Harness, audit: CapturingAudit) -> None:
    # A 429 is a refusal: nothing applied, so the attempt budget ends the job.
    harness.provider.apply_faults.extend([RateLimited("boom", provider="fake", status=429)] * 2)
    job_id = harness.enqueue()

    outcomes = [harness.run(harness.engine.process(job_id)) for _ in range(2)]

    assert outcomes == [Outcome.RETRY, Outcome.DEAD]
    pinned = {"secret_version": V1, "fingerprint": fingerprint(harness)}
    again = [
        event("job.started", job_id, 2),
        event("remote.read", job_id, 2, **pinned, remote_version_before="e1"),
        event("update.intent", job_id, 2, **pinned, remote_version_before="e1"),
    ]
    assert masked(audit) == [
        *until_intent(harness, job_id),
        event(
            "job.retry_scheduled",
            job_id,
            **pinned,
            outcome="retry",
            error_class="RateLimited",
            detail="[fake 429] boom; retry in 0.0s",
        ),
        *again,
        event(
            "job.dead",
            job_id,
            2,
            **pinned,
            outcome="dead",
            error_class="RateLimited",
            detail="[fake 429] boom",
        ),
    ]


def test_failed(harness: Harness, audit: CapturingAudit) -> None:
    harness.provider.apply_faults.append(
        BadRequest("invalid patch", status=400, code="FLOW-1455-400")
    )
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.FAILED

    assert masked(audit)[-1] == event(
        "job.failed",
        job_id,
        secret_version=V1,
        fingerprint=fingerprint(harness),
        outcome="failed",
        error_class="BadRequest",
        detail="[400 FLOW-1455-400] invalid patch",
    )
    assert [e["event"] for e in audit.events] == [
        "job.started",
        "secret.loaded",
        "remote.read",
        "update.intent",
        "job.failed",
    ]


def test_conflict(harness: Harness, audit: CapturingAudit) -> None:
    # The resource changes between our read and our update: the provider answers 412.
    harness.provider.after_read.append(harness.remote.oob_edit)
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.CONFLICT

    pinned = {"secret_version": V1, "fingerprint": fingerprint(harness)}
    assert masked(audit) == [
        *until_intent(harness, job_id),
        event(
            "job.conflict",
            job_id,
            **pinned,
            remote_version_before="e1",
            remote_version_after="e2",
            outcome="conflict",
            error_class="Conflict",
            detail="compare-before-write refused the update (412); remote is e2, not ours",
        ),
    ]


def test_requested_version_that_does_not_exist_fails_with_a_clear_reason(
    harness: Harness, audit: CapturingAudit
) -> None:
    job_id = harness.enqueue(requested_version="v000000000009")

    assert harness.run(harness.engine.process(job_id)) is Outcome.FAILED

    job = harness.run(harness.store.load_job(job_id))
    assert job.state is JobState.FAILED
    assert job.last_error == "secret db-password has no version v000000000009"
    assert masked(audit) == [
        event("job.started", job_id),
        event(
            "job.failed",
            job_id,
            outcome="failed",
            error_class="UnknownSecretVersion",
            detail="secret db-password has no version v000000000009",
        ),
    ]


def test_verifying_past_the_attempt_budget_then_completed(
    harness: Harness, audit: CapturingAudit
) -> None:
    # Given the update lands, then the next two re-reads fail (the budget is 2 attempts)
    harness.provider.after_read.append(
        lambda: harness.provider.read_faults.extend(
            [ProviderUnavailable("boom", provider="fake", status=503)] * 2
        )
    )
    job_id = harness.enqueue()

    outcomes = [harness.run(harness.engine.process(job_id)) for _ in range(3)]

    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.COMPLETED]
    pinned = {"secret_version": V1, "fingerprint": fingerprint(harness)}
    verify_again = event(
        "job.verify_scheduled",
        job_id,
        **pinned,
        outcome="retry",
        error_class="ProviderUnavailable",
        detail="[fake 503] boom; the update may be live, verify again in 0.0s",
    )
    assert masked(audit) == [
        *until_intent(harness, job_id),
        event(
            "update.applied",
            job_id,
            **pinned,
            remote_version_before="e1",
            remote_version_after="e2",
        ),
        verify_again,
        event("job.started", job_id, 2),
        {**verify_again, "attempt": 2},
        event("job.started", job_id, 3),
        event("remote.read", job_id, 3, **pinned, remote_version_before="e2"),
        event(
            "update.verified",
            job_id,
            3,
            **pinned,
            remote_version_before="e2",
            remote_version_after="e2",
        ),
        event(
            "job.completed",
            job_id,
            3,
            **pinned,
            remote_version_after="e2",
            outcome="success",
            detail=f"promoted {V1} to current (previous: -)",
        ),
    ]


def test_unverified_after_the_verify_limit(harness: Harness, audit: CapturingAudit) -> None:
    harness.engine.options.retry = RetryPolicy(max_attempts=2, base_delay=0.01, verify_limit=0)
    harness.provider.after_read.append(
        lambda: harness.provider.read_faults.append(
            ProviderUnavailable("boom", provider="fake", status=503)
        )
    )
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.UNVERIFIED

    assert masked(audit)[-1] == event(
        "job.unverified",
        job_id,
        secret_version=V1,
        fingerprint=fingerprint(harness),
        outcome="unverified",
        error_class="ProviderUnavailable",
        detail=f"[fake 503] boom; not verified after 0s: the update may be live, {V1} stays "
        "pending for the next job to check",
    )
    assert harness.run(harness.store.load_job(job_id)).state is JobState.UNVERIFIED
