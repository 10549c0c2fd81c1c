"""Fault injection: rules set through ``PUT /_sandbox/faults`` and the ASGI layer applying them.

A rule (JSON)::

    {"provider": "adobe"|"appflow"|"uipath"|"commercelayer"|"ciphertrust"|"*",
     "kind": "latency"|"error"|"rate_limit"|"timeout"|"reset"|"drop_response",
     "rate": 0..1,            # probability per matching request (seeded RNG)
     "count": N,              # fire on the next N matching requests, then expire
     "methods": ["PATCH"],    # optional method filter
     "path": "regex",         # optional, re.search on the request path
     "ms": 250,               # latency sleep (default 100) / timeout sleep (default 30000)
     "status": 503,           # error status (5xx, default 500)
     "retry_after": 1.5}      # rate_limit: Retry-After (default 1); error: optional Retry-After

``count`` without ``rate`` fires deterministically; ``rate`` without ``count`` fires with that
probability forever; both: fires with probability ``rate`` until it has fired ``count`` times;
neither: fires on every matching request. Token endpoints (IMS, OAuth, identity, CipherTrust
auth) are only affected by rules whose ``path`` matches them, so "fail the PATCH" rules do not
also starve clients of tokens.

Every matching latency rule adds its delay; then the first matching non-latency rule (in list
order) decides the outcome:

- ``error`` / ``rate_limit``: a provider-shaped 5xx / 429 (+ ``Retry-After``), nothing applied;
- ``timeout``: waits ``ms`` without applying (returns early if the client hangs up), then 504;
- ``reset``: aborts the TCP connection, nothing applied, no response;
- ``drop_response``: the request IS handled (state changes, history recorded), then the
  connection is aborted before any byte of the response is sent.

Aborting needs the connection's transport: :mod:`rotator.sandbox.server` runs uvicorn with a
protocol subclass that puts it into the ASGI scope under :data:`TRANSPORT_KEY`; under a plain
uvicorn the transport is found on uvicorn's bound ``send``.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rotator.sandbox.state import JSON, PROVIDERS, Sandbox, now

if TYPE_CHECKING:
    from rotator.sandbox.common import ProviderSim

KINDS: tuple[str, ...] = ("latency", "error", "rate_limit", "timeout", "reset", "drop_response")
TRANSPORT_KEY = "rotator.sandbox.transport"

_DEFAULT_MS = {"latency": 100, "timeout": 30_000}


@dataclass
class FaultRule:
    provider: str
    kind: str
    rate: float | None = None
    count: int | None = None
    methods: frozenset[str] | None = None
    path: re.Pattern[str] | None = None
    ms: int = 0
    status: int | None = None
    retry_after: float | None = None
    remaining: int | None = None
    fired: int = 0

    def matches(self, provider: str, method: str, path: str, is_token: bool) -> bool:
        if self.provider != "*" and self.provider != provider:
            return False
        if self.methods is not None and method not in self.methods:
            return False
        if self.path is None:
            return not is_token
        return self.path.search(path) is not None

    def to_dict(self) -> JSON:
        out: JSON = {"provider": self.provider, "kind": self.kind}
        if self.rate is not None:
            out["rate"] = self.rate
        if self.count is not None:
            out["count"] = self.count
            out["remaining"] = self.remaining
        if self.methods is not None:
            out["methods"] = sorted(self.methods)
        if self.path is not None:
            out["path"] = self.path.pattern
        if self.kind in _DEFAULT_MS:
            out["ms"] = self.ms
        if self.status is not None:
            out["status"] = self.status
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        out["fired"] = self.fired
        return out


def _number(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}.{key} must be a number")
    return float(value)


def parse_rule(raw: Any, index: int) -> FaultRule:
    where = f"rules[{index}]"
    provider, kind = _identity(raw, where)
    rule = FaultRule(provider=provider, kind=kind)
    _parse_matching(rule, raw, where)
    _parse_effect(rule, raw, where)
    return rule


def _identity(raw: Any, where: str) -> tuple[str, str]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be an object")
    known = {"provider", "kind", "rate", "count", "methods", "path", "ms", "status", "retry_after"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    provider = raw.get("provider", "*")
    if provider != "*" and provider not in PROVIDERS:
        raise ValueError(f"{where}.provider must be one of {', '.join(PROVIDERS)} or *")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{where}.kind must be one of {', '.join(KINDS)}")
    return provider, kind


def _parse_matching(rule: FaultRule, raw: Mapping[str, Any], where: str) -> None:
    """Which requests the rule applies to: rate, count, methods, path."""
    rate = _number(raw, "rate", where)
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise ValueError(f"{where}.rate must be within 0..1")
    rule.rate = rate
    count = raw.get("count")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{where}.count must be a positive integer")
        rule.count = rule.remaining = count
    methods = raw.get("methods")
    if methods is not None:
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ValueError(f"{where}.methods must be a list of strings")
        rule.methods = frozenset(m.upper() for m in methods)
    path = raw.get("path")
    if path is not None:
        if not isinstance(path, str):
            raise ValueError(f"{where}.path must be a string")
        try:
            rule.path = re.compile(path)
        except re.error as exc:
            raise ValueError(f"{where}.path is not a valid regex: {exc}") from None


def _parse_effect(rule: FaultRule, raw: Mapping[str, Any], where: str) -> None:
    """What the rule does to a matching request: latency, status, Retry-After."""
    kind = rule.kind
    ms = _number(raw, "ms", where)
    if ms is not None and ms < 0:
        raise ValueError(f"{where}.ms must be >= 0")
    rule.ms = int(ms) if ms is not None else _DEFAULT_MS.get(kind, 0)
    status = raw.get("status")
    if status is not None:
        if isinstance(status, bool) or not isinstance(status, int) or not 500 <= status <= 599:
            raise ValueError(f"{where}.status must be a 5xx status")
        if kind != "error":
            raise ValueError(f"{where}.status only applies to kind error")
        rule.status = status
    elif kind == "error":
        rule.status = 500
    retry_after = _number(raw, "retry_after", where)
    if retry_after is not None and retry_after < 0:
        raise ValueError(f"{where}.retry_after must be >= 0")
    rule.retry_after = (
        retry_after if retry_after is not None else (1.0 if kind == "rate_limit" else None)
    )


@dataclass
class Decision:
    latency_ms: int = 0
    latency_rules: int = 0
    rule: FaultRule | None = None


class FaultEngine:
    def __init__(self, default_seed: int | None) -> None:
        self.default_seed = default_seed
        self.seed: int | None = None
        self.rules: list[FaultRule] = []
        self.rng = random.Random(default_seed)

    def configure(self, seed: int | None, rules: list[FaultRule]) -> None:
        self.seed = seed
        # No seed given: the app's own seed, so a seeded sandbox stays reproducible.
        self.rng = random.Random(seed if seed is not None else self.default_seed)
        self.rules = rules

    def clear(self) -> None:
        self.configure(None, [])

    def to_dict(self) -> JSON:
        return {"seed": self.seed, "rules": [r.to_dict() for r in self.rules]}

    def decide(self, provider: str, method: str, path: str, is_token: bool) -> Decision:
        decision = Decision()
        if not self.rules:
            return decision
        expired = False
        for rule in self.rules:
            if rule.kind != "latency" and decision.rule is not None:
                continue
            if not rule.matches(provider, method, path, is_token):
                continue
            if rule.rate is not None and self.rng.random() >= rule.rate:
                continue
            rule.fired += 1
            if rule.remaining is not None:
                rule.remaining -= 1
                expired = expired or rule.remaining <= 0
            if rule.kind == "latency":
                decision.latency_ms += rule.ms
                decision.latency_rules += 1
            else:
                decision.rule = rule
        if expired:
            self.rules = [r for r in self.rules if r.remaining is None or r.remaining > 0]
        return decision


def classify(path: str) -> tuple[str | None, bool]:
    """(provider, is_token_endpoint) for a request path; provider None for sandbox/unknown."""
    if path.startswith("/_sandbox/"):
        return None, False
    if path.startswith("/data/foundation/flowservice"):
        return "adobe", False
    if path.startswith("/ims/"):
        return "adobe", True
    if path in ("/update-connector-profile", "/describe-connector-profiles"):
        return "appflow", False
    if path.startswith("/api/v1/"):
        return "ciphertrust", path.rstrip("/") == "/api/v1/auth/tokens"
    if path.startswith("/api/"):
        return "commercelayer", False
    if path.startswith("/oauth/"):
        return "commercelayer", True
    if "/identity_/" in path:
        return "uipath", path.rstrip("/").endswith("/identity_/connect/token")
    return None, False


async def _drain(receive: Receive) -> bool:
    """Read the whole request body; False if the client went away meanwhile."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        if not message.get("more_body", False):
            return True


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _hold(receive: Receive, seconds: float, closing: asyncio.Event) -> str:
    """Wait up to ``seconds``: "elapsed", or early "disconnected" (the client gave up) or
    "closing" (the server is stopping and must not wait for us)."""
    gone = asyncio.ensure_future(_until_disconnect(receive))
    stop = asyncio.ensure_future(closing.wait())
    try:
        done, _ = await asyncio.wait(
            {gone, stop}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        gone.cancel()
        stop.cancel()
    if gone in done:
        return "disconnected"
    return "closing" if stop in done else "elapsed"


async def abort_connection(scope: Scope, receive: Receive, send: Send) -> None:
    """Drop the TCP connection without a response byte (the client sees a protocol error)."""
    transport = scope.get(TRANSPORT_KEY)
    if transport is None:
        transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("aborting a connection needs rotator.sandbox.server's uvicorn")
    transport.abort()
    # Wait for uvicorn to see the connection lost, so it neither logs "returned without
    # starting response" nor tries to write a 500 into the dead socket.
    try:
        async with asyncio.timeout(2):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass


async def _discard(message: Message) -> None:
    return None


class FaultLayer:
    """Outermost ASGI layer of the sandbox app: counts requests and injects faults."""

    def __init__(
        self,
        sandbox: Sandbox,
        engine: FaultEngine,
        providers: Mapping[str, ProviderSim],
        app: ASGIApp | Callable[[Scope, Receive, Send], Awaitable[None]],
    ) -> None:
        self.sandbox = sandbox
        self.engine = engine
        self.providers = providers
        self.app = app
        self._closing: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def _closing_event(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._closing is None or self._closing[0] is not loop:
            self._closing = (loop, asyncio.Event())
        return self._closing[1]

    def interrupt(self) -> None:
        """Thread-safe: end injected timeouts now (called when the server stops)."""
        if self._closing is not None:
            loop, event = self._closing
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        provider, is_token = classify(path)
        if provider is None:
            await self.app(scope, receive, send)
            return
        stats = self.sandbox.stats
        stats.arrive(provider, now())
        decision = self.engine.decide(provider, scope["method"], path, is_token)
        if decision.latency_rules:
            stats.faults_injected["latency"] += decision.latency_rules
            await asyncio.sleep(decision.latency_ms / 1000)
        rule = decision.rule
        if rule is None:
            await self.app(scope, receive, send)
            return
        stats.faults_injected[rule.kind] += 1
        sim = self.providers[provider]
        if rule.kind in ("error", "rate_limit"):
            if await _drain(receive):
                status = 429 if rule.kind == "rate_limit" else (rule.status or 500)
                await sim.fault_response(status, rule.retry_after)(scope, receive, send)
        elif rule.kind == "timeout":
            if await _drain(receive):
                outcome = await _hold(receive, rule.ms / 1000, self._closing_event())
                if outcome == "elapsed":
                    await sim.fault_response(504, None)(scope, receive, send)
                elif outcome == "closing":
                    await abort_connection(scope, receive, send)
        elif rule.kind == "reset":
            await abort_connection(scope, receive, send)
        else:  # drop_response: apply, then lose the answer
            try:
                await self.app(scope, receive, _discard)
            finally:
                await abort_connection(scope, receive, send)
