"""The whole rotator error tree. ``rotator.retry`` turns it into one retry decision.

::

    RotatorError
    ├── ConfigError                 invalid settings or targets file (names file, target, field)
    ├── YAMLRefused                 YAML that would take unbounded memory or stack (a ValueError)
    ├── FileRefused                 a referenced file that must never be read (system trees...)
    ├── StartupRefused              why a worker or beat cannot work, as one line: exit non-zero
    ├── MalformedJob                a job record in Redis that cannot be parsed -> quarantined
    ├── InvalidJobId                not a job id rotator makes (also a ValueError): refused
    ├── SecretSourceError           a secret source could not produce a value (missing file, env...)
    │   ├── UnknownSecretVersion        a job asks for a secret version that was never stored
    │   └── SecretFieldsInvalid         a value its targets cannot use, or that drops a field
    ├── StaleVersion                the job's secret version is older than the target's current
    ├── LeaseLost                   our fencing token is no longer the lease holder's
    ├── PlanWriteRefused            `rotator plan` was about to send a request that could write
    ├── AuditUnavailable            the audit sink cannot be written: no provider call is made
    ├── AuditKeyMismatch            the append script refused a batch chained with another key
    ├── CheckpointError             an audit checkpoint file unreadable or not authentic
    ├── ApiError                    an HTTP API call refused (status, code, message for the body)
    ├── BadInput                    a malformed HTTP API parameter (also a ValueError): a 400
    ├── IdempotencyKeyReused        an Idempotency-Key used before for a different request: 422
    ├── IdempotencyInProgress       a request with this Idempotency-Key is still running: 409
    ├── WriteNotDurable             a write crash safety rests on reached too few replicas in time
                                    (Redis WAIT): treated as not written, no remote write follows
    ├── DecryptionError             a stored secret version cannot be decrypted / is misplaced
    ├── EmbeddedRedisError          the embedded Redis server cannot start (also a RuntimeError)
    ├── ConflictDetected            the resource changed out of band: the job ends in `conflict`
    └── ProviderError               anything a provider adapter raises (never carries secret values)
        ├── TransientError          worth retrying with backoff
        │   ├── ProviderUnavailable     5xx, 423
        │   ├── RateLimited             429 (retry_after honoured)
        │   │   └── RateBudgetExhausted     our own rate budget has no room in the lease: unsent
        │   ├── TransportError          timeout, connection refused/reset, protocol error
        │   │   ├── CallDeadlineExceeded    the call (or the attempt's lease) ran out of time
        │   │   └── ResponseTooLarge        the decoded body is over the cap (a hostile peer)
        │   ├── VerificationFailed      the update succeeded but a re-read does not show it yet
        │   └── CircuitOpen             the provider host fails most calls: not called (breaker)
        └── PermanentError          retrying cannot help
            ├── BadRequest              400, 406, 415, 422
            ├── AuthError               401, 403 (after one token refresh)
            ├── NotFound                404
            ├── TLSVerificationFailed   the provider's certificate is not trusted (never skipped)
            ├── URLRefused              the URL is outside the operator's allow-list (urlpolicy)
            └── VersionConflict         412 / compare-before-write mismatch: the engine re-reads
                                        and decides between "already ours" and "conflict"

A *bare* ``ProviderError`` (neither transient nor permanent) means the provider answered, but
not in a shape the adapter understands: a 2xx read with no object in it, a 1xx/3xx status.
Retrying a response nobody understands cannot make it understood, and an unexplained answer
from an API that holds a live credential is for an operator to look at, so it fails the job at
once like a ``PermanentError`` (it used to fall through to "unexpected, retry" by accident).

Messages are built from status codes, provider error codes and titles only: adapters never put
request or response bodies that could echo a secret into an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class RotatorError(Exception):
    """Base of every error rotator raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    location: str  # e.g. "targets.adobe-sfdc.schedule" or "ROTATOR_MASTER_KEY"
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.location}: {self.message}"


class ConfigError(RotatorError):
    """Invalid configuration; carries every issue found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class MalformedJob(RotatorError):
    def __init__(self, job_id: str, reason: str) -> None:
        self.job_id = job_id
        self.reason = reason
        super().__init__(f"job {job_id} is malformed: {reason}")


class InvalidJobId(RotatorError, ValueError):
    """An id that rotator never generates, from a message, an argument or a Redis set. Ids
    become parts of key names, so such an id is refused before it reaches any key."""

    def __init__(self, value: object) -> None:
        # A bounded repr: the value came from outside.
        super().__init__(f"not a job id: {repr(value)[:80]}")


class SecretSourceError(RotatorError):
    pass


class UnknownSecretVersion(SecretSourceError):
    def __init__(self, secret: str, version: str) -> None:
        self.secret = secret
        self.version = version
        super().__init__(f"secret {secret} has no version {version}")


class SecretFieldsInvalid(SecretSourceError):
    """A secret value that its targets' providers cannot use, or that drops a field the
    previous version had (never retried: it is the value). Names fields, never values."""


class YAMLRefused(RotatorError, ValueError):
    """Valid YAML that would take unbounded memory or stack to load."""


class FileRefused(RotatorError):
    """A referenced file that must not be read; the message is safe to show."""


class StartupRefused(RotatorError):
    """Why this process cannot work, as one line for an operator."""


class AuditKeyMismatch(RotatorError):
    """The append script refused a batch chained with another key than the store's."""


