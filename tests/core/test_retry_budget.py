"""Issue 14: transient failures retry within a time budget, not a small attempt count."""

from __future__ import annotations

import random

from rotator.errors import AuthError, CircuitOpen, ProviderUnavailable, RateLimited
from rotator.models import JobState
from rotator.retry import Retry, RetryPolicy, Stop


def test_defaults_make_the_time_budget_bind_not_the_attempt_count() -> None:
    # Given the default policy and an outage that never ends
    policy = RetryPolicy(base_delay=2.0, max_delay=600.0, rng=random.Random(3))
    elapsed, attempt = 0.0, 1
    # When the job keeps failing transiently
    while True:
        decision = policy.decide(ProviderUnavailable("down", status=503), attempt, None, elapsed)
        if isinstance(decision, Stop):
            break
        elapsed += decision.delay
        attempt += 1
    # Then it retried for the whole 6 h budget, well inside the 200-attempt cap
    assert decision == Stop(JobState.DEAD)
    assert elapsed >= 6 * 3600
    assert attempt < policy.max_attempts


def test_a_one_minute_brownout_does_not_dead_letter_a_job() -> None:
    policy = RetryPolicy(rng=random.Random(0))
    for attempt in range(1, 30):
        decision = policy.decide(RateLimited("slow", status=429), attempt, None, 60.0)
        assert isinstance(decision, Retry)


def test_the_last_retry_lands_at_the_budget_end() -> None:
    policy = RetryPolicy(budget=100, base_delay=50, max_delay=50, rng=random.Random(0))
    decision = policy.decide(ProviderUnavailable("down", status=503), 3, None, 90.0)
    assert decision == Retry(10.0)
    assert policy.decide(ProviderUnavailable("down"), 4, None, 100.0) == Stop(JobState.DEAD)


def test_permanent_errors_still_stop_at_once_within_the_budget() -> None:
    policy = RetryPolicy()
    assert policy.decide(AuthError("denied", status=401), 1, None, 0.0) == Stop(JobState.FAILED)


def test_circuit_open_is_transient_and_waits_for_the_next_probe() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=600, rng=random.Random(0))
    decision = policy.decide(CircuitOpen("open", retry_after=25.0), 1, None, 0.0)
    assert isinstance(decision, Retry)
    assert decision.delay >= 25.0


def test_the_attempt_cap_still_stops_a_runaway_loop() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.decide(ProviderUnavailable("down"), 3, None, 0.0) == Stop(JobState.DEAD)


def test_verifying_ignores_the_budget_and_keeps_its_own_limit() -> None:
    policy = RetryPolicy(budget=10, verify_limit=3600, rng=random.Random(0))
    decision = policy.decide(ProviderUnavailable("down"), 50, 100.0, 10_000.0)
    assert isinstance(decision, Retry)
    assert decision.state is JobState.VERIFYING
