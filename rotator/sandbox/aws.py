"""The AWS rest-json wire, as the AppFlow sandbox answers it: errors, SigV4, input validation.

- ``aws_error``: status + ``x-amzn-ErrorType`` + ``{"message"}``, with ``x-amzn-RequestId``.
- ``authenticate``: SigV4 verified the way the service does it. The signature is recomputed with
  botocore's ``SigV4Auth`` over the request as received (the signed headers only) and compared.
  Each check answers with AWS's error and wording, in the service's order: missing header, a
  malformed ``Credential`` scope, another service, an unknown key, a bad or skewed
  ``X-Amz-Date`` (more than 15 minutes off), an unsigned ``Host``, a body that does not match
  ``x-amz-content-sha256``, a signed header that is absent, and finally the signature itself.
- ``validation_errors``: the input checked against botocore's service model (required members,
  types, lengths, enums, patterns as full matches), in AWS's "Value ... at '...' failed to
  satisfy constraint" wording, never echoing a sensitive value (or anything under
  ``connectorProfileCredentials``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from calendar import timegm
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import get_session
from starlette.requests import Request
from starlette.responses import Response

from rotator.sandbox.common import json_response
from rotator.sandbox.state import JSON, now, request_id

MAX_SKEW = 15 * 60.0
_CORAL = ":http://internal.amazon.com/coral/com.amazonaws.sandfly/"


def aws_error(status: int, name: str, message: str, coral: bool = True) -> Response:
    headers = {
        "x-amzn-ErrorType": name + (_CORAL if coral else ""),
        "x-amzn-RequestId": request_id(),
    }
    return json_response({"message": message}, status, headers)


# --------------------------------------------------------------------------------------------
# SigV4


@dataclass(frozen=True)
class Caller:
    access_key: str
    account: str
    region: str


class _Rejected(Exception):
    """A request the signature checks turn away, carrying AWS's answer."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(name)
        self.response = aws_error(status, name, message, False)


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


