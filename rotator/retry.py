"""The one retry decision: an error, an attempt number and whether the job's update may have
applied in, "retry after N s" or "stop" out.

Like stamina's predicate that returns a delay, ``RetryPolicy.decide`` is the only code that
looks at an error to choose between retrying and ending a job, and it also chooses *how* the
job ends; the engine only carries the decision out. While no update may have applied::

    error                                        budget left            budget spent
    TransientError (Retry-After is a floor,      Retry(backoff)         Stop(dead)
      CircuitOpen's included)
    AuditUnavailable, WriteNotDurable,           Retry(backoff)         Stop(dead)
      any unexpected error
    PermanentError, bare ProviderError,          Stop(failed)           Stop(failed)
    SecretSourceError, StaleVersion, ConfigError

The budget is time first: a job retries transient errors until ``budget`` seconds have passed
since it was created (``ROTATOR_RETRY_BUDGET``, 6 h), so a brownout of minutes or hours costs a
delay, not a rotation period. ``max_attempts`` is only a safety cap against a runaway loop,
sized so that the time budget binds: with delays capped at ``max_delay`` the budget runs out
long before the count does.

Once the update has applied or may have applied (``applied_for`` is the time since), the
attempt budget no longer applies: giving up would leave the provider holding a secret that
rotator's ``current`` does not name, the outage rotator exists to prevent. So::

    error                                        within verify_limit    verify_limit passed
    TransientError, AuditUnavailable,            Retry(backoff,         Stop(unverified)
    any unexpected error                           verifying)
    PermanentError, bare ProviderError, ...      Stop(unverified)       Stop(unverified)

``unverified`` keeps the pending version pinned and is never reported as ``failed``: the next
job checks whether it is live. The backoff is the same capped exponential with jitter, so a job
verifying for a day re-reads about every ``max_delay`` seconds.

``AuditUnavailable`` and ``WriteNotDurable`` (a pin or intent that too few Redis replicas
acknowledged in time) retry because no update was attempted: the engine fails closed and
journals the refusal, so "nothing applied" holds and the job stays out of ``verifying``. An
unexpected error (a bug, a Redis blip) gets the same budget. ``ConflictDetected`` and
``LeaseLost`` are verdicts rather than failures and never reach the policy: the engine ends
those jobs in ``conflict`` or leaves them to the lease holder.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rotator.errors import (
    CircuitOpen,
    ConfigError,
    ProviderError,
    RateBudgetExhausted,
    SecretSourceError,
    StaleVersion,
    TransientError,
    TransportError,
)
from rotator.models import JobState

# The never-retry list. TransientError is a ProviderError too and is checked first.
NEVER_RETRY: tuple[type[Exception], ...] = (
    ProviderError,
    SecretSourceError,
    StaleVersion,
    ConfigError,
)


@dataclass(frozen=True)
class Retry:
    delay: float  # seconds until the next attempt
    state: JobState = JobState.RETRYING  # VERIFYING once the update may have applied


@dataclass(frozen=True)
class Stop:
    # FAILED (retrying cannot help), DEAD (the retry budget is spent) or UNVERIFIED (the
    # update may be live but could not be verified)
    state: JobState


Decision = Retry | Stop


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in time (``budget``), attempts and delay."""

    max_attempts: int = 200  # a safety cap: the time budget is what binds
    budget: float = 6 * 3600.0  # seconds from the job's creation during which it may retry
    base_delay: float = 1.0
    max_delay: float = 300.0
    verify_limit: float = 24 * 3600.0  # how long a maybe-applied update is re-verified
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def decide(
        self,
        error: BaseException,
        attempt: int,
        applied_for: float | None = None,
        elapsed: float = 0.0,
    ) -> Decision:
        """What to do after attempt ``attempt`` (1-based) ended with ``error``.

        ``applied_for``: seconds since the job's update first applied or may have applied;
        None while no update may have reached the provider. ``elapsed``: seconds since the job
        was created (the time budget counts from there).
        """
        never_retry = not isinstance(error, TransientError) and isinstance(error, NEVER_RETRY)
        if applied_for is not None:
            if never_retry or applied_for >= self.verify_limit:
                return Stop(JobState.UNVERIFIED)
            return Retry(self._delay(error, attempt), JobState.VERIFYING)
        if never_retry:
            return Stop(JobState.FAILED)
        if attempt >= self.max_attempts or elapsed >= self.budget:
            return Stop(JobState.DEAD)
        # The last retry lands at the budget's end rather than past it.
        return Retry(min(self._delay(error, attempt), max(0.0, self.budget - elapsed)))

    def _delay(self, error: BaseException, attempt: int) -> float:
        # The exponent is capped: a job verifying for a day can reach thousands of attempts,
        # and 2**1024 no longer converts to a float.
        backoff = min(self.max_delay, self.base_delay * (2 ** min(max(0, attempt - 1), 60)))
        delay = self.rng.uniform(backoff / 2, backoff)
        retry_after = error.retry_after if isinstance(error, TransientError) else None
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return delay


class UpdateJournal(Protocol):
    """What ``verifying_since`` reads of a job's journal (``rotator.attempt.JobJournal``)."""

    def get(self, step: str) -> Mapping[str, Any] | None: ...

    def earlier_update_may_have_applied(self) -> bool: ...


def verifying_since(journal: UpdateJournal, recorded: float | None) -> float | None:
    """When the job's update first applied or may have applied (``decide``'s ``applied_for``
    counts from here); None while no update may have reached the provider.

    ``recorded`` is the time kept on the job once it first went verifying. Before that, the
    earliest journalled intent or apply time stands in: a later attempt's intent replaces an
    earlier one, so this may start late by one attempt, which a limit of hours does not feel.
    """
    applied = journal.get("applied")
    if applied is None and not journal.earlier_update_may_have_applied():
        return None
    if recorded is not None:
        return recorded
    steps = (applied, journal.get("intent"))
    return min(
        (float(step["at"]) for step in steps if step and step.get("at")), default=time.time()
    )


def may_have_applied(error: ProviderError) -> bool:
    """Could the update that failed with ``error`` have reached the provider and taken effect?

    Not a retry question (the job retries or not either way) but what the next attempt must
    assume: a "maybe" makes it re-read before it may re-apply.
    """
    if isinstance(error, (RateBudgetExhausted, CircuitOpen)):
        return False  # refused before anything was sent
    if isinstance(error, TransportError):
        return error.maybe_applied
    # A 5xx (a gateway timing out, a backend failing after the write) may have applied;
    # 4xx answers, 429 included, are refusals.
    return error.status >= 500 or error.status == 0


__all__ = [
    "NEVER_RETRY",
    "Decision",
    "Retry",
    "RetryPolicy",
    "Stop",
    "UpdateJournal",
    "may_have_applied",
    "verifying_since",
]
