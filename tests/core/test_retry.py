"""The one retry decision: every error class lands on exactly one of retry / failed / dead."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotator.errors import (
    AuditUnavailable,
    AuthError,
    BadRequest,
    ConfigError,
    DecryptionError,
    MalformedJob,
    NotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    SecretSourceError,
    StaleVersion,
    TLSVerificationFailed,
    TransportError,
    UnknownSecretVersion,
    VerificationFailed,
    VersionConflict,
)
from rotator.models import JobState
from rotator.retry import Retry, RetryPolicy, Stop, may_have_applied, verifying_since


@given(attempt=st.integers(min_value=1, max_value=5), retry_after=st.floats(0, 1000))
def test_retry_after_is_a_floor_and_delays_are_bounded(attempt: int, retry_after: float) -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=1, max_delay=60, rng=random.Random(1))
    decision = policy.decide(RateLimited("slow down", retry_after=retry_after), attempt)
    assert isinstance(decision, Retry)
    assert decision.delay >= min(retry_after, 60)
    assert decision.delay <= 60


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 9])
def test_delays_are_full_jitter_exponential_backoff(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=2, max_delay=20, rng=random.Random(7))
    backoff = min(20, 2 * 2 ** (attempt - 1))
    expected = random.Random(7).uniform(backoff / 2, backoff)

    assert policy.decide(TransportError("reset"), attempt) == Retry(expected)


@pytest.mark.parametrize(
    "error",
    [
        ProviderUnavailable("down", status=503),
        RateLimited("slow", status=429),
        TransportError("reset"),
        VerificationFailed("not visible yet"),
        AuditUnavailable("stream unavailable"),
        DecryptionError("cannot decrypt"),
        MalformedJob("j1", "missing field"),
        RuntimeError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient_and_unexpected_errors_retry_then_go_dead(error: Exception) -> None:
    policy = RetryPolicy(max_attempts=3)

    assert isinstance(policy.decide(error, 1), Retry)
    assert isinstance(policy.decide(error, 2), Retry)
    assert policy.decide(error, 3) == Stop(JobState.DEAD)


@pytest.mark.parametrize(
    "error",
    [
        BadRequest("no", status=400),
        AuthError("who", status=401),
        NotFound("gone", status=404),
        VersionConflict("moved", status=412),
        TLSVerificationFailed("untrusted"),
        SecretSourceError("no file"),
        UnknownSecretVersion("db", "v000000000009"),
        StaleVersion("older"),
        ConfigError([]),
        # A bare ProviderError: the provider answered in a shape the adapter cannot classify.
        ProviderError("read returned no object", provider="uipath", status=200),
        ProviderError("redirected", status=302),
    ],
    ids=lambda e: f"{type(e).__name__}-{getattr(e, 'status', '')}",
)
def test_permanent_errors_and_bare_provider_errors_fail_at_once(error: Exception) -> None:
    policy = RetryPolicy(max_attempts=3)

    assert policy.decide(error, 1) == Stop(JobState.FAILED)
    assert policy.decide(error, 3) == Stop(JobState.FAILED)


@pytest.mark.parametrize(
    ("error", "maybe"),
    [
        (TransportError("read timeout", maybe_applied=True), True),
        (TransportError("refused"), False),
        (ProviderUnavailable("gateway timeout", status=504), True),
        (RateLimited("slow", status=429), False),
        (BadRequest("no", status=400), False),
        (ProviderError("no status"), True),
    ],
)
def test_may_have_applied(error: ProviderError, maybe: bool) -> None:
    assert may_have_applied(error) is maybe


# -- once the update applied or may have applied (issue 9.1) ------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ProviderUnavailable("down", status=503),
        RateLimited("slow", status=429),
        TransportError("reset"),
        VerificationFailed("not visible yet"),
        AuditUnavailable("stream unavailable"),
        RuntimeError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_applied_update_keeps_verifying_past_the_attempt_budget(error: Exception) -> None:
    policy = RetryPolicy(max_attempts=3, verify_limit=3600)

    for attempt in (1, 3, 4, 50):
        decision = policy.decide(error, attempt, applied_for=60.0)
        assert isinstance(decision, Retry) and decision.state is JobState.VERIFYING


def test_the_verify_limit_ends_it_unverified_never_dead() -> None:
    policy = RetryPolicy(max_attempts=3, verify_limit=3600)

    assert policy.decide(TransportError("reset"), 2, applied_for=3599.0).state is (
        JobState.VERIFYING
    )
    assert policy.decide(TransportError("reset"), 2, applied_for=3600.0) == Stop(
        JobState.UNVERIFIED
    )


@pytest.mark.parametrize(
    "error",
    [AuthError("who", status=401), NotFound("gone", status=404), ConfigError([])],
    ids=lambda e: type(e).__name__,
)
def test_a_permanent_error_after_the_update_is_unverified_not_failed(error: Exception) -> None:
    assert RetryPolicy().decide(error, 1, applied_for=0.0) == Stop(JobState.UNVERIFIED)


def test_without_an_applied_update_nothing_changes() -> None:
    policy = RetryPolicy(max_attempts=2)

    first = policy.decide(TransportError("reset"), 1)
    assert isinstance(first, Retry) and first.state is JobState.RETRYING
    assert policy.decide(TransportError("reset"), 2) == Stop(JobState.DEAD)


@given(attempt=st.integers(min_value=1, max_value=100_000))
def test_verify_delays_stay_capped_after_thousands_of_attempts(attempt: int) -> None:
    policy = RetryPolicy(base_delay=2, max_delay=600, verify_limit=86400, rng=random.Random(3))

    decision = policy.decide(ProviderUnavailable("down", status=503), attempt, applied_for=1.0)

    assert isinstance(decision, Retry) and 0 < decision.delay <= 600


class Journal:
    def __init__(self, steps: dict[str, dict[str, float]], maybe: bool) -> None:
        self.steps, self.maybe = steps, maybe

    def get(self, step: str) -> dict[str, float] | None:
        return self.steps.get(step)

    def earlier_update_may_have_applied(self) -> bool:
        return self.maybe


def test_verifying_since_counts_from_the_first_possible_apply() -> None:
    intent, applied = {"at": 100.0}, {"at": 101.0}

    assert verifying_since(Journal({}, maybe=False), None) is None
    assert verifying_since(Journal({"intent": intent}, maybe=False), None) is None  # refused
    assert verifying_since(Journal({"intent": intent}, maybe=True), None) == 100.0
    both = Journal({"intent": intent, "applied": applied}, maybe=False)
    assert verifying_since(both, None) == 100.0
    assert verifying_since(both, 42.0) == 42.0  # kept on the job once set
