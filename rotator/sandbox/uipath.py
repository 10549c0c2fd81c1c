"""UiPath Automation Suite 2022.4 identity server: client-credentials tokens and robot accounts.

Routes (each also with a ``/{tenant}`` segment before ``identity_``):

- ``POST /{organization}/identity_/connect/token`` (cloud clients) and ``POST
  /identity/connect/token`` (clients of a standalone identity server, whose token URL has no
  organization and is not derived from the API's; the seeded ``UIPATH_STANDALONE_CLIENT_ID``
  is one; each kind of client is unknown at the other endpoint, a sandbox choice) (form:
  grant_type=client_credentials, client_id, client_secret, scope space-separated; no scope =
  every scope the client has).
  OAuth errors as an OAuth server answers them: 400 ``{"error": "invalid_client" |
  "unsupported_grant_type" | "invalid_scope" | "invalid_request"}``. Tokens live 3600 s.
- ``GET /{organization}/identity_/api/RobotAccount/{partitionGlobalId}/{robotAccountId}``
  (scope PM.RobotAccount or PM.RobotAccount.Read).
- ``PUT /{organization}/identity_/api/RobotAccount/{robotAccountId}`` (scope PM.RobotAccount or
  PM.RobotAccount.Write), body ``{partitionGlobalId, displayName?, groupIDsToAdd?[],
  groupIDsToRemove?[]}``. Adds/removes are deltas: adding a member group or removing an absent
  one is not an error, so a replay converges. ``lastModificationTime`` moves only when the
  display name or the group set actually changed. A missing/null displayName keeps the current
  one; a group both added and removed is a 400.

Error bodies are the sandbox's own choice (UiPath documents none): ASP.NET Core
ProblemDetails, ``{"type", "title", "status", "detail", "traceId"}``, with 401 (missing, unknown
or expired token, or a token of another organization; plus ``WWW-Authenticate: Bearer``),
403 (scope), 404 (unknown account, or partition not the account's), 400 (bad body).

Admin body (``PUT /_sandbox/uipath/resources/{robotAccountId}``), all optional::

    {"partitionGlobalId": <default partition>, "name": id, "displayName": name,
     "groupIds": [], "organization": "sandboxorg"}

Secret part (history): ``{"displayName", "groupIds" (sorted)}``. Version: lastModificationTime.
Clients (``PUT /_sandbox/uipath/clients/{client_id}``): ``{"client_secret", "scopes": [..] or
"space separated", "organization"?, "standalone"?: bool}``.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rotator.sandbox import defaults
from rotator.sandbox.common import AdminError, ProviderSim, form_or_json, json_response, str_field
from rotator.sandbox.state import (
    JSON,
    Record,
    Token,
    bearer,
    format_retry_after,
    iso_units,
    parse_json_object,
    random_secret,
    tick,
    touch,
)

TOKEN_TTL = 3600.0
READ_SCOPES = frozenset({"PM.RobotAccount", "PM.RobotAccount.Read"})
WRITE_SCOPES = frozenset({"PM.RobotAccount", "PM.RobotAccount.Write"})
_RFC = "https://tools.ietf.org/html/rfc9110#section-15."
_PROBLEM = {
    400: ("5.1", "Bad Request"),
    401: ("5.2", "Unauthorized"),
    403: ("5.4", "Forbidden"),
    404: ("5.5", "Not Found"),
    429: ("5.1", "Too Many Requests"),
    500: ("6.1", "Internal Server Error"),
    502: ("6.3", "Bad Gateway"),
    503: ("6.4", "Service Unavailable"),
    504: ("6.5", "Gateway Timeout"),
}


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    section, title = _PROBLEM.get(status, ("6.1", "Error"))
    body = {
        "type": _RFC + section,
        "title": title,
        "status": status,
        "detail": detail,
        "traceId": _trace_id(),
    }
    return json_response(body, status, headers, media_type="application/problem+json")


def _trace_id() -> str:
    # W3C traceparent-style, like ASP.NET Core's ProblemDetails traceId.
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"


def oauth_error(error: str, description: str | None = None) -> Response:
    body = {"error": error}
    if description:
        body["error_description"] = description
    return json_response(body, 400, {"Cache-Control": "no-store"})


class UiPathSim(ProviderSim):
    name: ClassVar[str] = "uipath"

    def reset(self) -> None:
        self.clients: dict[str, JSON] = {
            defaults.UIPATH_CLIENT_ID: {
                "client_secret": defaults.UIPATH_CLIENT_SECRET,
                "scopes": frozenset(defaults.UIPATH_SCOPES.split()),
                "organization": defaults.UIPATH_ORGANIZATION,
                "standalone": False,
            },
            defaults.UIPATH_STANDALONE_CLIENT_ID: {
                "client_secret": defaults.UIPATH_STANDALONE_CLIENT_SECRET,
                "scopes": frozenset(defaults.UIPATH_SCOPES.split()),
                "organization": defaults.UIPATH_ORGANIZATION,
                "standalone": True,
            },
        }
        self.accounts: dict[str, Record] = {}

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [Route("/identity/connect/token", self.token, methods=["POST"])]
        for prefix in ("/{org}/identity_", "/{org}/{tenant}/identity_"):
            routes += [
                Route(prefix + "/connect/token", self.token, methods=["POST"]),
                Route(
                    prefix + "/api/RobotAccount/{partition}/{rid}",
                    self.get_account,
                    methods=["GET"],
                ),
                Route(prefix + "/api/RobotAccount/{rid}", self.put_account, methods=["PUT"]),
            ]
        return routes

    def fault_response(self, status: int, retry_after: float | None) -> Response:
        resp = problem(status, "The service is temporarily unable to handle the request.")
        if retry_after is not None:
            resp.headers["Retry-After"] = format_retry_after(retry_after)
        return resp

    # --- token ------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        p = await form_or_json(request)
        grant = p.get("grant_type")
        if not grant:
            return oauth_error("invalid_request", "grant_type is missing")
        if grant != "client_credentials":
            return oauth_error("unsupported_grant_type")
        client_id = p.get("client_id", "")
        client = self.clients.get(client_id)
        org = request.path_params.get("org")  # None at a standalone identity server
        if (
            client is None
            or p.get("client_secret") != client["client_secret"]
            or client["standalone"] != (org is None)
            or (org is not None and client["organization"].lower() != org.lower())
        ):
            return oauth_error("invalid_client")
        allowed: frozenset[str] = client["scopes"]
        requested = p.get("scope", "").split()
        if requested:
            if not set(requested) <= allowed:
                return oauth_error("invalid_scope")
            granted = frozenset(requested)
        else:
            granted = allowed
        ttl = self.sb.config.ttl(self.name, TOKEN_TTL)
        token = self.sb.tokens.mint(
            self.name,
            client_id,
            ttl,
            scopes=granted,
            extra={"organization": client["organization"]},
            claims={"client_id": client_id, "scope": sorted(granted)},
        )
        self.count_token(client_id)
        return json_response(
            {
                "access_token": token.value,
                "expires_in": int(ttl),
                "token_type": "Bearer",
                "scope": " ".join(sorted(granted)),
            },
            headers={"Cache-Control": "no-store"},
        )

    # --- robot accounts -----------------------------------------------------------------------

    def _auth(self, request: Request, needed: frozenset[str]) -> Token | Response:
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        value = bearer(request.headers.get("authorization"))
        token = self.sb.tokens.get(self.name, value) if value else None
        if token is None:
            return problem(401, "A valid bearer token is required.", {"WWW-Authenticate": "Bearer"})
        if token.expired():
            return problem(401, "The access token expired.", challenge)
        if token.extra["organization"].lower() != request.path_params["org"].lower():
            return problem(401, "The access token is not valid for this organization.", challenge)
        if not token.scopes & needed:
            return problem(
                403,
                f"The access token lacks the required scope ({' or '.join(sorted(needed))}).",
            )
        return token

    def _account(self, request: Request, rid: str, partition: str) -> Record | None:
        rec = self.accounts.get(rid)
        if rec is None:
            return None
        d = rec.data
        if d["partitionGlobalId"].lower() != partition.lower():
            return None
        if d["organization"].lower() != request.path_params["org"].lower():
            return None
        return rec

    @staticmethod
    def _view(d: JSON) -> JSON:
        return {
            "id": d["id"],
            "name": d["name"],
            "displayName": d["displayName"],
            "creationTime": d["creationTime"],
            "lastModificationTime": d["lastModificationTime"],
            "lastLoginTime": d["lastLoginTime"],
            "groupIds": list(d["groupIds"]),
        }

    async def get_account(self, request: Request) -> Response:
        auth = self._auth(request, READ_SCOPES)
        if isinstance(auth, Response):
            return auth
        rid = request.path_params["rid"]
        rec = self._account(request, rid, request.path_params["partition"])
        if rec is None:
            return problem(404, f"Robot account '{rid}' was not found.")
        return json_response(self._view(rec.data))

    async def put_account(self, request: Request) -> Response:
        raw = await request.body()
        auth = self._auth(request, WRITE_SCOPES)
        if isinstance(auth, Response):
            return auth
        update = _account_update(parse_json_object(raw))
        if isinstance(update, str):
            return problem(400, update)
        partition, display, to_add, to_remove = update
        rid = request.path_params["rid"]
        rec = self._account(request, rid, partition)
        if rec is None:
            return problem(404, f"Robot account '{rid}' was not found in partition {partition}.")
        d = rec.data
        removing = set(to_remove)
        groups = [g for g in d["groupIds"] if g not in removing]
        for g in to_add:
            if g not in groups:
                groups.append(g)
        new_display = display if display is not None else d["displayName"]
        if new_display != d["displayName"] or set(groups) != set(d["groupIds"]):
            d["displayName"] = new_display
            d["groupIds"] = groups
            self._touch(d)
            rec.note("api", self._secret(d), d["lastModificationTime"])
            self.count_update()
        return json_response(self._view(d))

    @staticmethod
    def _touch(d: JSON) -> None:
        touch(d, "_modified", "lastModificationTime", 6)

    @staticmethod
    def _secret(d: JSON) -> JSON:
        return {"displayName": d["displayName"], "groupIds": sorted(d["groupIds"])}

    # --- admin ------------------------------------------------------------------------------

    def admin_put(self, kind: str, rid: str, body: JSON) -> JSON:
        groups = body.get("groupIds", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise AdminError(400, "groupIds must be a list of strings")
        name = str_field(body, "name", rid)
        created = tick(None, 6)
        d: JSON = {
            "id": rid,
            "name": name,
            "displayName": str_field(body, "displayName", name),
            "partitionGlobalId": str_field(
                body, "partitionGlobalId", defaults.UIPATH_PARTITION_GLOBAL_ID
            ),
            "organization": str_field(body, "organization", defaults.UIPATH_ORGANIZATION),
            "groupIds": list(dict.fromkeys(groups)),
            "creationTime": iso_units(created, 6),
            "lastModificationTime": iso_units(created, 6),
            "lastLoginTime": None,
            "_modified": created,
        }
        rec = Record(d)
        rec.initial = {"secret": self._secret(d), "version": d["lastModificationTime"]}
        self.accounts[rid] = rec
        return self._admin_view(rec)

    @staticmethod
    def _admin_view(rec: Record) -> JSON:
        view = rec.admin_view({"version": rec.data["lastModificationTime"]})
        view.pop("_modified", None)
        return view

    def admin_get(self, kind: str, rid: str) -> JSON | None:
        rec = self.accounts.get(rid)
        return None if rec is None else self._admin_view(rec)

    def admin_oob(self, kind: str, rid: str, body: JSON | None) -> JSON | None:
        rec = self.accounts.get(rid)
        if rec is None:
            return None
        d = rec.data
        if body is None:
            d["displayName"] = f"{d['name']}-oob-{random_secret(self.sb.rng, 6)}"
            d["groupIds"] = [*d["groupIds"], f"oob-group-{random_secret(self.sb.rng, 8)}"]
        else:
            if "displayName" in body:
                d["displayName"] = str_field(body, "displayName", d["displayName"])
            if "groupIds" in body:
                groups: Any = body["groupIds"]
                if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
                    raise AdminError(400, "groupIds must be a list of strings")
                d["groupIds"] = list(dict.fromkeys(groups))
        self._touch(d)
        rec.note("oob", self._secret(d), d["lastModificationTime"])
        return self._admin_view(rec)

    def put_client(self, client_id: str, body: JSON) -> JSON:
        secret = body.get("client_secret", body.get("secret"))
        if not isinstance(secret, str) or not secret:
            raise AdminError(400, "client_secret is required")
        scopes: Any = body.get("scopes", defaults.UIPATH_SCOPES)
        if isinstance(scopes, str):
            scopes = scopes.split()
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise AdminError(400, "scopes must be a list or a space-separated string")
        org = str_field(body, "organization", defaults.UIPATH_ORGANIZATION)
        self.clients[client_id] = {
            "client_secret": secret,
            "scopes": frozenset(scopes),
            "organization": org,
            "standalone": body.get("standalone") is True,
        }
        return {"client_id": client_id, "scopes": sorted(scopes), "organization": org}


def _account_update(body: JSON | None) -> tuple[str, str | None, list[str], list[str]] | str:
    """``(partition, displayName, groups to add, groups to remove)`` of a PUT, or the 400 detail."""
    if body is None:
        return "The request body must be a JSON object."
    partition = body.get("partitionGlobalId")
    if not isinstance(partition, str) or not partition:
        return "partitionGlobalId is required."
    display = body.get("displayName")
    if display is not None and (not isinstance(display, str) or not display.strip()):
        return "displayName must be a non-empty string."
    if isinstance(display, str) and len(display) > 256:
        return "displayName must be at most 256 characters."
    deltas: list[list[str]] = []
    for key in ("groupIDsToAdd", "groupIDsToRemove"):
        value = body.get(key)
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
            return f"{key} must be a list of group ids."
        deltas.append(value)
    to_add, to_remove = deltas
    both = sorted(set(to_add) & set(to_remove))
    if both:
        return f"Groups both added and removed: {', '.join(both)}."
    return partition, display, to_add, to_remove
