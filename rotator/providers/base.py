"""The one small interface every provider adapter implements, and the plumbing they share.

An adapter turns "make this secret live on that resource" into provider API calls. It never
decides retries (``rotator.errors.RetryPolicy`` does), never touches Redis, and never puts a
secret value into an exception, a log line or a returned summary.

The engine drives an adapter like this (see ``rotator.engine``)::

    live = await adapter.read(target, journal)
    if adapter.carries(live, want, applied) is not Evidence.OURS:
        applied = (await adapter.apply(target, secret, live, want, journal)).version
    after = await adapter.read(target, journal)
    if adapter.carries(after, want, applied) is Evidence.NOT_OURS:
        raise VerificationFailed(...)                  # UNKNOWN passes: the API cannot show it

``RemoteState.version`` is what the compare-before-write uses (an etag, ``lastUpdatedAt``,
``updatedAt``...). ``RemoteState.marker`` is evidence, readable from the live resource, of which
rotator secret version was last applied (a description suffix, a metadata entry, the desired
group set...), or None where the API shows nothing of the kind (AppFlow hides credentials).

``BaseProvider`` holds what adapters share by default (the context, marker-based ``carries``,
a no-op ``after_promote``); ``rotator.providers.oauth`` adds the bearer-token plumbing.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import certifi
import httpx

from rotator import redaction
from rotator.breaker import host_failed, tally_call
from rotator.errors import (
    AuthError,
    BadRequest,
    CallDeadlineExceeded,
    ProviderError,
    RateLimited,
    TLSVerificationFailed,
    TransportError,
    error_class_for_status,
)
from rotator.lease import before_remote_write, call_time_left
from rotator.metrics import metered
from rotator.providers.bounded import (
    DEFAULT_MAX_RESPONSE_BYTES,
    BoundedClient,
    bounds,
    exchange,
)
from rotator.providers.budget import LocalRateLimiter, RateLimiter
from rotator.providers.tokens import CachedToken, Mint, TokenCache, Tokens
from rotator.urlpolicy import UrlPolicy


class SecretPayload:
    """A secret value in flight. Its repr and str never show the value, and creating one
    registers the value for redaction in the current task (``rotator.redaction.hold``)."""

    __slots__ = ("fields", "version_id", "fingerprint")

    def __init__(self, fields: Mapping[str, Any], version_id: str, fingerprint: str) -> None:
        self.fields = dict(fields)
        self.version_id = version_id
        self.fingerprint = fingerprint
        redaction.hold(self.fields)

    def __repr__(self) -> str:
        return f"SecretPayload(version_id={self.version_id!r}, fingerprint={self.fingerprint!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class Want:
    """What this rotation wants live: identifies the secret version without revealing it."""

    version_id: str
    fingerprint: str
    job_id: str

    @property
    def marker(self) -> str:
        # Scoped to the job: a later job with the same version must not take an earlier job's
        # marker (left behind by a conflict or an out-of-band edit) for its own update.
        return f"rotator:{self.version_id}:{self.fingerprint[:12]}:{self.job_id[:12]}"

    @property
    def idempotency_key(self) -> str:
        # Stable across every retry of one job, different for every other job and version.
        return f"{self.job_id}.{self.version_id}"


@dataclass(frozen=True)
class RemoteState:
    version: str
    marker: str | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)  # non-secret facts for the audit
    # What the adapter read, for its own update of this same version (never audited or shown):
    # an update sent with this version's compare-and-set can build on it instead of reading
    # the resource again.
    resource: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The version is provider text that is stored (journal, audit, conflict details) and
        # shown: no real etag or timestamp holds control characters, a hostile one might.
        object.__setattr__(self, "version", redaction.strip_controls(str(self.version)))


@dataclass(frozen=True)
class ApplyResult:
    version: str | None = None  # the remote version after the update, when the response says


@dataclass(frozen=True)
class TargetSpec:
    """One provider resource, as the engine hands it to an adapter."""

    name: str
    provider: str
    base_url: str
    resource_id: str
    options: Mapping[str, Any]
    credentials: Mapping[str, str]  # management-API credentials, resolved from env:/file: refs
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        # The management credentials are secrets too: a provider echoing one back is redacted.
        redaction.hold(self.credentials)

    def __repr__(self) -> str:
        return f"TargetSpec(name={self.name!r}, provider={self.provider!r})"


class Journal(Protocol):
    """The job's step journal: adapters with multi-step updates record and resume through it."""

    def get(self, step: str) -> Mapping[str, Any] | None: ...

    async def record(self, step: str, data: Mapping[str, Any]) -> None: ...


class Evidence(enum.Enum):
    """What a live resource shows about one rotation's update."""

    OURS = "ours"  # the live state carries this rotation's update
    NOT_OURS = "not_ours"  # it visibly does not (never applied, or changed again since)
    UNKNOWN = "unknown"  # the API cannot show it either way (AppFlow hides credentials)

    @classmethod
    def shown(cls, ours: bool) -> Evidence:
        return cls.OURS if ours else cls.NOT_OURS


