"""CipherTrust's records (Salesforce connections, CCKM organizations): rules, construction, errors.

The wire and the operations live in ``rotator.sandbox.ciphertrust``; this module holds what a
connection is: the fields it stores (``SECRET_FIELDS`` are the secret part of its history, the
``HIDDEN`` ones are never shown), the checks a create or PATCH body passes (``check_fields``),
the stored records (``new_connection``, ``new_org``), the sandbox's stand-in for reaching Salesforce
(``credentials_ok``) and the error body every answer uses (``ct_error``).
"""

from __future__ import annotations

from starlette.responses import Response

from rotator.sandbox.common import json_response, str_field
from rotator.sandbox.state import JSON, Record, iso_units, request_id, snapshot, tick

ACCOUNT = "kylo:kylo:admin:accounts:kylo"
CLOUDS = ("Salesforce Cloud", "Salesforce Sandbox Cloud")
SECRET_FIELDS = ("client_id", "client_secret", "username", "password")
HIDDEN = frozenset({"client_secret", "password", "certificate"})
STRING_FIELDS = (
    "cloud_name",
    "client_id",
    "client_secret",
    "username",
    "password",
    "domain_name",
    "description",
    "certificate",
)
_CODES = {
    400: (10, "NCERRBadRequest"),
    401: (5, "NCERRUnauthorizedAccess"),
    403: (5, "NCERRUnauthorizedAccess"),
    404: (3, "NCERRResourceNotFound"),
    409: (4, "NCERRResourceAlreadyExists"),
    422: (10, "NCERRInvalidParamValue"),
    429: (14, "NCERRTooManyRequests"),
    503: (1, "NCERRServiceUnavailable"),
}


def ct_error(status: int, message: str, code_desc: str | None = None) -> Response:
    code, desc = _CODES.get(status, (1, "NCERRInternalServerError"))
    body = {
        "code": code,
        "codeDesc": code_desc or desc,
        "message": message,
        "requestID": request_id(),
    }
    return json_response(body, status)


def credentials_ok(fields: JSON) -> tuple[bool, str]:
    """The sandbox's stand-in for reaching Salesforce with these connection fields."""
    if not fields.get("client_id"):
        return False, "client_id is missing"
    if not fields.get("client_secret") and not fields.get("certificate"):
        return False, "client_secret is missing"
    if fields.get("username") and not fields.get("password"):
        return False, "password is missing"
    for key in SECRET_FIELDS:
        value = fields.get(key)
        if isinstance(value, str) and value.startswith("invalid"):
            return False, f"Salesforce rejected the {key}"
    return True, "connection ok"


def test_answer(fields: JSON) -> JSON:
    """The connection test's answer. CipherTrust documents the request, not the answer:
    ``{"connection_ok", "message"}`` is the sandbox's guess, and a tested client_id starting
    with ``unconfirmed`` gets an answer of another shape (200 ``{"status", "message"}``, also
    invented) so that clients are tested against an answer they cannot read."""
    ok, message = credentials_ok(fields)
    if str(fields.get("client_id") or "").startswith("unconfirmed"):
        return {"status": "accepted", "message": "test request accepted"}
    return {"connection_ok": ok, "message": message}


def paged(items: list[JSON], skip_text: str, limit_text: str) -> JSON | Response:
    """A list page ``{skip, limit, total, resources}`` (limit 0 = all), or the 422 answer."""
    try:
        skip, limit = int(skip_text), int(limit_text)
    except ValueError:
        return ct_error(422, "skip and limit must be integers")
    if skip < 0 or limit < 0:
        return ct_error(422, "skip and limit must not be negative")
    page = items[skip : skip + limit] if limit else items[skip:]
    return {"skip": skip, "limit": limit, "total": len(items), "resources": page}


def check_fields(body: JSON, creating: bool) -> str | None:
    """What is wrong with a connection body (the first problem, in CipherTrust's wording)."""
    for key in STRING_FIELDS:
        if key in body and body[key] is not None and not isinstance(body[key], str):
            return f"{key} must be a string"
    if "products" in body or creating:
        products = body.get("products")
        if not isinstance(products, list) or not products or any(p != "cckm" for p in products):
            return 'products: products must be ["cckm"]'
    if body.get("cloud_name") is not None and body["cloud_name"] not in CLOUDS:
        return f"cloud_name must be one of {', '.join(CLOUDS)}"
    if "meta" in body and body["meta"] is not None and not isinstance(body["meta"], dict):
        return "meta must be an object"
    if creating:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            return "name: name is a required field"
        if not body.get("client_id"):
            return "client_id: client_id is a required field"
        if not body.get("client_secret") and not body.get("certificate"):
            return "client_secret: client_secret is a required field"
        if body.get("username") and not body.get("password"):
            return "password: password is required with username"
    return None


def new_connection(cid: str, body: JSON) -> Record:
    """A connection record as CipherTrust stores it (secrets included; views hide them)."""
    t = tick(None, 6)
    name = str(body.get("name") or cid)
    d: JSON = {
        "id": cid,
        "uri": f"kylo:kylo:connectionmgmt:connections:{name}-{cid}",
        "account": ACCOUNT,
        "createdAt": iso_units(t, 6),
        "updatedAt": iso_units(t, 6),
        "name": name,
        "products": list(body.get("products") or ["cckm"]),
        "service": "salesforce",
        "category": "cloud",
        "cloud_name": body.get("cloud_name") or "Salesforce Cloud",
        "client_id": body.get("client_id") or "",
        "client_secret": body.get("client_secret") or "",
        "username": body.get("username") or "",
        "password": body.get("password") or "",
        "domain_name": body.get("domain_name") or "",
        "description": body.get("description") or "",
        "meta": snapshot(body.get("meta") or {}),
        "last_connection_ok": None,
        "last_connection_error": "",
        "last_connection_at": None,
        "_created": t,
        "_updated": t,
    }
    if body.get("certificate"):
        d["certificate"] = body["certificate"]
    return Record(d)


def new_org(rid: str, body: JSON, connection: str, org_id: str) -> JSON:
    """A CCKM Salesforce organization as the admin API seeds it, pointing at ``connection``."""
    t = tick(None, 6)
    return {
        "id": rid,
        "uri": f"kylo:kylo:cckm:sfdc-organizations:{rid}",
        "account": str_field(body, "account", ACCOUNT),
        "application": str_field(body, "application", "ncryptify:gemalto:admin:apps:kylo"),
        "devAccount": str_field(body, "devAccount", ACCOUNT),
        "createdAt": iso_units(t, 6),
        "updatedAt": iso_units(t, 6),
        "name": str_field(body, "name", rid),
        "organization_id": str_field(body, "organization_id", org_id),
        "connection": connection,
        "cloud_name": "sfdc",
        "type": "salesforce",
        "_updated": t,
    }
