"""Amazon AppFlow connector profiles (rest-json, SigV4), the two operations rotator drives.

Routes: ``POST /update-connector-profile`` and ``POST /describe-connector-profiles`` at the
sandbox root (a botocore client uses ``endpoint_url=<sandbox url>``).

Every request must carry ``Authorization: AWS4-HMAC-SHA256 Credential=<AKID>/<date>/<region>/
appflow/aws4_request, SignedHeaders=..., Signature=...``; the signature is recomputed with
botocore's ``SigV4Auth`` over the request as received (the signed headers only) and compared.
Unknown key -> 403 UnrecognizedClientException; wrong signature, service scope or a date more
than 15 minutes off -> 403 InvalidSignatureException; no header -> 403
MissingAuthenticationTokenException. Errors: status + ``x-amzn-ErrorType`` + ``{"message"}``;
every answer carries ``x-amzn-RequestId``. That wire (errors, SigV4, model-driven validation)
lives in ``rotator.sandbox.aws``; this module holds AppFlow's profiles and operations.

Input is validated against botocore's service model (required members, types, lengths, enums,
patterns as full matches) -> 400 ValidationException in AWS's "N validation errors detected"
wording, never echoing credential values. Sandbox choices where AWS is silent: a clientToken
reused within 8 h with different parameters -> 409 ConflictException; properties/credentials
keyed by another connector type than the profile's -> ValidationException; a credential value
starting with ``invalid`` -> 401 ConnectorAuthenticationException (AppFlow tests credentials
against the connector); profiles are per account and region. Describe never returns
credentials, pages by ``maxResults`` (1-100, default 50) / ``nextToken`` in name order and
answers unknown names with an empty list. Timestamps are epoch seconds (floats).

AppFlow's own OAuth token refresh: AppFlow refreshes an OAuth profile's access token itself
(when a flow runs on an expired token), and that moves ``lastUpdatedAt`` although nobody
updated the profile. AWS does not document the timing; the sandbox simulates it on demand:
``POST /_sandbox/appflow/resources/{name}/refresh`` refreshes once (every ``accessToken`` in
the credentials replaced, ``refreshToken`` kept, ``lastUpdatedAt`` moved, nothing else), and a
profile seeded with ``"refreshOnDescribe": true`` refreshes right after every Describe that
shows it (a refresh between each read and the next write). Refreshes are counted in the admin
view's ``refreshes``, not in ``history`` (no one changed the profile).

Same clientToken, other parameters: the sandbox answers 409 ConflictException; the real service
may answer 400 ValidationException about the token instead (AWS does not document which). A
profile seeded with ``"tokenReuseError": "ValidationException"`` gets that variation.

Admin body (``PUT /_sandbox/appflow/resources/{connectorProfileName}``), all optional::

    {"connectorType": "Salesforce", "connectionMode": "Public", "connectorLabel": null,
     "connectorProfileProperties": {"Salesforce": {"instanceUrl": ..., ...}},
     "connectorProfileCredentials": {"Salesforce": {"accessToken": ..., "refreshToken": ...}},
     "region": "us-east-1", "accountId": "123456789012",
     "refreshOnDescribe": false, "tokenReuseError": "ConflictException"}

Secret part (history): ``connectorProfileCredentials``. Version: ``lastUpdatedAt``.
Clients (``PUT /_sandbox/appflow/clients/{access_key_id}``):
``{"secret_access_key", "account_id"?}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rotator.sandbox import defaults
from rotator.sandbox.aws import (
    Caller,
    authenticate,
    aws_error,
    service_model,
    validation_errors,
    validation_response,
)
from rotator.sandbox.common import AdminError, ProviderSim, json_response, str_field
from rotator.sandbox.state import (
    JSON,
    Record,
    format_retry_after,
    now,
    random_secret,
    request_id,
    snapshot,
    tick,
)

IDEMPOTENCY_WINDOW = 8 * 3600.0
TOKEN_REUSE_ERRORS = ("ConflictException", "ValidationException")
DEFAULT_PAGE = 50
SERVICE = "appflow"


def _ok(body: JSON) -> Response:
    return json_response(body, 200, {"x-amzn-RequestId": request_id()})


class AppFlowSim(ProviderSim):
    name: ClassVar[str] = "appflow"

    def __init__(self, sandbox: Any) -> None:
        service_model(SERVICE)  # load the model at startup, not on the first request
        super().__init__(sandbox)

    def reset(self) -> None:
        self.clients: dict[str, JSON] = {
            defaults.AWS_ACCESS_KEY_ID: {
                "secret_access_key": defaults.AWS_SECRET_ACCESS_KEY,
                "account_id": defaults.AWS_ACCOUNT_ID,
            }
        }
        self.profiles: dict[str, Record] = {}
        # (account, clientToken) -> (fingerprint of the parameters, result, first use)
        self.idempotency: dict[tuple[str, str], tuple[str, JSON, float]] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/update-connector-profile", self.update, methods=["POST"]),
            Route("/describe-connector-profiles", self.describe, methods=["POST"]),
            # Admin (the app's generic admin routes only match GET/PUT on this path).
            Route(
                "/_sandbox/appflow/resources/{rid:path}/refresh",
                self.admin_refresh,
                methods=["POST"],
            ),
        ]

    def fault_response(self, status: int, retry_after: float | None) -> Response:
        if status == 429:
            resp = aws_error(429, "ThrottlingException", "Rate exceeded")
        elif status == 500:
            resp = aws_error(500, "InternalServerException", "An internal error occurred.")
        elif status == 504:
            resp = aws_error(504, "GatewayTimeoutException", "Endpoint request timed out", False)
        else:
            resp = aws_error(status, "ServiceUnavailableException", "Service unavailable", False)
        if retry_after is not None:
            resp.headers["Retry-After"] = format_retry_after(retry_after)
        return resp

    # --- signature ----------------------------------------------------------------------------

    def _authenticate(self, request: Request, body: bytes) -> Caller | Response:
        return authenticate(request, body, self.clients, SERVICE)

    def _profile(self, caller: Caller, name: str) -> Record | None:
        rec = self.profiles.get(name)
        if rec is None:
            return None
        d = rec.data
        if d["accountId"] != caller.account or d["region"] != caller.region:
            return None
        return rec

    # --- operations ---------------------------------------------------------------------------

    async def _prepare(self, request: Request, operation: str) -> tuple[Caller, JSON] | Response:
        """The signed caller and the body of an ``operation`` request checked against the
        service model, or the error to answer (signature first, then JSON, then validation)."""
        raw = await request.body()
        caller = self._authenticate(request, raw)
        if isinstance(caller, Response):
            return caller
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return aws_error(400, "SerializationException", "Malformed JSON request body.")
        if not isinstance(body, dict):
            return aws_error(400, "SerializationException", "Request body must be an object.")
        errors = validation_errors(SERVICE, operation, body)
        if errors:
            return validation_response(errors)
        return caller, body

    async def update(self, request: Request) -> Response:
        prepared = await self._prepare(request, "UpdateConnectorProfile")
        if isinstance(prepared, Response):
            return prepared
        caller, body = prepared
        name: str = body["connectorProfileName"]
        token = body.get("clientToken")
        fingerprint = hashlib.sha256(
            json.dumps(
                {k: v for k, v in body.items() if k != "clientToken"},
                sort_keys=True,
                separators=(",", ":"),
            ).encode()
        ).hexdigest()
        t = now()
        key = (caller.account, token) if isinstance(token, str) else None
        if key is not None:
            previous = self.idempotency.get(key)
            if previous is not None and t - previous[2] < IDEMPOTENCY_WINDOW:
                if previous[0] == fingerprint:
                    return _ok(previous[1])  # a replay: the first result, nothing applied
                return self._token_reused(caller, name)
        rec = self._profile(caller, name)
        if rec is None:
            return aws_error(
                404,
                "ResourceNotFoundException",
                f"Connector profile with name {name} does not exist.",
            )
        d = rec.data
        config: JSON = body["connectorProfileConfig"]
        mismatch = self._type_mismatch(d["connectorType"], config)
        if mismatch:
            return validation_response([mismatch])
        credentials = config.get("connectorProfileCredentials")
        if credentials is not None and _has_invalid_credential(credentials):
            return aws_error(
                401,
                "ConnectorAuthenticationException",
                "The connector rejected the provided credentials.",
            )
        d["connectionMode"] = body["connectionMode"]
        d["connectorProfileProperties"] = snapshot(config["connectorProfileProperties"])
        if credentials is not None:
            d["connectorProfileCredentials"] = snapshot(credentials)
        d["lastUpdatedAt"] = _stamp(d["lastUpdatedAt"])
        rec.note("api", d["connectorProfileCredentials"], d["lastUpdatedAt"])
        self.count_update()
        result = {"connectorProfileArn": d["connectorProfileArn"]}
        if key is not None:
            if len(self.idempotency) > 50_000:
                self._prune_idempotency(t)
            self.idempotency[key] = (fingerprint, result, t)
        return _ok(result)

    def _token_reused(self, caller: Caller, name: str) -> Response:
        rec = self._profile(caller, name)
        if rec is not None and rec.data.get("tokenReuseError") == "ValidationException":
            return validation_response(
                [
                    "Value at 'clientToken' failed to satisfy constraint: Member must not be "
                    "reused with different request parameters"
                ]
            )
        return aws_error(
            409,
            "ConflictException",
            "The clientToken was already used with different request parameters.",
        )

    def _prune_idempotency(self, t: float) -> None:
        self.idempotency = {
            k: v for k, v in self.idempotency.items() if t - v[2] < IDEMPOTENCY_WINDOW
        }

    @staticmethod
    def _type_mismatch(connector_type: str, config: JSON) -> str | None:
        for field in ("connectorProfileProperties", "connectorProfileCredentials"):
            section = config.get(field)
            if not isinstance(section, dict):
                continue
            for key, value in section.items():
                if value is not None and key.lower() != connector_type.lower():
                    return (
                        f"Value at 'connectorProfileConfig.{field}.{key}' failed to satisfy "
                        f"constraint: Member must match the connector profile's type "
                        f"{connector_type}"
                    )
        return None

    async def describe(self, request: Request) -> Response:
        prepared = await self._prepare(request, "DescribeConnectorProfiles")
        if isinstance(prepared, Response):
            return prepared
        caller, body = prepared
        names = body.get("connectorProfileNames") or []
        ctype = body.get("connectorType")
        label = body.get("connectorLabel")
        limit = body.get("maxResults") or DEFAULT_PAGE
        filt = json.dumps([sorted(names), ctype, label], separators=(",", ":"))
        filter_hash = hashlib.sha256(filt.encode()).hexdigest()[:16]
        offset = 0
        if body.get("nextToken"):
            decoded = _decode_token(body["nextToken"])
            if decoded is None or decoded[1] != filter_hash:
                return aws_error(400, "ValidationException", "Invalid nextToken.")
            offset = decoded[0]
        if names:
            candidates = sorted(set(names))
        else:
            candidates = sorted(self.profiles)
        matched: list[JSON] = []
        for name in candidates:
            rec = self._profile(caller, name)
            if rec is None:
                continue
            d = rec.data
            if ctype is not None and d["connectorType"].lower() != ctype.lower():
                continue
            if label is not None and d.get("connectorLabel") != label:
                continue
            matched.append(d)
        page = matched[offset : offset + limit]
        out: JSON = {"connectorProfileDetails": [self._detail(d) for d in page]}
        if offset + limit < len(matched):
            out["nextToken"] = _encode_token(offset + limit, filter_hash)
        for d in page:
            if d.get("refreshOnDescribe"):
                _refresh(d, self.sb.rng)  # after the answer was built: the next read sees it
        return _ok(out)

    @staticmethod
    def _detail(d: JSON) -> JSON:
        detail: JSON = {
            "connectorProfileArn": d["connectorProfileArn"],
            "connectorProfileName": d["connectorProfileName"],
            "connectorType": d["connectorType"],
            "connectionMode": d["connectionMode"],
            "credentialsArn": d["credentialsArn"],
            "connectorProfileProperties": snapshot(d["connectorProfileProperties"]),
            "createdAt": d["createdAt"],
            "lastUpdatedAt": d["lastUpdatedAt"],
        }
        if d.get("connectorLabel"):
            detail["connectorLabel"] = d["connectorLabel"]
        if d["connectionMode"] == "Private":
            detail["privateConnectionProvisioningState"] = {"status": "CREATED"}
        return detail

    # --- admin ------------------------------------------------------------------------------

    def admin_put(self, kind: str, rid: str, body: JSON) -> JSON:
        ctype = str_field(body, "connectorType", "Salesforce")
        mode = str_field(body, "connectionMode", "Public")
        if mode not in ("Public", "Private"):
            raise AdminError(400, "connectionMode must be Public or Private")
        region = str_field(body, "region", defaults.AWS_REGION)
        account = str_field(body, "accountId", defaults.AWS_ACCOUNT_ID)
        props = body.get("connectorProfileProperties")
        if props is None:
            props = (
                {"Salesforce": {"instanceUrl": "https://sandbox.my.salesforce.com"}}
                if ctype == "Salesforce"
                else {ctype: {}}
            )
        creds = body.get("connectorProfileCredentials")
        if creds is None:
            creds = (
                {
                    "Salesforce": {
                        "accessToken": random_secret(self.sb.rng),
                        "refreshToken": random_secret(self.sb.rng),
                    }
                }
                if ctype == "Salesforce"
                else {ctype: {}}
            )
        if not isinstance(props, dict) or not isinstance(creds, dict):
            raise AdminError(400, "connectorProfileProperties/Credentials must be objects")
        refresh_on_describe = body.get("refreshOnDescribe", False)
        if not isinstance(refresh_on_describe, bool):
            raise AdminError(400, "refreshOnDescribe must be a boolean")
        reuse_error = str_field(body, "tokenReuseError", "ConflictException")
        if reuse_error not in TOKEN_REUSE_ERRORS:
            raise AdminError(400, f"tokenReuseError must be one of {', '.join(TOKEN_REUSE_ERRORS)}")
        created = _stamp(None)
        suffix = random_secret(self.sb.rng, 6)
        d: JSON = {
            "connectorProfileName": rid,
            "connectorProfileArn": f"arn:aws:appflow:{region}:{account}:connectorprofile/{rid}",
            "connectorType": ctype,
            "connectorLabel": body.get("connectorLabel"),
            "connectionMode": mode,
            "credentialsArn": (
                f"arn:aws:secretsmanager:{region}:{account}:secret:"
                f"appflow!{account}-{rid}-{int(created)}-{suffix}"
            ),
            "connectorProfileProperties": snapshot(props),
            "connectorProfileCredentials": snapshot(creds),
            "createdAt": created,
            "lastUpdatedAt": created,
            "region": region,
            "accountId": account,
            "refreshOnDescribe": refresh_on_describe,
            "tokenReuseError": reuse_error,
            "refreshes": 0,
        }
        rec = Record(d)
        rec.initial = {"secret": snapshot(creds), "version": created}
        self.profiles[rid] = rec
        return self._admin_view(rec)

    @staticmethod
    def _admin_view(rec: Record) -> JSON:
        return rec.admin_view({"version": rec.data["lastUpdatedAt"]})

    def admin_get(self, kind: str, rid: str) -> JSON | None:
        rec = self.profiles.get(rid)
        return None if rec is None else self._admin_view(rec)

    def admin_oob(self, kind: str, rid: str, body: JSON | None) -> JSON | None:
        rec = self.profiles.get(rid)
        if rec is None:
            return None
        d = rec.data
        if body is None:
            d["connectorProfileCredentials"] = _randomized(
                d["connectorProfileCredentials"], self.sb.rng
            )
        else:
            for key in ("connectorProfileCredentials", "connectorProfileProperties"):
                if key in body:
                    if not isinstance(body[key], dict):
                        raise AdminError(400, f"{key} must be an object")
                    d[key] = snapshot(body[key])
            if "connectionMode" in body:
                d["connectionMode"] = str_field(body, "connectionMode", d["connectionMode"])
        d["lastUpdatedAt"] = _stamp(d["lastUpdatedAt"])
        rec.note("oob", d["connectorProfileCredentials"], d["lastUpdatedAt"])
        return self._admin_view(rec)

    async def admin_refresh(self, request: Request) -> Response:
        """AppFlow refreshing the profile's OAuth token itself (see the module docstring)."""
        rec = self.profiles.get(request.path_params["rid"])
        if rec is None:
            return json_response(
                {"error": "no appflow resources " + request.path_params["rid"]}, 404
            )
        _refresh(rec.data, self.sb.rng)
        return json_response(self._admin_view(rec))

    def put_client(self, client_id: str, body: JSON) -> JSON:
        secret = body.get("secret_access_key", body.get("secret"))
        if not isinstance(secret, str) or not secret:
            raise AdminError(400, "secret_access_key is required")
        account = str_field(body, "account_id", defaults.AWS_ACCOUNT_ID)
        self.clients[client_id] = {"secret_access_key": secret, "account_id": account}
        return {"access_key_id": client_id, "account_id": account}


