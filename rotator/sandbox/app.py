"""The sandbox app: five provider imitations on one port, plus the ``/_sandbox`` admin API.

Admin API (sandbox only; never faulted, never counted in ``requests``):

- ``POST /_sandbox/reset``: seeded defaults again (no resources, default clients, no faults,
  default config, counters zeroed).
- ``PUT|GET /_sandbox/{provider}/resources/{id}``: create/replace a resource from a
  provider-specific body (see each provider module's docstring) / read its full live state,
  secrets included, plus ``initial`` (the seeded secret part and version) and ``history``
  (``[{"at", "by": "api"|"oob", "secret", "version"}]``, one entry per change applied).
  CipherTrust also has ``/_sandbox/ciphertrust/connections/{id}``; Commerce Layer
  ``/_sandbox/commercelayer/roles/{id}`` (PUT/GET).
- ``POST /_sandbox/{provider}/resources/{id}/oob``: out-of-band edit (random secret part and new
  version, or the JSON body given merged in), recorded with ``by: "oob"``.
- ``PUT /_sandbox/{provider}/clients/{client_id}``: add/replace a management-API client.
- ``PUT|GET|DELETE /_sandbox/faults``: fault rules (see :mod:`rotator.sandbox.faults`).
- ``PUT|GET /_sandbox/config``: ``{"token_ttl": {provider: seconds|null}, "rate_limits": bool}``
  (merged into the current config; ``null`` restores a provider's default lifetime).
- ``GET /_sandbox/stats``: counters (tokens_minted, requests, updates_applied, faults_injected),
  tokens_minted_by_client (provider -> client_id -> tokens issued), rate_windows (per
  rate-limited endpoint: requests seen, refused, and the peak of each documented window) and
  request_windows (per provider: every API request seen, and the most any sliding 10 s and
  60 s window held; ``limit`` is null, as no provider documents one on all its requests).

Admin errors are ``{"error": message}`` with 400 (bad body) or 404 (unknown provider/resource).
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from rotator.sandbox.adobe import AdobeSim
from rotator.sandbox.appflow import AppFlowSim
from rotator.sandbox.ciphertrust import CipherTrustSim
from rotator.sandbox.commercelayer import CommerceLayerSim
from rotator.sandbox.common import AdminError, ProviderSim, json_response
from rotator.sandbox.faults import FaultEngine, FaultLayer, FaultRule, parse_rule
from rotator.sandbox.state import JSON, PROVIDERS, Sandbox, parse_json_object
from rotator.sandbox.uipath import UiPathSim


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


class SandboxApp(Starlette):
    """A Starlette app whose outermost layer injects faults (it sees the server's raw ``send``,
    which a Starlette middleware would not)."""

    def __init__(self, *, seed: int | None = None) -> None:
        self.sandbox = Sandbox(seed)
        self.faults = FaultEngine(seed)
        self.providers: dict[str, ProviderSim] = {
            sim.name: sim
            for sim in (
                AdobeSim(self.sandbox),
                AppFlowSim(self.sandbox),
                UiPathSim(self.sandbox),
                CommerceLayerSim(self.sandbox),
                CipherTrustSim(self.sandbox),
            )
        }
        routes: list[BaseRoute] = [
            Route("/_sandbox/reset", self._reset, methods=["POST"]),
            Route("/_sandbox/faults", self._faults, methods=["GET", "PUT", "DELETE"]),
            Route("/_sandbox/config", self._config, methods=["GET", "PUT"]),
            Route("/_sandbox/stats", self._stats, methods=["GET"]),
            Route("/_sandbox/{provider}/clients/{client_id}", self._client, methods=["PUT"]),
            Route("/_sandbox/{provider}/{kind}/{rid:path}/oob", self._oob, methods=["POST"]),
            Route("/_sandbox/{provider}/{kind}/{rid:path}", self._resource, methods=["GET", "PUT"]),
        ]
        for sim in self.providers.values():
            routes.extend(sim.routes())
        super().__init__(routes=routes)
        self._layer = FaultLayer(self.sandbox, self.faults, self.providers, self._starlette)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._layer(scope, receive, send)

    def interrupt_waits(self) -> None:
        """Thread-safe: cut injected timeouts short so a stopping server need not wait."""
        self._layer.interrupt()

    async def _starlette(self, scope: Scope, receive: Receive, send: Send) -> None:
        await Starlette.__call__(self, scope, receive, send)

    # ---------------------------------------------------------------------------------------

    def _sim(self, request: Request) -> ProviderSim:
        name = request.path_params["provider"]
        sim = self.providers.get(name)
        if sim is None:
            raise AdminError(404, f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
        return sim

    async def _body(self, request: Request, required: bool = True) -> JSON | None:
        raw = await request.body()
        if not raw.strip():
            if required:
                raise AdminError(400, "a JSON object body is required")
            return None
        body = parse_json_object(raw)
        if body is None:
            raise AdminError(400, "the body must be a JSON object")
        return body

    async def _reset(self, request: Request) -> Response:
        self.sandbox.reset()
        self.faults.clear()
        for sim in self.providers.values():
            sim.reset()
        return json_response({"reset": True})

    async def _faults(self, request: Request) -> Response:
        try:
            if request.method == "PUT":
                body = await self._body(request) or {}
                seed = body.get("seed")
                if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                    raise AdminError(400, "seed must be an integer or null")
                raw_rules = body.get("rules", [])
                if not isinstance(raw_rules, list):
                    raise AdminError(400, "rules must be a list")
                try:
                    rules: list[FaultRule] = [parse_rule(r, i) for i, r in enumerate(raw_rules)]
                except ValueError as exc:
                    raise AdminError(400, str(exc)) from None
                self.faults.configure(seed, rules)
            elif request.method == "DELETE":
                self.faults.clear()
        except AdminError as exc:
            return _error(exc.status, exc.message)
        return json_response(self.faults.to_dict())

    async def _config(self, request: Request) -> Response:
        config = self.sandbox.config
        if request.method == "PUT":
            try:
                body = await self._body(request) or {}
                unknown = sorted(set(body) - {"token_ttl", "rate_limits"})
                if unknown:
                    raise AdminError(400, f"unknown config key(s): {', '.join(unknown)}")
                ttl = body.get("token_ttl", {})
                if not isinstance(ttl, dict):
                    raise AdminError(400, "token_ttl must be an object")
                for provider, seconds in ttl.items():
                    if provider not in PROVIDERS:
                        raise AdminError(400, f"token_ttl: unknown provider {provider!r}")
                    if seconds is not None and (
                        isinstance(seconds, bool)
                        or not isinstance(seconds, int | float)
                        or seconds <= 0
                    ):
                        raise AdminError(400, f"token_ttl.{provider} must be a positive number")
                rate_limits = body.get("rate_limits", config.rate_limits)
                if not isinstance(rate_limits, bool):
                    raise AdminError(400, "rate_limits must be a boolean")
            except AdminError as exc:
                return _error(exc.status, exc.message)
            for provider, seconds in ttl.items():
                if seconds is None:
                    config.token_ttl.pop(provider, None)
                else:
                    config.token_ttl[provider] = float(seconds)
            config.rate_limits = rate_limits
        return json_response(config.to_dict())

    async def _stats(self, request: Request) -> Response:
        return json_response(self.sandbox.stats.to_dict())

    async def _client(self, request: Request) -> Response:
        try:
            sim = self._sim(request)
            body = await self._body(request, required=False) or {}
            return json_response(sim.put_client(request.path_params["client_id"], body))
        except AdminError as exc:
            return _error(exc.status, exc.message)

    def _kind(self, sim: ProviderSim, request: Request) -> str:
        kind: str = request.path_params["kind"]
        if kind not in sim.admin_kinds:
            known = ", ".join(sorted(sim.admin_kinds))
            raise AdminError(404, f"{sim.name} has no admin collection {kind!r} (known: {known})")
        return kind

    async def _resource(self, request: Request) -> Response:
        try:
            sim = self._sim(request)
            kind = self._kind(sim, request)
            rid: str = request.path_params["rid"]
            view: Any
            if request.method == "PUT":
                view = sim.admin_put(kind, rid, await self._body(request, required=False) or {})
            else:
                view = sim.admin_get(kind, rid)
                if view is None:
                    raise AdminError(404, f"no {sim.name} {kind} {rid!r}")
            return json_response(view)
        except AdminError as exc:
            return _error(exc.status, exc.message)

    async def _oob(self, request: Request) -> Response:
        try:
            sim = self._sim(request)
            kind = self._kind(sim, request)
            rid: str = request.path_params["rid"]
            view = sim.admin_oob(kind, rid, await self._body(request, required=False))
            if view is None:
                raise AdminError(404, f"no {sim.name} {kind} {rid!r}")
            return json_response(view)
        except AdminError as exc:
            return _error(exc.status, exc.message)


def create_app(*, seed: int | None = None) -> Starlette:
    """A fresh sandbox app with its own in-memory state (``seed`` makes faults reproducible)."""
    return SandboxApp(seed=seed)
