"""Thales CipherTrust Manager: auth tokens, CCKM Salesforce organizations, Salesforce connections.

Routes (under ``/api/v1``):

- ``POST /auth/tokens/`` (slash optional): ``{"grant_type": "password", "username",
  "password", "domain"?}`` or ``{"grant_type": "refresh_token", "refresh_token"}`` ->
  ``{"jwt", "duration": 300, "token_type": "Bearer", "client_id", "refresh_token",
  "refresh_token_id"}``. The JWT expires after ``duration`` seconds; refresh tokens stay valid
  and are returned unchanged by the refresh grant (CipherTrust does not rotate them).
- ``GET /cckm/sfdc/organizations`` (``skip``/``limit`` -> ``{skip, limit, total, resources}``),
  ``GET|PATCH /cckm/sfdc/organizations/{id}``: PATCH ``{"connection": <name or id>}``
  re-points the org (stored and shown as the connection's name); an unknown connection is a
  422; every PATCH sets a new ``updatedAt``.
- ``GET|POST /connectionmgmt/services/salesforce/connections`` (list: ``name`` filter with ``*``
  wildcards, ``id``, ``products``, ``skip``/``limit`` (default 10) -> ``{skip, limit, total,
  resources}``; create: name + products ["cckm"] + client_id + client_secret (or a certificate)
  [+ username/password, domain_name, cloud_name, description, meta] -> 201, 409 on a duplicate
  name), ``GET|PATCH|DELETE .../connections/{id-or-name}`` (the name cannot be changed; deleting
  a connection an organization uses is a 409, a sandbox choice), ``POST .../connections/{id}/test``
  and ``POST .../salesforce/connection-test`` (body: connection fields, or ``{"connection"|"id"|
  "name": <existing>}``) -> 200 ``{"connection_ok": bool, "message"}``, an answer shape the
  sandbox invents (CipherTrust documents none); a client_id starting with ``unconfirmed`` gets
  200 ``{"status", "message"}`` instead (``ciphertrust_records.test_answer``). The sandbox cannot
  reach Salesforce: credentials test ok when client_id and client_secret (and password when a
  username is given) are non-empty and none of them starts with ``invalid``.

Connections never show client_secret, password or certificates. Timestamps are ISO-8601 UTC with
microseconds. Errors: ``{"code", "codeDesc", "message", "requestID"}`` -- 401 code 5
NCERRUnauthorizedAccess (wrong credentials, bad or expired JWT: "Token is expired by Ns"); the
other codes are the sandbox's own: 404 NCERRResourceNotFound, 409 NCERRResourceAlreadyExists /
NCERRConflict, 422 NCERRInvalidParamValue, 400 NCERRBadRequest, 429 NCERRTooManyRequests, 5xx
NCERRInternalServerError / NCERRServiceUnavailable.

Admin bodies: ``PUT /_sandbox/ciphertrust/resources/{org id}`` (all optional)::

    {"name": id, "organization_id": "00D...", "connection": <connection name or id>,
     "account": "kylo:kylo:admin:accounts:kylo", "application": "ncryptify:gemalto:admin:apps:kylo",
     "devAccount": "kylo:kylo:admin:accounts:kylo"}

``PUT /_sandbox/ciphertrust/connections/{id}``: ``{"name": id, "products": ["cckm"],
"cloud_name": "Salesforce Cloud", "client_id", "client_secret", "username", "password",
"domain_name", "description", "meta"}`` (missing secrets are random).
Secret part (history): org ``{"connection"}``; connection ``{client_id, client_secret, username,
password}``. Version: ``updatedAt``. API-created connections start their history with the
creation; deleted ones stay readable through the admin API with ``"deleted": true``. An
out-of-band edit without a body randomizes a connection's client_secret/password, and re-points
an organization at another existing connection (if any).
Clients (``PUT /_sandbox/ciphertrust/clients/{username}``): ``{"password", "domain"?}``.
"""

from __future__ import annotations