class Provider(Protocol):
    name: ClassVar[str]
    # Consulted only when ``carries`` answers UNKNOWN (a blind provider, today AppFlow): True
    # when re-sending the same update with the same idempotency key can neither apply it twice
    # nor clobber a newer change (AppFlow's clientToken). Providers that can show their update
    # never need it.
    replay_safe: ClassVar[bool]

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState: ...

    async def apply(
        self,
        target: TargetSpec,
        secret: SecretPayload,
        expected: RemoteState,
        want: Want,
        journal: Journal,
    ) -> ApplyResult: ...

    def carries(
        self, live: RemoteState, want: Want, applied_version: str | None = None
    ) -> Evidence: ...

    async def after_promote(self, target: TargetSpec, journal: Journal) -> None: ...


class BaseProvider:
    """Defaults for adapters: the shared context, marker evidence, no post-promotion work.

    Subclasses set ``name`` and implement ``read`` and ``apply``.
    """

    name: ClassVar[str]
    replay_safe: ClassVar[bool] = False  # see Provider.replay_safe: only blind providers use it
    # rotator.urlpolicy: the hosts of the real service (patterns) and the options holding URLs
    # the adapter calls; a self-hosted product has no default host.
    allowed_hosts: ClassVar[tuple[str, ...]] = ()
    url_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: ProviderContext) -> None:
        self._ctx = context

    def carries(
        self, live: RemoteState, want: Want, applied_version: str | None = None
    ) -> Evidence:
        """The live marker is this rotation's marker. ``applied_version`` is ignored here:
        adapters whose marker survives a later out-of-band change override this."""
        return Evidence.shown(live.marker == want.marker)

    async def after_promote(self, target: TargetSpec, journal: Journal) -> None:
        return None


