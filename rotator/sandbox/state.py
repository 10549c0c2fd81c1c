"""In-memory state shared by the sandbox's provider imitations: tokens, records, counters, config.

Everything lives on one asyncio event loop, so a handler that reads, checks and writes state
without an ``await`` in between is atomic; handlers read the request body first and then do
all their state work synchronously.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import math
import random
import secrets
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

PROVIDERS: tuple[str, ...] = ("adobe", "appflow", "uipath", "commercelayer", "ciphertrust")
# Window lengths every provider's requests are watched over (``Stats.request_windows``): the
# ones Commerce Layer documents. No provider documents a limit on all its requests together
# (Commerce Layer's are per method class and endpoint: ``rate_windows``), so these peaks are
# observations with no limit next to them.
REQUEST_WINDOWS: tuple[float, ...] = (10.0, 60.0)

JSON = dict[str, Any]
T = TypeVar("T")


def now() -> float:
    return time.time()


def iso_utc(ts: float, digits: int = 6) -> str:
    """ISO-8601 UTC with ``digits`` fractional digits (3 = milliseconds) and a ``Z`` suffix."""
    dt = datetime.fromtimestamp(ts, UTC)
    frac = f"{dt.microsecond:06d}"[:digits]
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac}Z" if digits else f"{base}Z"


def tick(previous: int | None, digits: int) -> int:
    """Now, in integer units of 10**-digits s (the resolution the API shows), strictly after
    ``previous``: a resource's version stamp changes on every update, even within one tick."""
    units = int(time.time() * 10**digits)
    if previous is not None and units <= previous:
        units = previous + 1
    return units


def iso_units(units: int, digits: int) -> str:
    """:func:`tick` units as ISO-8601 UTC with exactly ``digits`` fractional digits."""
    seconds, frac = divmod(units, 10**digits)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:0{digits}d}Z"


def touch(d: JSON, units_key: str, stamp_key: str, digits: int) -> None:
    """Advance a resource's version stamp: :func:`tick` units under ``units_key`` (kept so
    the next update is strictly later) and the ISO form the API shows under ``stamp_key``."""
    d[units_key] = tick(d[units_key], digits)
    d[stamp_key] = iso_units(d[units_key], digits)


def request_id() -> str:
    return str(uuid.uuid4())


def random_secret(rng: random.Random, n: int = 24) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(n))


def snapshot(value: T) -> T:
    """An independent copy of a small JSON value (history entries must not alias live state)."""
    return copy.deepcopy(value)


def format_retry_after(seconds: float) -> str:
    # Integral values as integers (HTTP delay-seconds); sub-second test values stay fractional.
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:g}"


def parse_json_object(raw: bytes) -> JSON | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        value = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


# --------------------------------------------------------------------------------------------
# History-tracked resources


@dataclass
class Record:
    """One sandbox resource: its full live state (secrets included) and every change applied."""

    data: JSON
    history: list[JSON] = field(default_factory=list)
    initial: JSON | None = None

    def note(self, by: Literal["api", "oob"], secret: Any, version: Any) -> None:
        self.history.append({"at": now(), "by": by, "secret": snapshot(secret), "version": version})

    def admin_view(self, extra: Mapping[str, Any] | None = None) -> JSON:
        out = snapshot(self.data)
        if extra:
            out.update(extra)
        out["initial"] = snapshot(self.initial)
        out["history"] = snapshot(self.history)
        return out


# --------------------------------------------------------------------------------------------
# Tokens


@dataclass(slots=True)
class Token:
    value: str
    provider: str
    client_id: str
    scopes: frozenset[str]
    issued_at: float
    expires_at: float
    extra: JSON

    def expired(self, at: float | None = None) -> bool:
        return (now() if at is None else at) >= self.expires_at


