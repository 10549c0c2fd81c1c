"""Shared test plumbing for provider adapters: a mock HTTP API, a journal, a clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from rotator.providers.base import ProviderContext, SecretPayload, TargetSpec, TokenCache, Want

CANARY = "CANARY-s3cr3t-7f1e9a"

Handler = Callable[[httpx.Request], Awaitable[httpx.Response] | httpx.Response]


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MemoryJournal:
    """The engine's step journal, in memory; insists that data is JSON and secret-free."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[str, dict[str, Any]]] = []

    def get(self, step: str) -> Mapping[str, Any] | None:
        return self.steps.get(step)

    async def record(self, step: str, data: Mapping[str, Any]) -> None:
        encoded = json.dumps(dict(data))
        assert CANARY not in encoded
        self.steps[step] = json.loads(encoded)
        self.log.append((step, json.loads(encoded)))


class FakeAPI:
    """Routes requests to ``handler`` and keeps every request; can fail requests on demand."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        # (method, path suffix) -> exception to raise instead of answering, once
        self.fail_next: dict[tuple[str, str], Exception] = {}
        # (method, path suffix) -> exception to raise after the request was processed, once
        self.drop_next: dict[tuple[str, str], Exception] = {}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        for (method, suffix), exc in list(self.fail_next.items()):
            if request.method == method and request.url.path.endswith(suffix):
                del self.fail_next[(method, suffix)]
                raise exc
        result = self.handler(request)
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, httpx.Response)
        for (method, suffix), exc in list(self.drop_next.items()):
            if request.method == method and request.url.path.endswith(suffix):
                del self.drop_next[(method, suffix)]
                raise exc
        return result

    def calls(self, method: str, suffix: str = "") -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path.endswith(suffix)]


def context(api: FakeAPI, clock: Clock | None = None) -> ProviderContext:
    tokens = TokenCache(clock=clock) if clock else TokenCache()
    return ProviderContext(transport=httpx.MockTransport(api), tokens=tokens)


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def target(
    provider: str,
    base_url: str,
    resource_id: str,
    options: Mapping[str, Any] | None = None,
    credentials: Mapping[str, str] | None = None,
) -> TargetSpec:
    return TargetSpec(
        name=f"{provider}-test",
        provider=provider,
        base_url=base_url,
        resource_id=resource_id,
        options=dict(options or {}),
        credentials=dict(credentials or {}),
    )


def secret(fields: Mapping[str, Any], version_id: str = "v000000000002") -> SecretPayload:
    return SecretPayload(fields, version_id=version_id, fingerprint="ab12cd34ef56" + "0" * 52)


def want(job_id: str = "job1", version_id: str = "v000000000002") -> Want:
    return Want(version_id=version_id, fingerprint="ab12cd34ef56" + "0" * 52, job_id=job_id)


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(fn())


def run_in(
    api: FakeAPI,
    fn: Callable[[ProviderContext], Awaitable[Any]],
    clock: Clock | None = None,
) -> Any:
    """Run ``fn`` with a context whose HTTP goes to ``api``; closes the pooled clients."""

    async def main() -> Any:
        ctx = context(api, clock)
        try:
            return await fn(ctx)
        finally:
            await ctx.aclose()

    return asyncio.run(main())


def run_live(
    fn: Callable[[ProviderContext], Awaitable[Any]], tokens: TokenCache | None = None
) -> Any:
    """Run ``fn`` with a real-network context (contract tests against the sandbox)."""

    async def main() -> Any:
        ctx = ProviderContext(timeout=5.0, tokens=tokens or TokenCache())
        try:
            return await fn(ctx)
        finally:
            await ctx.aclose()

    return asyncio.run(main())
