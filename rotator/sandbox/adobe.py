"""Adobe IMS (server-to-server OAuth) and Experience Platform Flow Service connections.

Routes: ``POST /ims/token/v3`` (form: grant_type=client_credentials, client_id, client_secret,
scope) and, under ``/data/foundation/flowservice``, ``GET|PATCH /connections/{id}``.

Every Flow Service call passes the API gateway checks first, answered in the gateway's own
shape ``{"error_code", "message"}``: 403010 no token, 401013 bad/expired token, 403000 no
``x-api-key``, 403003 unknown key or one that is not the token's client, 400003 no
``x-gw-ims-org-id``, 403025 org not the client's. Then the service: FLOW-2105-400 no
``x-sandbox-name``; errors ``{"type": ".../FLOW-<code>", "title", "status", "report"}``.

PATCH needs ``Content-Type: application/json`` (or json-patch+json; else the platform's
``BadRequestError`` 400), ``If-Match`` (quoted or not; FLOW-1403-400 without, FLOW-1404-412
when stale) and a JSON Patch array whose ops are add|replace|remove (others FLOW-1434-400)
on ``/auth/params``, ``/auth/params/<key>``, ``/name`` or ``/description`` with RFC 6902
semantics (FLOW-1455-400 otherwise, see ``rotator.sandbox.adobe_patch``; an empty body is
FLOW-1405-400). Only enabled/disabled/initializing connections can be updated (FLOW-1416-400).
Each update gets a new quoted etag (``version == etag``) and ``updatedAt`` in epoch ms. GET
masks the secret-looking ``auth.params`` (password, securityToken, clientSecret, ...) as
``"***"``. ``replace`` (or ``remove``) of ``/description`` on a connection that has none is
FLOW-1455-400 ``Missing field "description"``, as on the real service; ``add`` sets it.

Invented where Adobe does not define it: ``updatedClient``/``updatedBy`` after an API update.
The docs show a name, a user id and an API key there; the sandbox records the caller's client
*name* (``client_name``, default ``"sandbox integration"``) and technical account, never the
client id, so a client that compares ``updatedClient`` with its client id fails here as it
might on the real service.

Admin body (``PUT /_sandbox/adobe/resources/{id}``), every field optional; without
``description`` the connection has none (like one created without a description)::

    {"name": id, "description": absent, "state": "enabled",
     "connectionSpec": {"id": <Salesforce spec>, "version": "1.0"},
     "auth": {"specName": "Basic Authentication", "params": {...}},
     "sandboxName": "prod", "imsOrgId": <default org>}

Secret part (history): ``auth.params``. Version: the etag.
Clients (``PUT /_sandbox/adobe/clients/{client_id}``): ``{"client_secret", "org_id"?,
"client_name"?}``.
"""

from __future__ import annotations

import json
import uuid
from typing import ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rotator.sandbox import defaults
from rotator.sandbox.adobe_patch import PatchError, apply_patch
from rotator.sandbox.common import (
    AdminError,
    ProviderSim,
    form_or_json,
    json_response,
    str_field,
)
from rotator.sandbox.state import (
    JSON,
    Record,
    Token,
    bearer,
    format_retry_after,
    random_secret,
    request_id,
    snapshot,
    tick,
)

FLOW = "/data/foundation/flowservice"
TOKEN_TTL = 86399.0
UPDATABLE_STATES = frozenset({"enabled", "disabled", "initializing"})
_SECRET_HINTS = (
    "password",
    "secret",
    "token",
    "key",
    "credential",
    "passphrase",
    "connectionstring",
)
MASK = "***"

_TITLES = {
    1101: "Resource not found",
    1102: "Internal Error",
    1103: "Service Unavailable",
    1104: "Gateway Timeout",
    1403: "Header is missing",
    1404: "Version not matching",
    2105: "Header is missing",
}


def is_secret_param(key: str) -> bool:
    k = key.lower()
    return any(h in k for h in _SECRET_HINTS)


def new_etag() -> str:
    u = uuid.uuid4().hex
    return f'"{u[:8]}-0000-0200-0000-{u[8:20]}"'


