"""The one retry decision: an exception and an attempt number in, "retry after N s" or "stop" out.

Like stamina's predicate that returns a delay, ``RetryPolicy.decide`` is the only code that
looks at an error to choose between retrying and ending a job, and it also chooses *how* the
job ends; the engine only carries the decision out::

    error                                        budget left            budget spent
    TransientError (Retry-After is a floor)      Retry(backoff)         Stop(dead)
    AuditUnavailable, any unexpected error       Retry(backoff)         Stop(dead)
    PermanentError, bare ProviderError,          Stop(failed)           Stop(failed)
    SecretSourceError, StaleVersion, ConfigError

``AuditUnavailable`` retries because no update was attempted (the engine fails closed); an
unexpected error (a bug, a Redis blip) gets the same budget. ``ConflictDetected`` and
``LeaseLost`` are verdicts rather than failures and never reach the policy: the engine ends
those jobs in ``conflict`` or leaves them to the lease holder.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from rotator.errors import (
    ConfigError,
    ProviderError,
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


@dataclass(frozen=True)
class Stop:
    state: JobState  # FAILED (retrying cannot help) or DEAD (the retry budget is spent)


Decision = Retry | Stop


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts and delay."""

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 300.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def decide(self, error: BaseException, attempt: int) -> Decision:
        """What to do after attempt ``attempt`` (1-based) ended with ``error``."""
        if not isinstance(error, TransientError) and isinstance(error, NEVER_RETRY):
            return Stop(JobState.FAILED)
        if attempt >= self.max_attempts:
            return Stop(JobState.DEAD)
        backoff = min(self.max_delay, self.base_delay * (2 ** max(0, attempt - 1)))
        delay = self.rng.uniform(backoff / 2, backoff)
        retry_after = error.retry_after if isinstance(error, TransientError) else None
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return Retry(delay)


def may_have_applied(error: ProviderError) -> bool:
    """Could the update that failed with ``error`` have reached the provider and taken effect?

    Not a retry question (the job retries or not either way) but what the next attempt must
    assume: a "maybe" makes it re-read before it may re-apply.
    """
    if isinstance(error, TransportError):
        return error.maybe_applied
    # A 5xx (a gateway timing out, a backend failing after the write) may have applied;
    # 4xx answers, 429 included, are refusals.
    return error.status >= 500 or error.status == 0


__all__ = ["NEVER_RETRY", "Decision", "Retry", "RetryPolicy", "Stop", "may_have_applied"]