@dataclass
class ProviderContext:
    """What adapters share inside one process: pooled HTTP clients, the token cache and the
    rate limiter. The runtime injects the Redis-backed ones (shared by every process); the
    in-process defaults serve tests and commands without Redis."""

    # Per read/connect for httpx AND for each call as a whole (headers and body), in seconds.
    timeout: float = 10.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_connections: int = 128
    # httpcore's pool does work proportional to its size on every request, so many rotations
    # in flight are spread over several small pools instead of one large one (measured by
    # tools/bench.py: ~7 ms of CPU per request with one 256-connection pool, <1 ms with 8s).
    connections_per_client: int = 8
    tokens: Tokens = field(default_factory=TokenCache)
    rate_limiter: RateLimiter = field(default_factory=LocalRateLimiter)
    transport: httpx.AsyncBaseTransport | None = None  # tests inject httpx.MockTransport here
    # Checked on every request (rotator.urlpolicy); the runtime always sets it. None only in
    # adapter unit tests, whose injected transport never leaves the process.
    url_policy: UrlPolicy | None = None
    _pools: dict[tuple[str, str | None], tuple[list[httpx.AsyncClient], itertools.count[int]]] = (
        field(default_factory=dict)
    )

    def client(self, target: TargetSpec) -> httpx.AsyncClient:
        """A pooled client for the target's TLS trust setting, taken in turn from a few small
        pools. Verification is always on: a target may add a CA bundle, never turn it off."""
        # Per provider too: the request hook checks each URL against that provider's hosts.
        key = (target.provider, target.ca_bundle)
        pool = self._pools.get(key)
        if pool is None:
            # The same public roots httpx trusts by default, plus the target's private CA.
            verify = ssl.create_default_context(cafile=certifi.where())
            if target.ca_bundle:
                verify.load_verify_locations(cafile=target.ca_bundle)
            hooks = [self.url_policy.request_hook(target.provider)] if self.url_policy else []
            size = max(1, min(self.connections_per_client, self.max_connections))
            count = max(1, self.max_connections // size)
            clients: list[httpx.AsyncClient] = [
                BoundedClient(
                    total_timeout=self.timeout,
                    max_response_bytes=self.max_response_bytes,
                    timeout=httpx.Timeout(self.timeout),
                    limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                    verify=verify,
                    transport=self.transport,
                    follow_redirects=False,  # a redirect must not take a request elsewhere
                    event_hooks={"request": hooks},
                    # Only encodings ``send`` can inflate a bounded amount at a time.
                    headers={"Accept-Encoding": "gzip, deflate"},
                )
                for _ in range(count)
            ]
            pool = self._pools[key] = (clients, itertools.count())
        clients, turn = pool
        return clients[next(turn) % len(clients)]

    def __repr__(self) -> str:
        # Never the transport or the pools: only what identifies the context.
        return f"ProviderContext(timeout={self.timeout}, max_connections={self.max_connections})"

    async def aclose(self) -> None:
        for clients, _turn in self._pools.values():
            for client in clients:
                await client.aclose()
        self._pools.clear()


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def send(
    client: httpx.AsyncClient,
    provider: str,
    method: str,
    url: str,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request and read its body, bounded in time and size; failures become
    TransportError.

    The whole call (connect, headers, body) must end within the client's total timeout and
    within what is left of the attempt's lease (``rotator.lease.call_time_left``): httpx's own
    timeouts are per read, which a peer trickling a few bytes a second never trips. The body is
    inflated a bounded amount at a time and reading stops past the size cap
    (``ResponseTooLarge``), so a small gzip bomb cannot become megabytes in memory.

    A failure after the request may have been written (read timeout, reset, protocol error,
    deadline or oversized answer on a non-GET) is flagged ``maybe_applied``: the engine then
    re-reads instead of assuming nothing happened.
    """
    unsafe = method.upper() not in _SAFE_METHODS
    if unsafe:
        await before_remote_write()  # inside an attempt: only with enough lease left for it
    total, cap = bounds(client)
    left = call_time_left()
    budget = total if left is None else min(total, left)
    if budget <= 0:
        raise CallDeadlineExceeded(
            "no time left of the attempt's lease for another provider call", provider=provider
        )
    try:
        async with asyncio.timeout(budget):
            response = await metered(exchange)(client, method, url, cap, provider, unsafe, kwargs)
    except (TimeoutError, httpx.TransportError) as exc:
        tally_call(not _certificate_rejected(exc))  # the host failing, for the breaker
        raise _transport_failure(exc, provider, budget, unsafe) from None
    tally_call(host_failed(response.status_code))
    return response


def _transport_failure(
    exc: TimeoutError | httpx.TransportError, provider: str, budget: float, unsafe: bool
) -> ProviderError:
    if isinstance(exc, TimeoutError):
        return CallDeadlineExceeded(
            f"provider call did not finish within {budget:.1f}s",
            provider=provider,
            maybe_applied=unsafe,
        )
    if isinstance(exc, httpx.ConnectError) and _certificate_rejected(exc):
        return TLSVerificationFailed(
            "the provider's TLS certificate is not trusted; set the target's ca_bundle",
            provider=provider,
        )
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        # Nothing was sent: the request cannot have applied.
        return TransportError(f"{type(exc).__name__} connecting to provider", provider=provider)
    return TransportError(
        f"{type(exc).__name__} talking to provider", provider=provider, maybe_applied=unsafe
    )


async def authorized(
    tokens: Tokens,
    key: tuple[str, ...],
    mint: Mint,
    call: Callable[[str], Awaitable[httpx.Response]],
) -> httpx.Response:
    """Call with a cached token; on 401 drop that token, mint once more and call again.

    A 401 means the provider did not act on the request, so the second call is safe even for
    updates. A second 401 is returned to the caller to map (AuthError).
    """
    token = await tokens.get(key, mint)
    response = await call(token)
    if response.status_code == 401:
        await tokens.invalidate(key, token)
        token = await tokens.get(key, mint)
        response = await call(token)
    return response


def require(mapping: Mapping[str, Any], key: str, what: str) -> Any:
    """A required credential/option, with an error that names it (and never a value)."""
    value = mapping.get(key)
    if value in (None, ""):
        raise BadRequest(f"{what} {key!r} is not configured for this target")
    return value


def redact(exc: ProviderError, secret: SecretPayload) -> None:
    """Blank out any secret value a provider's error quotes back, in any form (AWS validation
    messages quote offending values, for one), in the message and the code. Applied by
    adapters and again by the engine; ``rotator.redaction`` says what "any form" covers."""
    redaction.hold(secret.fields)
    message = str(exc.args[0]) if exc.args else ""
    exc.args = (redaction.provider_message(message, limit=redaction.DESCRIBE_LIMIT),)
    exc.code = redaction.provider_code(exc.code)


def _certificate_rejected(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def parse_retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def raise_for_status(
    response: httpx.Response,
    provider: str,
    describe: Callable[[httpx.Response], tuple[str, str]],
    overrides: Mapping[int, type[ProviderError]] | None = None,
) -> None:
    """Raise the mapped ProviderError for a non-2xx response.

    ``describe`` extracts (code, message) from the provider's error body; it must pick fields
    like code/title/message and never echo request data. What is kept of them is bounded and
    redacted here whatever ``describe`` picks: a code only when it looks like one, a message
    of at most ``MESSAGE_LIMIT`` characters with no control characters or held secret values.
    """
    if response.status_code < 400:
        return
    try:
        code, message = describe(response)
    except Exception:  # a malformed error body must not hide the status
        code, message = "", ""
    cls = (overrides or {}).get(response.status_code) or error_class_for_status(
        response.status_code
    )
    kwargs: dict[str, Any] = {
        "provider": provider,
        "status": response.status_code,
        "code": redaction.provider_code(code),
    }
    if issubclass(cls, RateLimited) or response.status_code >= 500:
        kwargs["retry_after"] = parse_retry_after(response)
    text = redaction.provider_message(message) or response.reason_phrase or "provider error"
    raise cls(text, **kwargs)


__all__ = [
    "ApplyResult",
    "AuthError",
    "BaseProvider",
    "BoundedClient",
    "CachedToken",
    "Evidence",
    "Journal",
    "Provider",
    "ProviderContext",
    "RemoteState",
    "SecretPayload",
    "TargetSpec",
    "TokenCache",
    "Tokens",
    "Want",
    "authorized",
    "parse_retry_after",
    "require",
    "raise_for_status",
    "redact",
    "send",
]