def _strip_etag(value: str) -> str:
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    return v.strip('"')


def flow_error(code: int, status: int, message: str, title: str | None = None) -> Response:
    body: JSON = {
        "type": f"https://ns.adobe.com/aep/errors/FLOW-{code}-{status}",
        "title": title or _TITLES.get(code, "Invalid request"),
        "status": status,
        "report": {"detailed-message": message, "requestId": request_id()},
    }
    return json_response(body, status, {"x-request-id": body["report"]["requestId"]})


def gateway_error(status: int, code: str, message: str) -> Response:
    return json_response({"error_code": code, "message": message}, status)


def ims_error(status: int, error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, status)


class AdobeSim(ProviderSim):
    name: ClassVar[str] = "adobe"

    def reset(self) -> None:
        self.clients: dict[str, JSON] = {
            defaults.ADOBE_CLIENT_ID: _client(
                defaults.ADOBE_CLIENT_ID, defaults.ADOBE_CLIENT_SECRET, defaults.ADOBE_ORG_ID
            )
        }
        self.connections: dict[str, Record] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/ims/token/v3", self.token, methods=["POST"]),
            Route(FLOW + "/connections/{cid}", self.get_connection, methods=["GET"]),
            Route(FLOW + "/connections/{cid}", self.patch_connection, methods=["PATCH"]),
        ]

    def fault_response(self, status: int, retry_after: float | None) -> Response:
        headers = (
            {"Retry-After": format_retry_after(retry_after)} if retry_after is not None else {}
        )
        if status == 429:
            resp = gateway_error(429, "429050", "Too many requests")
        elif status in (500, 503, 504):
            code = {500: 1102, 503: 1103, 504: 1104}[status]
            resp = flow_error(code, status, _TITLES[code] + ". Please try again.")
        else:
            resp = gateway_error(status, f"{status}000", "Bad gateway")
        resp.headers.update(headers)
        return resp

    # --- IMS --------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        p = await form_or_json(request)
        if p.get("grant_type") != "client_credentials":
            return ims_error(400, "unsupported_grant_type", "unsupported grant_type parameter")
        client_id = p.get("client_id", "")
        client = self.clients.get(client_id)
        if client is None:
            return ims_error(400, "invalid_client", "invalid client_id parameter")
        if p.get("client_secret") != client["client_secret"]:
            return ims_error(401, "invalid_client", "invalid client_secret parameter")
        scope = p.get("scope", "").strip()
        if not scope:
            return ims_error(400, "invalid_scope", "scope parameter is required")
        ttl = self.sb.config.ttl(self.name, TOKEN_TTL)
        token = self.sb.tokens.mint(
            self.name,
            client_id,
            ttl,
            scopes=[s for s in scope.split(",") if s],
            extra={"org_id": client["org_id"]},
            claims={"client_id": client_id, "type": "access_token", "as": "ims-na1"},
        )
        self.count_token(client_id)
        return json_response(
            {"access_token": token.value, "token_type": "bearer", "expires_in": int(ttl)}
        )

    # --- Flow Service ----------------------------------------------------------------------

    def _gateway(self, request: Request) -> Token | Response:
        h = request.headers
        if not h.get("authorization"):
            return gateway_error(403, "403010", "Oauth token is missing.")
        value = bearer(h.get("authorization"))
        token = self.sb.tokens.get(self.name, value) if value else None
        if token is None or token.expired():
            return gateway_error(401, "401013", "Oauth token is not valid")
        api_key = h.get("x-api-key")
        if not api_key:
            return gateway_error(403, "403000", "Api Key is required")
        if api_key not in self.clients or api_key != token.client_id:
            return gateway_error(403, "403003", "Api Key is invalid")
        org = h.get("x-gw-ims-org-id")
        if not org:
            return gateway_error(400, "400003", "Missing header")
        if org != token.extra.get("org_id"):
            return gateway_error(403, "403025", "Profile is not valid")
        if not h.get("x-sandbox-name"):
            return flow_error(
                2105,
                400,
                "The header x-sandbox-name is missing in the request. "
                "Please add the header in the request and try again.",
            )
        return token

    def _find(self, request: Request, cid: str) -> Record | None:
        rec = self.connections.get(cid)
        if rec is None:
            return None
        d = rec.data
        if d["sandboxName"] != request.headers.get("x-sandbox-name"):
            return None
        if d["imsOrgId"] != request.headers.get("x-gw-ims-org-id"):
            return None
        return rec

    @staticmethod
    def _not_found(cid: str) -> Response:
        return flow_error(
            1101,
            404,
            "The requested resource is not found. Error from flow provider: "
            f"Resource with given id '{cid}' does not exist.",
        )

    @staticmethod
    def _item(d: JSON) -> JSON:
        params = {k: (MASK if is_secret_param(k) else v) for k, v in d["auth"]["params"].items()}
        item: JSON = {
            "id": d["id"],
            "createdAt": d["createdAt"],
            "updatedAt": d["updatedAt"],
            "createdBy": d["createdBy"],
            "updatedBy": d["updatedBy"],
            "createdClient": d["createdClient"],
            "updatedClient": d["updatedClient"],
            "sandboxId": d["sandboxId"],
            "sandboxName": d["sandboxName"],
            "imsOrgId": d["imsOrgId"],
            "name": d["name"],
            "connectionSpec": snapshot(d["connectionSpec"]),
            "state": d["state"],
            "auth": {"specName": d["auth"]["specName"], "params": params},
            "version": d["etag"],
            "etag": d["etag"],
        }
        if d.get("description") is not None:
            item["description"] = d["description"]
        return item

    async def get_connection(self, request: Request) -> Response:
        auth = self._gateway(request)
        if isinstance(auth, Response):
            return auth
        cid = request.path_params["cid"]
        rec = self._find(request, cid)
        if rec is None:
            return self._not_found(cid)
        return json_response({"items": [self._item(rec.data)]}, headers={"ETag": rec.data["etag"]})

    async def patch_connection(self, request: Request) -> Response:
        raw = await request.body()
        auth = self._gateway(request)
        if isinstance(auth, Response):
            return auth
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/json", "application/json-patch+json"):
            # The platform's generic answer (troubleshooting guide), not a FLOW code.
            body = {
                "type": "/placeholder/type/uri",
                "status": 400,
                "title": "BadRequestError",
                "detail": "A valid content-type must be specified",
            }
            return json_response(body, 400)
        if_match = request.headers.get("if-match")
        if not if_match:
            return flow_error(
                1403,
                400,
                "The header 'If-Match' is missing in the request. "
                "Please provide the header and try again.",
            )
        cid = request.path_params["cid"]
        rec = self._find(request, cid)
        if rec is None:
            return self._not_found(cid)
        d = rec.data
        if d["state"] not in UPDATABLE_STATES:
            return flow_error(
                1416,
                400,
                "Delete or Update can only be applied on connection with enabled, disabled or "
                "initializing state.",
            )
        if not raw.strip():
            return flow_error(
                1405,
                400,
                "The request body cannot be null or empty. Please provide a request body.",
            )
        try:
            ops = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return flow_error(
                1455,
                400,
                "An error has occurred while validating patch "
                "instructions: the body is not valid JSON.",
            )
        try:
            changed = apply_patch(d, ops)
        except PatchError as exc:
            return flow_error(
                exc.code,
                400,
                f"An error has occurred while validating patch instructions: {exc.message}",
            )
        if _strip_etag(if_match) != _strip_etag(d["etag"]):
            return flow_error(
                1404,
                412,
                f"The supplied version '{if_match}' does not match the current version on "
                f"entity '{d['etag']}'. Please ensure that the supplied version matches the "
                "current version on entity and try again.",
            )
        d["name"] = changed["name"]
        d["description"] = changed["description"]
        d["auth"]["params"] = changed["params"]
        client = self.clients[auth.client_id]
        self._bump(d, client["technical_account"], client["client_name"])
        rec.note("api", d["auth"]["params"], d["etag"])
        self.count_update()
        return json_response({"id": d["id"], "etag": d["etag"]}, headers={"ETag": d["etag"]})

    @staticmethod
    def _bump(d: JSON, by: str, client: str) -> None:
        d["etag"] = new_etag()
        d["updatedAt"] = tick(d["updatedAt"], 3)
        d["updatedBy"] = by
        d["updatedClient"] = client

    # --- admin ------------------------------------------------------------------------------

    def admin_put(self, kind: str, rid: str, body: JSON) -> JSON:
        auth = body.get("auth") or {}
        spec = body.get("connectionSpec") or {}
        if not isinstance(auth, dict) or not isinstance(spec, dict):
            raise AdminError(400, "auth and connectionSpec must be objects")
        params = auth.get("params", {})
        if not isinstance(params, dict):
            raise AdminError(400, "auth.params must be an object")
        created = tick(None, 3)
        creator = str_field(body, "createdBy", defaults.ADOBE_CLIENT_ID)
        d: JSON = {
            "id": rid,
            "name": str_field(body, "name", rid),
            # Absent unless given: connections created without a description have none.
            "description": str(body["description"]) if "description" in body else None,
            "state": str_field(body, "state", "enabled"),
            "connectionSpec": {
                "id": str(spec.get("id", defaults.ADOBE_SALESFORCE_SPEC_ID)),
                "version": str(spec.get("version", "1.0")),
            },
            "auth": {
                "specName": str(auth.get("specName", "Basic Authentication")),
                "params": snapshot(params),
            },
            "sandboxName": str_field(body, "sandboxName", defaults.ADOBE_SANDBOX_NAME),
            "sandboxId": str_field(body, "sandboxId", str(uuid.uuid5(uuid.NAMESPACE_DNS, "prod"))),
            "imsOrgId": str_field(body, "imsOrgId", defaults.ADOBE_ORG_ID),
            "createdAt": created,
            "updatedAt": created,
            "createdBy": creator,
            "updatedBy": creator,
            "createdClient": creator,
            "updatedClient": creator,
            "etag": new_etag(),
        }
        rec = Record(d)
        rec.initial = {"secret": snapshot(d["auth"]["params"]), "version": d["etag"]}
        self.connections[rid] = rec
        return self._admin_view(rec)

    @staticmethod
    def _admin_view(rec: Record) -> JSON:
        return rec.admin_view({"version": rec.data["etag"]})

    def admin_get(self, kind: str, rid: str) -> JSON | None:
        rec = self.connections.get(rid)
        return None if rec is None else self._admin_view(rec)

    def admin_oob(self, kind: str, rid: str, body: JSON | None) -> JSON | None:
        rec = self.connections.get(rid)
        if rec is None:
            return None
        d = rec.data
        if body is None:
            params = d["auth"]["params"]
            keys = [k for k in params if is_secret_param(k)] or ["password"]
            for k in keys:
                params[k] = "oob-" + random_secret(self.sb.rng)
        else:
            for key in ("name", "description", "state"):
                if key in body:
                    d[key] = str_field(body, key, d.get(key) or "")
            params = body.get("params", (body.get("auth") or {}).get("params"))
            if params is not None:
                if not isinstance(params, dict):
                    raise AdminError(400, "params must be an object")
                d["auth"]["params"] = snapshot(params)
        self._bump(d, "oob-editor@techacct.adobe.com", "oob-editor")
        rec.note("oob", d["auth"]["params"], d["etag"])
        return self._admin_view(rec)

    def put_client(self, client_id: str, body: JSON) -> JSON:
        secret = body.get("client_secret", body.get("secret"))
        if not isinstance(secret, str) or not secret:
            raise AdminError(400, "client_secret is required")
        org = str_field(body, "org_id", defaults.ADOBE_ORG_ID)
        self.clients[client_id] = _client(client_id, secret, org, body.get("client_name"))
        return {"client_id": client_id, "org_id": org}


def _client(client_id: str, secret: str, org: str, name: object = None) -> JSON:
    """A registered integration. Its technical account id is derived from the client id."""
    account = uuid.uuid5(uuid.NAMESPACE_OID, client_id).hex.upper()[:24]
    return {
        "client_secret": secret,
        "org_id": org,
        "client_name": str(name) if name else defaults.ADOBE_CLIENT_NAME,
        "technical_account": f"{account}@techacct.adobe.com",
    }