import fnmatch
import json
import secrets
import uuid
from typing import ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rotator.sandbox import defaults
from rotator.sandbox.ciphertrust_records import (
    HIDDEN,
    SECRET_FIELDS,
    STRING_FIELDS,
    check_fields,
    ct_error,
    new_connection,
    new_org,
    paged,
    test_answer,
)
from rotator.sandbox.common import AdminError, ProviderSim, json_response, str_field
from rotator.sandbox.state import (
    JSON,
    Record,
    Token,
    bearer,
    format_retry_after,
    iso_utc,
    now,
    random_secret,
    snapshot,
    touch,
)

TOKEN_TTL = 300.0
CONNECTIONS = "/api/v1/connectionmgmt/services/salesforce/connections"


def _found(rec: Record | None) -> Record | Response:
    """The record, or CipherTrust's 404 answer for every missing organization or connection."""
    return ct_error(404, "Resource not found") if rec is None else rec


class CipherTrustSim(ProviderSim):
    name: ClassVar[str] = "ciphertrust"
    admin_kinds: ClassVar[frozenset[str]] = frozenset({"resources", "connections"})

    def reset(self) -> None:
        self.users: dict[str, JSON] = {
            defaults.CIPHERTRUST_USERNAME: {
                "password": defaults.CIPHERTRUST_PASSWORD,
                "domain": defaults.CIPHERTRUST_DOMAIN,
            }
        }
        self.refresh_tokens: dict[str, JSON] = {}
        self.orgs: dict[str, Record] = {}
        self.connections: dict[str, Record] = {}
        self.deleted: dict[str, Record] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v1/auth/tokens/", self.token, methods=["POST"]),
            Route("/api/v1/auth/tokens", self.token, methods=["POST"]),
            Route("/api/v1/cckm/sfdc/organizations", self.list_orgs, methods=["GET"]),
            Route("/api/v1/cckm/sfdc/organizations/{oid}", self.get_org, methods=["GET"]),
            Route("/api/v1/cckm/sfdc/organizations/{oid}", self.patch_org, methods=["PATCH"]),
            Route(CONNECTIONS, self.list_connections, methods=["GET"]),
            Route(CONNECTIONS, self.create_connection, methods=["POST"]),
            Route(
                "/api/v1/connectionmgmt/services/salesforce/connection-test",
                self.test_parameters,
                methods=["POST"],
            ),
            Route(CONNECTIONS + "/{cid}/test", self.test_existing, methods=["POST"]),
            Route(CONNECTIONS + "/{cid}", self.get_connection, methods=["GET"]),
            Route(CONNECTIONS + "/{cid}", self.patch_connection, methods=["PATCH"]),
            Route(CONNECTIONS + "/{cid}", self.delete_connection, methods=["DELETE"]),
        ]

    def fault_response(self, status: int, retry_after: float | None) -> Response:
        messages = {429: "Too many requests", 503: "Service unavailable", 504: "Gateway timeout"}
        resp = ct_error(status, messages.get(status, "Internal server error"))
        if retry_after is not None:
            resp.headers["Retry-After"] = format_retry_after(retry_after)
        return resp

    # --- auth -------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except (ValueError, UnicodeDecodeError):
            return ct_error(422, "Invalid JSON.")
        if not isinstance(body, dict):
            return ct_error(422, "Invalid JSON.")
        grant = body.get("grant_type") or "password"
        if grant == "password":
            user = self.users.get(str(body.get("username", "")))
            domain = body.get("domain") or defaults.CIPHERTRUST_DOMAIN
            if user is None or body.get("password") != user["password"] or domain != user["domain"]:
                return ct_error(401, "Wrong username or password.")
            # Not from the seeded RNG: a token minted before a reset must never come back.
            refresh = secrets.token_urlsafe(36)
            identity: JSON = {
                "username": body["username"],
                "domain": domain,
                "client_id": str(uuid.uuid4()),
                "refresh_token_id": str(uuid.uuid4()),
            }
            self.refresh_tokens[refresh] = identity
        elif grant == "refresh_token":
            refresh = str(body.get("refresh_token", ""))
            found = self.refresh_tokens.get(refresh)
            if found is None or found["username"] not in self.users:
                return ct_error(401, "Invalid token")
            identity = found
        else:
            return ct_error(400, f"Unsupported grant_type {grant!r}.")
        ttl = self.sb.config.ttl(self.name, TOKEN_TTL)
        token = self.sb.tokens.mint(
            self.name,
            identity["username"],
            ttl,
            extra={"domain": identity["domain"]},
            claims={"cust": {"domain": identity["domain"]}, "client_id": identity["client_id"]},
        )
        self.count_token()
        return json_response(
            {
                "jwt": token.value,
                "duration": int(ttl) if float(ttl).is_integer() else ttl,
                "token_type": "Bearer",
                "client_id": identity["client_id"],
                "refresh_token": refresh,
                "refresh_token_id": identity["refresh_token_id"],
            }
        )

    def _auth(self, request: Request) -> Token | Response:
        value = bearer(request.headers.get("authorization"))
        if value is None:
            return ct_error(401, "Token is missing.")
        token = self.sb.tokens.get(self.name, value)
        if token is None:
            return ct_error(401, "Invalid token")
        t = now()
        if token.expired(t):
            late = max(1, int(t - token.expires_at))
            return ct_error(401, f"Token is expired by {late}s")
        return token

    async def _authed_json(self, request: Request) -> JSON | Response:
        """The JSON object body of an authenticated request, or the error to answer.

        The body is read first (handlers do their state work after the last ``await``), but a
        bad token is answered before a bad body, as CipherTrust does.
        """
        raw = await request.body()
        auth = self._auth(request)
        if isinstance(auth, Response):
            return auth
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return ct_error(422, "Invalid JSON.")
        if not isinstance(body, dict):
            return ct_error(422, "Invalid JSON: expected an object.")
        return body

    def _authed(self, request: Request, rec: Record | None) -> Record | Response:
        """``rec`` for an authenticated request: the 401 first, then the 404 if there is none."""
        auth = self._auth(request)
        if isinstance(auth, Response):
            return auth
        return _found(rec)

    # --- organizations ------------------------------------------------------------------------

    @staticmethod
    def _org_view(d: JSON) -> JSON:
        return {k: v for k, v in d.items() if not k.startswith("_")}

    async def list_orgs(self, request: Request) -> Response:
        auth = self._auth(request)
        if isinstance(auth, Response):
            return auth
        q = request.query_params
        items = [self._org_view(self.orgs[oid].data) for oid in sorted(self.orgs)]
        page = paged(items, q.get("skip", "0"), q.get("limit", "10"))
        return page if isinstance(page, Response) else json_response(page)

    async def get_org(self, request: Request) -> Response:
        rec = self._authed(request, self.orgs.get(request.path_params["oid"]))
        if isinstance(rec, Response):
            return rec
        return json_response(self._org_view(rec.data))

    async def patch_org(self, request: Request) -> Response:
        body = await self._authed_json(request)
        if isinstance(body, Response):
            return body
        rec = _found(self.orgs.get(request.path_params["oid"]))
        if isinstance(rec, Response):
            return rec
        target = body.get("connection")
        if not isinstance(target, str) or not target:
            return ct_error(422, "Validation errors:\nconnection: connection is a required field")
        conn = self._connection(target)
        if conn is None:
            return ct_error(422, f"Connection {target!r} not found.")
        d = rec.data
        d["connection"] = conn.data["name"]
        self._touch(d)
        rec.note("api", {"connection": d["connection"]}, d["updatedAt"])
        self.count_update()
        return json_response(self._org_view(d))

    @staticmethod
    def _touch(d: JSON) -> None:
        touch(d, "_updated", "updatedAt", 6)

    # --- connections --------------------------------------------------------------------------

    def _connection(self, ref: str) -> Record | None:
        rec = self.connections.get(ref)
        if rec is not None:
            return rec
        for candidate in self.connections.values():
            if candidate.data["name"] == ref:
                return candidate
        return None

    @staticmethod
    def _conn_view(d: JSON) -> JSON:
        return {k: snapshot(v) for k, v in d.items() if k not in HIDDEN and k[0] != "_"}

    def _in_use(self, name: str) -> list[str]:
        return sorted(oid for oid, rec in self.orgs.items() if rec.data.get("connection") == name)

    async def list_connections(self, request: Request) -> Response:
        auth = self._auth(request)
        if isinstance(auth, Response):
            return auth
        q = request.query_params
        items = sorted(self.connections.values(), key=lambda r: (r.data["_created"], r.data["id"]))
        name = q.get("name")
        if name:
            items = [r for r in items if fnmatch.fnmatchcase(r.data["name"], name)]
        if q.get("id"):
            items = [r for r in items if r.data["id"] == q["id"]]
        if q.get("products"):
            wanted = set(q["products"].split(","))
            items = [r for r in items if wanted & set(r.data["products"])]
        views = [self._conn_view(r.data) for r in items]
        page = paged(views, q.get("skip", "0"), q.get("limit", "10"))
        return page if isinstance(page, Response) else json_response(page)

    @staticmethod
    def _secret(d: JSON) -> JSON:
        return {k: d.get(k, "") for k in SECRET_FIELDS}

    async def create_connection(self, request: Request) -> Response:
        body = await self._authed_json(request)
        if isinstance(body, Response):
            return body
        problem = check_fields(body, creating=True)
        if problem:
            return ct_error(422, f"Validation errors:\n{problem}")
        if self._connection(body["name"]) is not None:
            return ct_error(409, f"Connection with name {body['name']!r} already exists.")
        rec = new_connection(str(uuid.uuid4()), body)
        self.connections[rec.data["id"]] = rec
        rec.note("api", self._secret(rec.data), rec.data["updatedAt"])
        self.count_update()
        return json_response(self._conn_view(rec.data), 201)

    async def get_connection(self, request: Request) -> Response:
        rec = self._authed(request, self._connection(request.path_params["cid"]))
        if isinstance(rec, Response):
            return rec
        return json_response(self._conn_view(rec.data))

    async def patch_connection(self, request: Request) -> Response:
        body = await self._authed_json(request)
        if isinstance(body, Response):
            return body
        rec = _found(self._connection(request.path_params["cid"]))
        if isinstance(rec, Response):
            return rec
        d = rec.data
        if "name" in body and body["name"] != d["name"]:
            return ct_error(422, "Validation errors:\nname: name cannot be changed")
        problem = check_fields(body, creating=False)
        if problem:
            return ct_error(422, f"Validation errors:\n{problem}")
        merged = {**d, **{k: v for k, v in body.items() if v is not None}}
        if merged.get("username") and not merged.get("password"):
            return ct_error(422, "Validation errors:\npassword: password is required with username")
        for key in (*STRING_FIELDS, "products", "meta"):
            if key in body and body[key] is not None:
                d[key] = snapshot(body[key])
        self._touch(d)
        rec.note("api", self._secret(d), d["updatedAt"])
        self.count_update()
        return json_response(self._conn_view(d))

    async def delete_connection(self, request: Request) -> Response:
        rec = self._authed(request, self._connection(request.path_params["cid"]))
        if isinstance(rec, Response):
            return rec
        users = self._in_use(rec.data["name"])
        if users:
            return ct_error(
                409,
                f"Connection is in use by organization(s): {', '.join(users)}.",
                "NCERRConflict",
            )
        del self.connections[rec.data["id"]]
        rec.data["deletedAt"] = iso_utc(now())
        self.deleted[rec.data["id"]] = rec
        return Response(status_code=204)

    def _record_test(self, rec: Record) -> JSON:
        answer = test_answer(rec.data)
        ok = answer.get("connection_ok") is True
        rec.data["last_connection_ok"] = ok
        rec.data["last_connection_error"] = "" if ok else str(answer.get("message"))
        rec.data["last_connection_at"] = iso_utc(now())
        return answer

    async def test_existing(self, request: Request) -> Response:
        rec = self._authed(request, self._connection(request.path_params["cid"]))
        if isinstance(rec, Response):
            return rec
        return json_response(self._record_test(rec))

    async def test_parameters(self, request: Request) -> Response:
        body = await self._authed_json(request)
        if isinstance(body, Response):
            return body
        ref = body.get("connection") or body.get("id")
        if ref is None and body.get("name") and not body.get("client_id"):
            ref = body["name"]
        if ref is not None:
            rec = _found(self._connection(str(ref)))
            if isinstance(rec, Response):
                return rec
            return json_response(self._record_test(rec))
        for key in STRING_FIELDS:
            if key in body and body[key] is not None and not isinstance(body[key], str):
                return ct_error(422, f"Validation errors:\n{key} must be a string")
        return json_response(test_answer(body))

    # --- admin ------------------------------------------------------------------------------

    def admin_put(self, kind: str, rid: str, body: JSON) -> JSON:
        if kind == "connections":
            problem = check_fields({**body, "products": body.get("products", ["cckm"])}, False)
            if problem:
                raise AdminError(400, problem)
            name = str_field(body, "name", rid)
            for other in self.connections.values():
                if other.data["name"] == name and other.data["id"] != rid:
                    raise AdminError(400, f"another connection is named {name!r}")
            filled = {
                "client_id": "sf-client-" + random_secret(self.sb.rng, 12),
                "client_secret": random_secret(self.sb.rng),
                "username": "integration@sandbox.example",
                "password": random_secret(self.sb.rng),
                **{k: v for k, v in body.items() if v is not None},
                "name": name,
            }
            rec = new_connection(rid, filled)
            rec.initial = {"secret": self._secret(rec.data), "version": rec.data["updatedAt"]}
            self.connections[rid] = rec
            self.deleted.pop(rid, None)
            return self._admin_view(rec)
        target = str_field(body, "connection", "")
        conn = self._connection(target) if target else None
        org_id = "00D" + random_secret(self.sb.rng, 15)
        d = new_org(rid, body, conn.data["name"] if conn is not None else target, org_id)
        rec = Record(d)
        rec.initial = {"secret": {"connection": d["connection"]}, "version": d["updatedAt"]}
        self.orgs[rid] = rec
        return self._admin_view(rec)

    @staticmethod
    def _admin_view(rec: Record, deleted: bool = False) -> JSON:
        view = rec.admin_view({"version": rec.data["updatedAt"], "deleted": deleted})
        for key in [k for k in view if k.startswith("_")]:
            del view[key]
        return view

    def admin_get(self, kind: str, rid: str) -> JSON | None:
        if kind == "connections":
            rec = self.connections.get(rid)
            if rec is not None:
                return self._admin_view(rec)
            gone = self.deleted.get(rid)
            return None if gone is None else self._admin_view(gone, deleted=True)
        org = self.orgs.get(rid)
        return None if org is None else self._admin_view(org)

    def admin_oob(self, kind: str, rid: str, body: JSON | None) -> JSON | None:
        if kind == "connections":
            rec = self.connections.get(rid)
            if rec is None:
                return None
            d = rec.data
            if body is None:
                d["client_secret"] = "oob-" + random_secret(self.sb.rng)
                d["password"] = "oob-" + random_secret(self.sb.rng)
            else:
                for key in (*SECRET_FIELDS, "description", "domain_name"):
                    if key in body:
                        d[key] = str_field(body, key, "")
            self._touch(d)
            rec.note("oob", self._secret(d), d["updatedAt"])
            return self._admin_view(rec)
        org = self.orgs.get(rid)
        if org is None:
            return None
        d = org.data
        if body is not None and "connection" in body:
            target = str_field(body, "connection", "")
            conn = self._connection(target)
            d["connection"] = conn.data["name"] if conn is not None else target
        elif body is None:
            # Someone re-points the org by hand: at another existing connection if there is one.
            others = sorted(r.data["name"] for r in self.connections.values())
            others = [n for n in others if n != d["connection"]]
            if others:
                d["connection"] = self.sb.rng.choice(others)
        self._touch(d)
        org.note("oob", {"connection": d["connection"]}, d["updatedAt"])
        return self._admin_view(org)

    def put_client(self, client_id: str, body: JSON) -> JSON:
        password = body.get("password", body.get("secret"))
        if not isinstance(password, str) or not password:
            raise AdminError(400, "password is required")
        domain = str_field(body, "domain", defaults.CIPHERTRUST_DOMAIN)
        self.users[client_id] = {"password": password, "domain": domain}
        return {"username": client_id, "domain": domain}