def _stamp(previous: float | None) -> float:
    """Epoch seconds with millisecond precision (what the service shows), strictly increasing."""
    return tick(None if previous is None else round(previous * 1000), 3) / 1000


def _refresh(d: JSON, rng: Any) -> None:
    """A new access token from the refresh token: lastUpdatedAt moves, no setting changes."""
    pending = [d["connectorProfileCredentials"]]
    while pending:  # CustomConnector nests its oauth2 credentials one level deeper
        section = pending.pop()
        if isinstance(section, dict):
            if isinstance(section.get("accessToken"), str):
                section["accessToken"] = "refreshed-" + random_secret(rng)
            pending.extend(section.values())
    d["lastUpdatedAt"] = _stamp(d["lastUpdatedAt"])
    d["refreshes"] = int(d.get("refreshes") or 0) + 1


def _has_invalid_credential(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith("invalid")
    if isinstance(value, dict):
        return any(_has_invalid_credential(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_invalid_credential(v) for v in value)
    return False


def _randomized(value: Any, rng: Any) -> Any:
    """Every string leaf replaced by a fresh random value (an out-of-band credential change)."""
    if isinstance(value, str):
        return "oob-" + random_secret(rng)
    if isinstance(value, dict):
        if not value:
            return {"oob": "oob-" + random_secret(rng)}
        return {k: _randomized(v, rng) for k, v in value.items()}
    if isinstance(value, list):
        return [_randomized(v, rng) for v in value]
    return value


def _encode_token(offset: int, filter_hash: str) -> str:
    raw = json.dumps({"o": offset, "f": filter_hash}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_token(token: str) -> tuple[int, str] | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        offset, fh = data["o"], data["f"]
    except (ValueError, KeyError, TypeError, UnicodeEncodeError):
        return None
    if not isinstance(offset, int) or offset < 0 or not isinstance(fh, str):
        return None
    return offset, fh