_JWT_KEY = secrets.token_bytes(32)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def make_jwt(claims: Mapping[str, Any]) -> str:
    """A real HS256 JWT (the sandbox's own key): clients that decode ``exp`` see true values."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    sig = _b64url(hmac.new(_JWT_KEY, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{sig}"


class TokenStore:
    """Bearer tokens minted by every provider, looked up by value."""

    _PRUNE_AT = 20_000

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}

    def mint(
        self,
        provider: str,
        client_id: str,
        ttl: float,
        scopes: Iterable[str] = (),
        extra: JSON | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> Token:
        if len(self._tokens) >= self._PRUNE_AT:
            self._prune()
        issued = now()
        body: JSON = {
            "iss": f"sandbox-{provider}",
            "sub": client_id,
            "iat": int(issued),
            "exp": math.ceil(issued + ttl),
            "jti": uuid.uuid4().hex,
        }
        if claims:
            body.update(claims)
        value = make_jwt(body)
        token = Token(
            value=value,
            provider=provider,
            client_id=client_id,
            scopes=frozenset(scopes),
            issued_at=issued,
            expires_at=issued + ttl,
            extra=extra or {},
        )
        self._tokens[value] = token
        return token

    def get(self, provider: str, value: str) -> Token | None:
        """The token (possibly expired: callers tell expired from unknown), or None."""
        token = self._tokens.get(value)
        if token is None or token.provider != provider:
            return None
        return token

    def clear(self) -> None:
        self._tokens.clear()

    def _prune(self) -> None:
        t = now()
        # Keep recently expired tokens so "expired" is still reported as such for a while.
        self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > t - 3600}


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


# --------------------------------------------------------------------------------------------
# Rate windows, counters, config


class SlidingWindow:
    """At most ``limit`` hits in any ``window`` seconds."""

    __slots__ = ("limit", "window", "_hits")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._hits: deque[float] = deque()

    def check(self, t: float) -> float | None:
        """None if a hit at ``t`` is allowed, else the seconds until one is (nothing counted)."""
        hits = self._hits
        while hits and hits[0] <= t - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(hits[0] + self.window - t, 0.001)
        return None

    def record(self, t: float) -> None:
        self._hits.append(t)

    def hit(self, at: float | None = None) -> float | None:
        """Count a hit if allowed; else the seconds until one is allowed (not counted)."""
        t = now() if at is None else at
        wait = self.check(t)
        if wait is None:
            self.record(t)
        return wait


class WindowPeaks:
    """What a rate-limited API saw: every request that arrived (let through or refused with
    429) and the most that any sliding window of each documented length ever held, so a test
    can check a client kept under the limits rather than only that it was not refused.
    A limit of None is a window watched on a provider that documents no limit."""

    __slots__ = ("limits", "peaks", "requests", "limited", "_hits")

    def __init__(self, limits: Mapping[float, int | None]) -> None:
        self.limits = dict(limits)  # window seconds -> documented limit (None: none documented)
        self.peaks = {w: 0 for w in self.limits}
        self.requests = 0
        self.limited = 0  # answered 429
        self._hits: dict[float, deque[float]] = {w: deque() for w in self.limits}

    def arrive(self, t: float) -> None:
        self.requests += 1
        for window, hits in self._hits.items():
            hits.append(t)
            while hits and hits[0] <= t - window:
                hits.popleft()
            self.peaks[window] = max(self.peaks[window], len(hits))

    def to_dict(self) -> JSON:
        return {
            "requests": self.requests,
            "limited": self.limited,
            "windows": [
                {"seconds": w, "limit": n, "peak": self.peaks[w]} for w, n in self.limits.items()
            ],
        }


@dataclass
class Stats:
    tokens_minted: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    updates_applied: Counter[str] = field(default_factory=Counter)
    faults_injected: Counter[str] = field(default_factory=Counter)
    # (provider, client id) -> tokens issued: "one mint per credential set" is checkable.
    tokens_by_client: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (provider, "<method class> <endpoint>") -> what the rate-limited endpoint saw.
    rate_windows: dict[tuple[str, str], WindowPeaks] = field(default_factory=dict)
    # provider -> every API request it saw (token endpoints included), in sliding 10 s and
    # 60 s windows: the peak rate a client reached at a provider, limited or not.
    request_windows: dict[str, WindowPeaks] = field(default_factory=dict)

    def clear(self) -> None:
        for c in (self.tokens_minted, self.requests, self.updates_applied, self.faults_injected):
            c.clear()
        self.tokens_by_client.clear()
        self.rate_windows.clear()
        self.request_windows.clear()

    def arrive(self, provider: str, t: float) -> None:
        """Count one API request of ``provider`` (the fault layer calls this for every one)."""
        self.requests[provider] += 1
        peaks = self.request_windows.get(provider)
        if peaks is None:
            limits: dict[float, int | None] = dict.fromkeys(REQUEST_WINDOWS)
            peaks = self.request_windows[provider] = WindowPeaks(limits)
        peaks.arrive(t)

    def window(self, provider: str, name: str, limits: Mapping[float, int | None]) -> WindowPeaks:
        peaks = self.rate_windows.get((provider, name))
        if peaks is None:
            peaks = self.rate_windows[(provider, name)] = WindowPeaks(limits)
        return peaks

    def to_dict(self) -> JSON:
        def full(c: Counter[str]) -> dict[str, int]:
            return {p: c.get(p, 0) for p in PROVIDERS}

        return {
            "tokens_minted": full(self.tokens_minted),
            "requests": full(self.requests),
            "updates_applied": full(self.updates_applied),
            "faults_injected": dict(self.faults_injected),
            "tokens_minted_by_client": {
                p: {c: n for (q, c), n in sorted(self.tokens_by_client.items()) if q == p}
                for p in sorted({q for q, _ in self.tokens_by_client})
            },
            "rate_windows": {
                p: {n: w.to_dict() for (q, n), w in sorted(self.rate_windows.items()) if q == p}
                for p in sorted({q for q, _ in self.rate_windows})
            },
            "request_windows": {p: w.to_dict() for p, w in sorted(self.request_windows.items())},
        }


@dataclass
class Config:
    token_ttl: dict[str, float] = field(default_factory=dict)
    rate_limits: bool = True

    def ttl(self, provider: str, default: float) -> float:
        return self.token_ttl.get(provider, default)

    def to_dict(self) -> JSON:
        return {"token_ttl": dict(self.token_ttl), "rate_limits": self.rate_limits}


class Sandbox:
    """The state every provider imitation shares."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.tokens = TokenStore()
        self.stats = Stats()
        self.config = Config()

    def reset(self) -> None:
        self.rng = random.Random(self.seed)
        self.tokens.clear()
        self.stats.clear()
        self.config = Config()