class CheckpointError(RotatorError, ValueError):
    """A checkpoint file that cannot be read or whose lines are not authentic."""


@dataclass
class ApiError(RotatorError):
    """An HTTP API call refused; ``rotator.httpapi.app`` renders it as a JSON error body."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class BadInput(RotatorError, ValueError):
    """An HTTP API request parameter is malformed; the message says which and why."""


class IdempotencyKeyReused(RotatorError):
    """The Idempotency-Key was used before for a different request."""


class IdempotencyInProgress(RotatorError):
    """A request with this Idempotency-Key is still being handled."""


class StaleVersion(RotatorError):
    pass


class PlanWriteRefused(RotatorError):
    """``rotator plan`` was about to send a request that could change something."""


class LeaseLost(RotatorError):
    pass


class AuditUnavailable(RotatorError):
    pass


class WriteNotDurable(RotatorError):
    """A write that crash safety rests on (the pinned version, the intent before a remote
    write, a promotion) is on the Redis primary, but fewer than ``ROTATOR_REDIS_MIN_REPLICAS``
    replicas acknowledged it within ``ROTATOR_REDIS_REPLICA_TIMEOUT``: a failover now could lose
    it. The attempt treats it as not written (nothing is sent to a provider after it) and
    retries; ``rotator.retry`` decides like for any transient failure."""

    def __init__(self, step: str, acked: int, needed: int, timeout: float) -> None:
        self.step = step
        self.acked = acked
        self.needed = needed
        super().__init__(
            f"{step}: {acked} of {needed} replica(s) acknowledged the write within {timeout:g}s"
        )


class DecryptionError(RotatorError):
    pass


class EmbeddedRedisError(RotatorError, RuntimeError):
    pass


class ConflictDetected(RotatorError):
    """The remote resource changed out of band; ``before``/``after`` are its versions."""

    def __init__(self, detail: str, before: str | None, after: str | None) -> None:
        self.detail = detail
        self.before = before
        self.after = after
        super().__init__(detail)


class ProviderError(RotatorError):
    """An error from (or on the way to) a provider API.

    ``status`` is the HTTP status (0 for transport failures), ``code`` the provider's own error
    code when it has one (``FLOW-1404-412``, ``ValidationException``, ``NCERRUnauthorizedAccess``).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int = 0,
        code: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.code = code
        self.retry_after = retry_after
        super().__init__(message)

    def __str__(self) -> str:
        parts = [
            p for p in (self.provider, str(self.status) if self.status else "", self.code) if p
        ]
        prefix = f"[{' '.join(parts)}] " if parts else ""
        return f"{prefix}{super().__str__()}"


class TransientError(ProviderError):
    pass


class ProviderUnavailable(TransientError):
    pass


class RateLimited(TransientError):
    pass


class RateBudgetExhausted(RateLimited):
    """The client-side rate budget (``rotator.providers.budget``) has no room for a request
    within what is left of the attempt's lease: the request was not sent, so nothing may have
    applied. ``retry_after`` is when the budget has room again."""


class TransportError(TransientError):
    """No usable response. ``maybe_applied`` is True when the request may have reached the
    provider (read timeout, reset after send): the engine must re-read before re-applying."""

    def __init__(self, message: str, *, maybe_applied: bool = False, **kw: object) -> None:
        self.maybe_applied = maybe_applied
        super().__init__(message, **kw)  # type: ignore[arg-type]


class CallDeadlineExceeded(TransportError):
    """A provider call ran past its total deadline (``ROTATOR_HTTP_TIMEOUT`` for the whole
    call, body included, and never beyond what is left of the attempt's lease)."""


class ResponseTooLarge(TransportError):
    """A response body, after decompression, is larger than ``ROTATOR_HTTP_MAX_RESPONSE_BYTES``:
    reading stopped there instead of holding whatever a hostile or broken peer sends."""


class VerificationFailed(TransientError):
    """The update succeeded but a re-read does not show it yet; the next attempt decides."""


class CircuitOpen(TransientError):
    """The provider host's circuit breaker is open (``rotator.breaker``): no call was made, so
    nothing may have applied. ``retry_after`` is when the breaker next lets a probe through."""


class PermanentError(ProviderError):
    pass


class BadRequest(PermanentError):
    pass


class AuthError(PermanentError):
    pass


class NotFound(PermanentError):
    pass


class VersionConflict(PermanentError):
    pass


class TLSVerificationFailed(PermanentError):
    """Retrying cannot make an untrusted certificate trusted: configure ``ca_bundle``."""


class URLRefused(PermanentError):
    """A request to a URL the operator's policy does not allow (``rotator.urlpolicy``): no
    request is sent, and retrying cannot help."""


_STATUS_CLASSES: dict[int, type[ProviderError]] = {
    400: BadRequest,
    401: AuthError,
    403: AuthError,
    404: NotFound,
    406: BadRequest,
    409: VersionConflict,
    412: VersionConflict,
    415: BadRequest,
    422: BadRequest,
    423: ProviderUnavailable,  # Commerce Layer "locked": a later attempt succeeds
    429: RateLimited,
}


def error_class_for_status(status: int) -> type[ProviderError]:
    """Status -> error class, the single table every adapter uses (adapters may refine 409)."""
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return ProviderUnavailable
    if status >= 400:
        return BadRequest
    return ProviderError
