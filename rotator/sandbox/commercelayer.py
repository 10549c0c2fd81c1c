"""Commerce Layer provisioning API: OAuth client-credentials tokens and API credentials (JSON:API).

Routes: ``POST /oauth/token`` (JSON or form: grant_type=client_credentials, client_id,
client_secret; no scope, as the official js-auth client sends none, or scope=provisioning-api;
the token's ``scope`` is provisioning-api either way), ``GET|PATCH /api/api_credentials/{id}``
(GET takes ``?include=role``), ``GET /api/roles/{id}``.

Checks, in order: burst/average rate limits (GET 250 per 10 s and 1000 per minute, writes 50
per 10 s and 200 per minute, per endpoint) -> 429 *without* ``Retry-After`` (Commerce Layer
documents no reset header, so clients must not count on one); bearer token -> 401
``UNAUTHORIZED``; ``Accept`` must offer ``application/vnd.api+json`` (only ext/profile media
type parameters) -> 406; PATCH ``Content-Type`` must be ``application/vnd.api+json`` (a charset
parameter is tolerated) -> 415; unknown id -> 404; body not a JSON:API document, type not
``api_credentials`` or id not the URL's -> 400; read-only attributes (client_id, client_secret,
scopes, confidential, created_at, updated_at, kind, mode, custom) or an out-of-range/ill-typed
value (expires_in 7200..31536000, blank name, metadata not an object) or a role that does not
exist -> 422 ``VALIDATION_ERROR``, all problems reported at once. ``updated_at`` (ISO-8601, ms)
moves only when a PATCH changes something; ``metadata`` is replaced, not merged. Relationships
carry links only unless ``include=role`` (then ``data`` and ``included``), as JSON:API servers
do. The token endpoint allows 30 requests per minute per client_id (429 beyond).

Observed, for tests (``GET /_sandbox/stats``): ``rate_windows.commercelayer`` has, per method
class and endpoint (and ``auth oauth/token``), every request that arrived, how many were
refused (``limited``) and the most any sliding 10 s / 60 s window held (``peak``, next to the
documented ``limit``); ``tokens_minted_by_client.commercelayer`` counts tokens per client_id.

Errors: ``{"errors": [{"title", "detail", "code", "source": {"pointer"}, "status", "meta"}]}``
(status as a string, JSON:API style); codes used: UNAUTHORIZED, NOT_ACCEPTABLE,
UNSUPPORTED_MEDIA_TYPE, BAD_REQUEST, RECORD_NOT_FOUND, VALIDATION_ERROR, TOO_MANY_REQUESTS,
INTERNAL_SERVER_ERROR, SERVICE_UNAVAILABLE (the last few are the sandbox's own names).
The media types, error objects and PATCH rules live in ``rotator.sandbox.commercelayer_jsonapi``.

Admin bodies: ``PUT /_sandbox/commercelayer/resources/{id}``, all optional::

    {"name": id, "kind": "integration", "confidential": true, "redirect_uri": null,
     "client_id": random, "client_secret": random, "scopes": "market:all",
     "expires_in": 7200, "mode": "test", "custom": false, "reference": null,
     "reference_origin": null, "metadata": {}, "role_id": "rolAdmin01",
     "organization_id": <default>}

``PUT /_sandbox/commercelayer/roles/{id}``: ``{"name": id, "kind": "custom"}``.
Secret part (history): ``{name, reference, reference_origin, metadata, role_id}``; version:
``updated_at``. Clients (``PUT /_sandbox/commercelayer/clients/{client_id}``):
``{"client_secret"}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rotator.sandbox import defaults
from rotator.sandbox.commercelayer_jsonapi import (
    EXPIRES_MIN,
    MEDIA,
    accept_ok,
    content_type_ok,
    err,
    errors_response,
    one_error,
    parse_patch,
    validate_patch,
)
from rotator.sandbox.common import AdminError, ProviderSim, form_or_json, json_response, str_field
from rotator.sandbox.state import (
    JSON,
    Record,
    SlidingWindow,
    bearer,
    format_retry_after,
    iso_units,
    iso_utc,
    now,
    random_secret,
    snapshot,
    tick,
    touch,
)

TOKEN_TTL = 14400.0
ATTRIBUTES = (
    "name",
    "kind",
    "confidential",
    "redirect_uri",
    "client_id",
    "client_secret",
    "scopes",
    "expires_in",
    "mode",
    "custom",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
)
# (burst per 10 s, average per 60 s) by method class.
LIMITS = {"read": (250, 1000), "write": (50, 200)}
AUTH_LIMIT = 30


class CommerceLayerSim(ProviderSim):
    name: ClassVar[str] = "commercelayer"
    admin_kinds: ClassVar[frozenset[str]] = frozenset({"resources", "roles"})

    def reset(self) -> None:
        self.clients: dict[str, JSON] = {
            defaults.COMMERCELAYER_CLIENT_ID: {
                "client_secret": defaults.COMMERCELAYER_CLIENT_SECRET
            }
        }
        created = iso_utc(now(), 3)
        self.roles: dict[str, JSON] = {
            rid: self._role(rid, name, "default", created)
            for rid, name in defaults.COMMERCELAYER_ROLES.items()
        }
        self.credentials: dict[str, Record] = {}
        self.windows: dict[tuple[str, str], tuple[SlidingWindow, SlidingWindow]] = {}
        self.auth_windows: dict[str, SlidingWindow] = {}

    @staticmethod
    def _role(rid: str, name: str, kind: str, created: str) -> JSON:
        return {
            "id": rid,
            "name": name,
            "kind": kind,
            "created_at": created,
            "updated_at": created,
            "reference": None,
            "reference_origin": None,
            "metadata": {},
        }

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/oauth/token", self.token, methods=["POST"]),
            Route("/api/api_credentials/{cid}", self.get_credential, methods=["GET"]),
            Route("/api/api_credentials/{cid}", self.patch_credential, methods=["PATCH"]),
            Route("/api/roles/{rid}", self.get_role, methods=["GET"]),
        ]

    def fault_response(self, status: int, retry_after: float | None) -> Response:
        if status == 429:
            resp = one_error(429, "TOO_MANY_REQUESTS", "Too many requests", "Rate limit exceeded")
        elif status == 503:
            resp = one_error(503, "SERVICE_UNAVAILABLE", "Service unavailable", "Try again later")
        else:
            resp = one_error(
                status, "INTERNAL_SERVER_ERROR", "Internal server error", "Unexpected error"
            )
        # Commerce Layer documents no reset header: an injected 429 has none either.
        if retry_after is not None and status != 429:
            resp.headers["Retry-After"] = format_retry_after(retry_after)
        return resp

    # --- auth -------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        p = await form_or_json(request)
        client_id = p.get("client_id", "")
        seen = self.sb.stats.window(self.name, "auth oauth/token", {60.0: AUTH_LIMIT})
        seen.arrive(now())
        if self.sb.config.rate_limits:
            window = self.auth_windows.setdefault(client_id, SlidingWindow(AUTH_LIMIT, 60.0))
            wait = window.hit()
            if wait is not None:
                seen.limited += 1
                return self._too_many(wait, "Too many token requests: 30 per minute allowed")
        if p.get("grant_type") != "client_credentials":
            return one_error(
                400, "UNSUPPORTED_GRANT_TYPE", "unsupported_grant_type", "grant_type not supported"
            )
        client = self.clients.get(client_id)
        if client is None or p.get("client_secret") != client["client_secret"]:
            return one_error(
                401,
                "INVALID_CLIENT",
                "invalid_client",
                "Client authentication failed due to unknown client or wrong secret.",
            )
        scope = p.get("scope") or defaults.COMMERCELAYER_SCOPE
        if scope != defaults.COMMERCELAYER_SCOPE:
            return one_error(
                400, "INVALID_SCOPE", "invalid_scope", "scope must be provisioning-api"
            )
        ttl = self.sb.config.ttl(self.name, TOKEN_TTL)
        token = self.sb.tokens.mint(
            self.name, client_id, ttl, scopes=[scope], claims={"application": {"kind": "user"}}
        )
        self.count_token(client_id)
        return json_response(
            {
                "access_token": token.value,
                "token_type": "bearer",
                "expires_in": int(ttl),
                "scope": scope,
                "created_at": int(token.issued_at),
            }
        )

    def _too_many(self, wait: float, detail: str) -> Response:
        return errors_response(
            429,
            [err(429, "TOO_MANY_REQUESTS", "Too many requests", detail)],
            # The wait stays in the detail text only: no Retry-After, as documented.
            {},
        )

    def _limit(self, method: str, endpoint: str) -> Response | None:
        cls = "read" if method in ("GET", "HEAD") else "write"
        burst, average = LIMITS[cls]
        # Every arrival is seen, refused or not, whether or not limits are enforced.
        seen = self.sb.stats.window(self.name, f"{cls} {endpoint}", {10.0: burst, 60.0: average})
        t = now()
        seen.arrive(t)
        if not self.sb.config.rate_limits:
            return None
        key = (cls, endpoint)
        windows = self.windows.get(key)
        if windows is None:
            windows = (SlidingWindow(burst, 10.0), SlidingWindow(average, 60.0))
            self.windows[key] = windows
        waits = [w for w in (windows[0].check(t), windows[1].check(t)) if w is not None]
        if waits:
            seen.limited += 1
            return self._too_many(max(waits), f"Rate limit exceeded for {endpoint}")
        windows[0].record(t)
        windows[1].record(t)
        return None

    def _guard(self, request: Request, endpoint: str) -> Response | None:
        limited = self._limit(request.method, endpoint)
        if limited is not None:
            return limited
        value = bearer(request.headers.get("authorization"))
        token = self.sb.tokens.get(self.name, value) if value else None
        if token is None or token.expired():
            detail = (
                "The access token you provided has expired."
                if token is not None
                else "The access token you provided is invalid."
            )
            return one_error(401, "UNAUTHORIZED", "Unauthorized", detail)
        if not accept_ok(request.headers.get("accept")):
            return one_error(
                406, "NOT_ACCEPTABLE", "Not acceptable", f"Accept must include {MEDIA}"
            )
        if request.method == "PATCH" and not content_type_ok(request.headers.get("content-type")):
            return one_error(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "Unsupported media type",
                f"Content-Type must be {MEDIA}",
            )
        return None

    # --- resources ----------------------------------------------------------------------------

    @staticmethod
    def _base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/api"

    def _role_resource(self, role: JSON, base: str) -> JSON:
        link = f"{base}/roles/{role['id']}"
        return {
            "id": role["id"],
            "type": "roles",
            "links": {"self": link},
            "attributes": {k: snapshot(v) for k, v in role.items() if k != "id"},
            "meta": {"mode": "test", "organization_id": defaults.COMMERCELAYER_ORGANIZATION_ID},
        }

    def _document(self, d: JSON, base: str, include_role: bool) -> JSON:
        link = f"{base}/api_credentials/{d['id']}"

        def rel(name: str) -> JSON:
            return {
                "links": {
                    "self": f"{link}/relationships/{name}",
                    "related": f"{link}/{name}",
                }
            }

        role = rel("role")
        doc: JSON = {
            "data": {
                "id": d["id"],
                "type": "api_credentials",
                "links": {"self": link},
                "attributes": {k: snapshot(d[k]) for k in ATTRIBUTES},
                "relationships": {"organization": rel("organization"), "role": role},
                "meta": {"mode": d["mode"], "organization_id": d["organization_id"]},
            }
        }
        if include_role:
            role_obj = self.roles.get(d["role_id"]) if d["role_id"] else None
            role["data"] = {"type": "roles", "id": d["role_id"]} if role_obj else None
            doc["included"] = [self._role_resource(role_obj, base)] if role_obj else []
        return doc

    @staticmethod
    def _not_found(cid: str) -> Response:
        return one_error(
            404,
            "RECORD_NOT_FOUND",
            "Record not found",
            f"The requested resource {cid} was not found",
        )

    async def get_credential(self, request: Request) -> Response:
        denied = self._guard(request, "api_credentials")
        if denied is not None:
            return denied
        include = [i.strip() for i in request.query_params.get("include", "").split(",") if i]
        if any(i != "role" for i in include):
            return one_error(
                400, "BAD_REQUEST", "Invalid include", "Only role can be included", None
            )
        cid = request.path_params["cid"]
        rec = self.credentials.get(cid)
        if rec is None:
            return self._not_found(cid)
        doc = self._document(rec.data, self._base(request), "role" in include)
        return json_response(doc, media_type=MEDIA)

    async def get_role(self, request: Request) -> Response:
        denied = self._guard(request, "roles")
        if denied is not None:
            return denied
        role = self.roles.get(request.path_params["rid"])
        if role is None:
            return self._not_found(request.path_params["rid"])
        return json_response(
            {"data": self._role_resource(role, self._base(request))}, media_type=MEDIA
        )

    async def patch_credential(self, request: Request) -> Response:
        raw = await request.body()
        denied = self._guard(request, "api_credentials")
        if denied is not None:
            return denied
        cid = request.path_params["cid"]
        rec = self.credentials.get(cid)
        if rec is None:
            return self._not_found(cid)
        parsed = parse_patch(raw, cid)
        if isinstance(parsed, Response):
            return parsed
        attributes, relationships = parsed
        problems, changes = validate_patch(attributes, relationships, self.roles)
        if problems:
            return errors_response(422, problems)
        d = rec.data
        if any(d[k] != v for k, v in changes.items()):
            d.update(snapshot(changes))
            self._touch(d)
            rec.note("api", self._secret(d), d["updated_at"])
            self.count_update()
        return json_response(self._document(d, self._base(request), False), media_type=MEDIA)

    @staticmethod
    def _touch(d: JSON) -> None:
        touch(d, "_updated", "updated_at", 3)

    @staticmethod
    def _secret(d: JSON) -> JSON:
        return {
            "name": d["name"],
            "reference": d["reference"],
            "reference_origin": d["reference_origin"],
            "metadata": snapshot(d["metadata"]),
            "role_id": d["role_id"],
        }

    # --- admin ------------------------------------------------------------------------------

    def admin_put(self, kind: str, rid: str, body: JSON) -> JSON:
        if kind == "roles":
            role = self._role(
                rid,
                str_field(body, "name", rid),
                str_field(body, "kind", "custom"),
                iso_utc(now(), 3),
            )
            self.roles[rid] = role
            return snapshot(role)
        metadata = body.get("metadata", {})
        if not isinstance(metadata, dict):
            raise AdminError(400, "metadata must be an object")
        role_id = body.get("role_id", body.get("role", defaults.COMMERCELAYER_DEFAULT_ROLE_ID))
        if role_id is not None and role_id not in self.roles:
            raise AdminError(400, f"role {role_id!r} does not exist (seed it first)")
        expires_in = body.get("expires_in", EXPIRES_MIN)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int):
            raise AdminError(400, "expires_in must be an integer")
        t = tick(None, 3)
        d: JSON = {
            "id": rid,
            "name": str_field(body, "name", rid),
            "kind": str_field(body, "kind", "integration"),
            "confidential": bool(body.get("confidential", True)),
            "redirect_uri": body.get("redirect_uri"),
            "client_id": str_field(body, "client_id", random_secret(self.sb.rng, 43)),
            "client_secret": str_field(body, "client_secret", random_secret(self.sb.rng, 43)),
            "scopes": str_field(body, "scopes", "market:all"),
            "expires_in": expires_in,
            "mode": str_field(body, "mode", "test"),
            "custom": bool(body.get("custom", False)),
            "created_at": iso_units(t, 3),
            "updated_at": iso_units(t, 3),
            "reference": body.get("reference"),
            "reference_origin": body.get("reference_origin"),
            "metadata": snapshot(metadata),
            "role_id": role_id,
            "organization_id": str_field(
                body, "organization_id", defaults.COMMERCELAYER_ORGANIZATION_ID
            ),
            "_updated": t,
        }
        rec = Record(d)
        rec.initial = {"secret": self._secret(d), "version": d["updated_at"]}
        self.credentials[rid] = rec
        return self._admin_view(rec)

    @staticmethod
    def _admin_view(rec: Record) -> JSON:
        view = rec.admin_view({"version": rec.data["updated_at"]})
        view.pop("_updated", None)
        return view

    def admin_get(self, kind: str, rid: str) -> JSON | None:
        if kind == "roles":
            role = self.roles.get(rid)
            return None if role is None else snapshot(role)
        rec = self.credentials.get(rid)
        return None if rec is None else self._admin_view(rec)

    def admin_oob(self, kind: str, rid: str, body: JSON | None) -> JSON | None:
        if kind == "roles":
            raise AdminError(400, "roles have no out-of-band edits")
        rec = self.credentials.get(rid)
        if rec is None:
            return None
        d = rec.data
        if body is None:
            d["reference"] = "oob-" + random_secret(self.sb.rng)
            d["metadata"] = {**d["metadata"], "oob": random_secret(self.sb.rng)}
        else:
            for key in ("name", "reference", "reference_origin", "redirect_uri"):
                if key in body:
                    d[key] = body[key]
            if "metadata" in body:
                if not isinstance(body["metadata"], dict):
                    raise AdminError(400, "metadata must be an object")
                d["metadata"] = snapshot(body["metadata"])
            role_id: Any = body.get("role_id", d["role_id"])
            if role_id is not None and role_id not in self.roles:
                raise AdminError(400, f"role {role_id!r} does not exist")
            d["role_id"] = role_id
        self._touch(d)
        rec.note("oob", self._secret(d), d["updated_at"])
        return self._admin_view(rec)

    def put_client(self, client_id: str, body: JSON) -> JSON:
        secret = body.get("client_secret", body.get("secret"))
        if not isinstance(secret, str) or not secret:
            raise AdminError(400, "client_secret is required")
        self.clients[client_id] = {"client_secret": secret}
        return {"client_id": client_id}