def authenticate(
    request: Request, body: bytes, clients: Mapping[str, JSON], service: str
) -> Caller | Response:
    """The caller of a SigV4-signed request to ``service``, or the error AWS would answer."""
    try:
        parts, (access_key, date, region) = _credential(request, service)
        client = clients.get(access_key)
        if client is None:
            raise _Rejected(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        amz_date = _signing_date(request, date)
        headers = _signed_headers(request, parts, body)
        signer = SigV4Auth(Credentials(access_key, client["secret_access_key"]), service, region)
        _check_signature(request, body, headers, amz_date, signer, parts["Signature"])
    except _Rejected as rejected:
        return rejected.response
    return Caller(access_key, str(client["account_id"]), region)


def _credential(request: Request, service: str) -> tuple[dict[str, str], tuple[str, str, str]]:
    """The Authorization parts and the (access key, date, region) of a scope for ``service``."""
    header = request.headers.get("authorization")
    if not header:
        raise _Rejected(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    parts = _parse_authorization(header)
    if parts is None:
        raise _Rejected(
            400,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
            "parameters.",
        )
    scope = parts["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise _Rejected(400, "IncompleteSignatureException", "Credential is malformed.")
    access_key, date, region, scoped_service, _ = scope
    if scoped_service != service:
        raise _Rejected(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'.",
        )
    return parts, (access_key, date, region)


def _signing_date(request: Request, scope_date: str) -> str:
    amz_date = request.headers.get("x-amz-date", "")
    try:
        signed_at = timegm(datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").timetuple())
    except ValueError:
        raise _Rejected(
            400,
            "IncompleteSignatureException",
            "Authorization header requires existence of a valid 'X-Amz-Date' header.",
        ) from None
    if abs(now() - signed_at) > MAX_SKEW:
        raise _Rejected(403, "InvalidSignatureException", f"Signature expired: {amz_date}.")
    if scope_date != amz_date[:8]:
        raise _Rejected(
            403,
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
            "date from HTTP.",
        )
    return amz_date


def _signed_headers(request: Request, parts: Mapping[str, str], body: bytes) -> dict[str, str]:
    signed = [h for h in parts["SignedHeaders"].split(";") if h]
    if "host" not in signed:
        raise _Rejected(403, "InvalidSignatureException", "'Host' must be a signed header.")
    content_sha = request.headers.get("x-amz-content-sha256")
    if content_sha and content_sha != "UNSIGNED-PAYLOAD":
        if content_sha != hashlib.sha256(body).hexdigest():
            raise _Rejected(
                400,
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
    headers = {}
    for name in signed:
        values = request.headers.getlist(name)
        if not values:
            raise _Rejected(
                403,
                "InvalidSignatureException",
                f"Signed header '{name}' is missing from the request.",
            )
        headers[name] = ",".join(values)
    return headers


def _check_signature(
    request: Request,
    body: bytes,
    headers: dict[str, str],
    amz_date: str,
    signer: SigV4Auth,
    signature: str,
) -> None:
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    url = f"http://{headers['host']}{raw_path.decode('latin-1')}"
    query = request.scope.get("query_string", b"").decode("latin-1")
    if query:
        url += "?" + query
    aws_request = AWSRequest(method=request.method, url=url, headers=headers, data=body)
    aws_request.context["timestamp"] = amz_date
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected, signature):
        raise _Rejected(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you "
            "provided. Check your AWS Secret Access Key and signing method. Consult the "
            "service documentation for details.",
        )


# --------------------------------------------------------------------------------------------
# Model-driven validation

Fail = Callable[[str], None]


@functools.cache
def service_model(service: str) -> Any:
    return get_session().get_service_model(service)


@functools.cache
def _pattern(p: str) -> re.Pattern[str] | None:
    try:
        return re.compile(p, re.DOTALL)
    except re.error:
        return None


def validation_errors(service: str, operation: str, body: JSON) -> list[str]:
    errors: list[str] = []
    shape = service_model(service).operation_model(operation).input_shape
    _validate(body, shape, "", errors, False)
    return errors


def validation_response(errors: list[str]) -> Response:
    n = len(errors)
    noun = "validation error" if n == 1 else "validation errors"
    return aws_error(400, "ValidationException", f"{n} {noun} detected: " + "; ".join(errors))


def _validate(value: Any, shape: Any, path: str, errors: list[str], secret: bool) -> None:
    meta = shape.metadata
    secret = secret or bool(meta.get("sensitive"))
    shown = "" if secret else f" '{value}'" if not isinstance(value, dict | list) else ""

    def fail(constraint: str) -> None:
        errors.append(f"Value{shown} at '{path}' failed to satisfy constraint: {constraint}")

    check = _CHECKS.get(shape.type_name)
    if check is not None:
        check(value, shape, path, errors, secret, fail)


def _structure(
    value: Any, shape: Any, path: str, errors: list[str], secret: bool, fail: Fail
) -> None:
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


def _string(value: Any, shape: Any, path: str, errors: list[str], secret: bool, fail: Fail) -> None:
    if not isinstance(value, str):
        fail("Member must be a string")
        return
    meta = shape.metadata
    _check_len(len(value), meta, fail)
    enum = getattr(shape, "enum", None) or []
    if enum and value not in enum:
        fail(f"Member must satisfy enum value set: [{', '.join(enum)}]")
    pattern = meta.get("pattern")
    compiled = _pattern(pattern) if pattern else None
    if compiled is not None and compiled.fullmatch(value) is None:
        fail(f"Member must satisfy regular expression pattern: {pattern}")


def _integer(
    value: Any, shape: Any, path: str, errors: list[str], secret: bool, fail: Fail
) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        fail("Member must be an integer")
        return
    meta = shape.metadata
    if "min" in meta and value < meta["min"]:
        fail(f"Member must have value greater than or equal to {meta['min']}")
    if "max" in meta and value > meta["max"]:
        fail(f"Member must have value less than or equal to {meta['max']}")


def _boolean(
    value: Any, shape: Any, path: str, errors: list[str], secret: bool, fail: Fail
) -> None:
    if not isinstance(value, bool):
        fail("Member must be a boolean")


def _number(value: Any, shape: Any, path: str, errors: list[str], secret: bool, fail: Fail) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        fail("Member must be a number")


def _list(value: Any, shape: Any, path: str, errors: list[str], secret: bool, fail: Fail) -> None:
    if not isinstance(value, list):
        fail("Member must be a list")
        return
    _check_len(len(value), shape.metadata, fail)
    for i, item in enumerate(value):
        _validate(item, shape.member, f"{path}.{i + 1}.member", errors, secret)


def _map(value: Any, shape: Any, path: str, errors: list[str], secret: bool, fail: Fail) -> None:
    if not isinstance(value, dict):
        fail("Member must be a map")
        return
    _check_len(len(value), shape.metadata, fail)
    for key, item in value.items():
        _validate(key, shape.key, f"{path}.{key}.key", errors, secret)
        _validate(item, shape.value, f"{path}.{key}.value", errors, secret)


_Check = Callable[[Any, Any, str, list[str], bool, Fail], None]
_CHECKS: dict[str, _Check] = {
    "structure": _structure,
    "string": _string,
    "integer": _integer,
    "long": _integer,
    "boolean": _boolean,
    "double": _number,
    "float": _number,
    "timestamp": _number,
    "list": _list,
    "map": _map,
}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_len(n: int, meta: JSON, fail: Fail) -> None:
    if "min" in meta and n < meta["min"]:
        fail(f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and n > meta["max"]:
        fail(f"Member must have length less than or equal to {meta['max']}")
