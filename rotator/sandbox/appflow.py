"""Amazon AppFlow connector profiles (rest-json, SigV4), the two operations rotator drives.

Routes: ``POST /update-connector-profile`` and ``POST /describe-connector-profiles`` at the
sandbox root (a botocore client uses ``endpoint_url=<sandbox url>``).

Every request must carry ``Authorization: AWS4-HMAC-SHA256 Credential=<AKID>/<date>/<region>/
appflow/aws4_request, SignedHeaders=..., Signature=...``; the signature is recomputed with
botocore's ``SigV4Auth`` over the request as received (the signed headers only) and compared.
Unknown key -> 403 UnrecognizedClientException; wrong signature, service scope or a date more
than 15 minutes off -> 403 InvalidSignatureException; no header -> 403
MissingAuthenticationTokenException. Errors: status + ``x-amzn-ErrorType`` + ``{"message"}``;
every answer carries ``x-amzn-RequestId``.

Input is validated against botocore's service model (required members, types, lengths, enums,
patterns as full matches) -> 400 ValidationException in AWS's "N validation errors detected"
wording, never echoing credential values. Sandbox choices where AWS is silent: a clientToken
reused within 8 h with different parameters -> 409 ConflictException; properties/credentials
keyed by another connector type than the profile's -> ValidationException; a credential value
starting with ``invalid`` -> 401 ConnectorAuthenticationException (AppFlow tests credentials
against the connector); profiles are per account and region. Describe never returns
credentials, pages by ``maxResults`` (1-100, default 50) / ``nextToken`` in name order and
answers unknown names with an empty list. Timestamps are epoch seconds (floats).

Admin body (``PUT /_sandbox/appflow/resources/{connectorProfileName}``), all optional::

    {"connectorType": "Salesforce", "connectionMode": "Public", "connectorLabel": null,
     "connectorProfileProperties": {"Salesforce": {"instanceUrl": ..., ...}},
     "connectorProfileCredentials": {"Salesforce": {"accessToken": ..., "refreshToken": ...}},
     "region": "us-east-1", "accountId": "123456789012"}

Secret part (history): ``connectorProfileCredentials``. Version: ``lastUpdatedAt``.
Clients (``PUT /_sandbox/appflow/clients/{access_key_id}``):
``{"secret_access_key", "account_id"?}``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
from calendar import timegm
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import get_session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rotator.sandbox import defaults
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
MAX_SKEW = 15 * 60.0
DEFAULT_PAGE = 50
_CORAL = ":http://internal.amazon.com/coral/com.amazonaws.sandfly/"


@functools.cache
def service_model() -> Any:
    return get_session().get_service_model("appflow")


@functools.cache
def _pattern(p: str) -> re.Pattern[str] | None:
    try:
        return re.compile(p, re.DOTALL)
    except re.error:
        return None


def aws_error(status: int, name: str, message: str, coral: bool = True) -> Response:
    headers = {
        "x-amzn-ErrorType": name + (_CORAL if coral else ""),
        "x-amzn-RequestId": request_id(),
    }
    return json_response({"message": message}, status, headers)


def _ok(body: JSON) -> Response:
    return json_response(body, 200, {"x-amzn-RequestId": request_id()})


# --------------------------------------------------------------------------------------------
# Model-driven validation


def _validate(value: Any, shape: Any, path: str, errors: list[str], secret: bool) -> None:
    t = shape.type_name
    meta = shape.metadata
    secret = secret or bool(meta.get("sensitive"))
    shown = "" if secret else f" '{value}'" if not isinstance(value, dict | list) else ""

    def fail(constraint: str) -> None:
        errors.append(f"Value{shown} at '{path}' failed to satisfy constraint: {constraint}")

    if t == "structure":
        if not isinstance(value, dict):
            fail("Member must be a structure")
            return
        for req in shape.required_members:
            if value.get(req) is None:
                errors.append(
                    f"Value null at '{_join(path, req)}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        for key, sub in value.items():
            member = shape.members.get(key)
            if member is None or sub is None:
                continue  # unknown members are ignored, as the service does
            inner_secret = secret or key == "connectorProfileCredentials"
            _validate(sub, member, _join(path, key), errors, inner_secret)
    elif t == "string":
        if not isinstance(value, str):
            fail("Member must be a string")
            return
        _check_len(len(value), meta, fail)
        enum = getattr(shape, "enum", None) or []
        if enum and value not in enum:
            fail(f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = meta.get("pattern")
        compiled = _pattern(pattern) if pattern else None
        if compiled is not None and compiled.fullmatch(value) is None:
            fail(f"Member must satisfy regular expression pattern: {pattern}")
    elif t in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            fail("Member must be an integer")
            return
        if "min" in meta and value < meta["min"]:
            fail(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            fail(f"Member must have value less than or equal to {meta['max']}")
    elif t == "boolean":
        if not isinstance(value, bool):
            fail("Member must be a boolean")
    elif t in ("double", "float", "timestamp"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            fail("Member must be a number")
    elif t == "list":
        if not isinstance(value, list):
            fail("Member must be a list")
            return
        _check_len(len(value), meta, fail)
        for i, item in enumerate(value):
            _validate(item, shape.member, f"{path}.{i + 1}.member", errors, secret)
    elif t == "map":
        if not isinstance(value, dict):
            fail("Member must be a map")
            return
        _check_len(len(value), meta, fail)
        for key, item in value.items():
            _validate(key, shape.key, f"{path}.{key}.key", errors, secret)
            _validate(item, shape.value, f"{path}.{key}.value", errors, secret)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_len(n: int, meta: JSON, fail: Any) -> None:
    if "min" in meta and n < meta["min"]:
        fail(f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and n > meta["max"]:
        fail(f"Member must have length less than or equal to {meta['max']}")


def validation_errors(operation: str, body: JSON) -> list[str]:
    errors: list[str] = []
    shape = service_model().operation_model(operation).input_shape
    _validate(body, shape, "", errors, False)
    return errors


def validation_response(errors: list[str]) -> Response:
    n = len(errors)
    noun = "validation error" if n == 1 else "validation errors"
    return aws_error(400, "ValidationException", f"{n} {noun} detected: " + "; ".join(errors))


# --------------------------------------------------------------------------------------------
# SigV4


@dataclass(frozen=True)
class Caller:
    access_key: str
    account: str
    region: str


def _parse_authorization(header: str) -> dict[str, str] | None:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        return None
    parts: dict[str, str] = {}
    for piece in rest.split(","):
        key, eq, value = piece.strip().partition("=")
        if eq:
            parts[key.strip()] = value.strip()
    if not {"Credential", "SignedHeaders", "Signature"} <= set(parts):
        return None
    return parts


class AppFlowSim(ProviderSim):
    name: ClassVar[str] = "appflow"

    def __init__(self, sandbox: Any) -> None:
        service_model()  # load the model at startup, not on the first request
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
        header = request.headers.get("authorization")
        if not header:
            return aws_error(
                403, "MissingAuthenticationTokenException", "Missing Authentication Token", False
            )
        parts = _parse_authorization(header)
        if parts is None:
            return aws_error(
                400,
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
                "parameters.",
                False,
            )
        scope = parts["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            return aws_error(400, "IncompleteSignatureException", "Credential is malformed.", False)
        access_key, date, region, service, _ = scope
        if service != "appflow":
            return aws_error(
                403,
                "InvalidSignatureException",
                "Credential should be scoped to correct service: 'appflow'.",
                False,
            )
        client = self.clients.get(access_key)
        if client is None:
            return aws_error(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
                False,
            )
        amz_date = request.headers.get("x-amz-date", "")
        try:
            signed_at = timegm(datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").timetuple())
        except ValueError:
            return aws_error(
                400,
                "IncompleteSignatureException",
                "Authorization header requires existence of a valid 'X-Amz-Date' header.",
                False,
            )
        if abs(now() - signed_at) > MAX_SKEW:
            return aws_error(
                403, "InvalidSignatureException", f"Signature expired: {amz_date}.", False
            )
        if date != amz_date[:8]:
            return aws_error(
                403,
                "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                "date from HTTP.",
                False,
            )
        signed = [h for h in parts["SignedHeaders"].split(";") if h]
        if "host" not in signed:
            return aws_error(
                403, "InvalidSignatureException", "'Host' must be a signed header.", False
            )
        content_sha = request.headers.get("x-amz-content-sha256")
        if content_sha and content_sha != "UNSIGNED-PAYLOAD":
            if content_sha != hashlib.sha256(body).hexdigest():
                return aws_error(
                    400,
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    False,
                )
        headers = {}
        for name in signed:
            values = request.headers.getlist(name)
            if not values:
                return aws_error(
                    403,
                    "InvalidSignatureException",
                    f"Signed header '{name}' is missing from the request.",
                    False,
                )
            headers[name] = ",".join(values)
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        url = f"http://{headers['host']}{raw_path.decode('latin-1')}"
        query = request.scope.get("query_string", b"").decode("latin-1")
        if query:
            url += "?" + query
        aws_request = AWSRequest(method=request.method, url=url, headers=headers, data=body)
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(access_key, client["secret_access_key"]), "appflow", region)
        canonical = signer.canonical_request(aws_request)
        expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
        if not hmac.compare_digest(expected, parts["Signature"]):
            return aws_error(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method. Consult the "
                "service documentation for details.",
                False,
            )
        return Caller(access_key, str(client["account_id"]), region)

    def _profile(self, caller: Caller, name: str) -> Record | None:
        rec = self.profiles.get(name)
        if rec is None:
            return None
        d = rec.data
        if d["accountId"] != caller.account or d["region"] != caller.region:
            return None
        return rec

    # --- operations ---------------------------------------------------------------------------

    async def _prepare(self, request: Request) -> tuple[Caller, JSON] | Response:
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
        return caller, body

    async def update(self, request: Request) -> Response:
        prepared = await self._prepare(request)
        if isinstance(prepared, Response):
            return prepared
        caller, body = prepared
        errors = validation_errors("UpdateConnectorProfile", body)
        if errors:
            return validation_response(errors)
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
                return aws_error(
                    409,
                    "ConflictException",
                    "The clientToken was already used with different request parameters.",
                )
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
        prepared = await self._prepare(request)
        if isinstance(prepared, Response):
            return prepared
        caller, body = prepared
        errors = validation_errors("DescribeConnectorProfiles", body)
        if errors:
            return validation_response(errors)
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
