"""Commerce Layer imitation: JSON:API media types, 400/401/404/406/415/422/429, updated_at."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rotator.sandbox import defaults as D
from tests.sandbox.conftest import Api

PATH = "/api/api_credentials/cred1"
MEDIA = "application/vnd.api+json"


@pytest.fixture
def cred(client: httpx.Client) -> dict[str, Any]:
    r = client.put(
        "/_sandbox/commercelayer/resources/cred1",
        json={"name": "integration", "reference": "ref-0", "metadata": {"rotator": "v0"}},
    )
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


def _doc(attributes: dict[str, Any] | None = None, **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "api_credentials", "id": "cred1"}
    if attributes is not None:
        body["attributes"] = attributes
    body.update(data)
    return {"data": body}


def _codes(r: httpx.Response) -> list[str]:
    return [e["code"] for e in r.json()["errors"]]


def test_get_is_json_api(client: httpx.Client, api: Api, cred: dict[str, Any]) -> None:
    r = client.get(PATH, headers=api.cl_headers())
    assert r.status_code == 200 and r.headers["content-type"].startswith(MEDIA)
    data = r.json()["data"]
    assert data["type"] == "api_credentials" and data["id"] == "cred1"
    attrs = data["attributes"]
    assert attrs["name"] == "integration" and attrs["reference"] == "ref-0"
    assert attrs["expires_in"] == 7200 and attrs["metadata"] == {"rotator": "v0"}
    assert {"client_id", "scopes", "created_at", "updated_at", "kind", "mode"} <= set(attrs)
    assert "data" not in data["relationships"]["role"]
    included = client.get(PATH + "?include=role", headers=api.cl_headers()).json()
    assert included["data"]["relationships"]["role"]["data"] == {
        "type": "roles",
        "id": D.COMMERCELAYER_DEFAULT_ROLE_ID,
    }
    assert included["included"][0]["attributes"]["name"] == "admin"


def test_patch_updates_and_updated_at_moves_only_on_change(
    client: httpx.Client, api: Api, cred: dict[str, Any]
) -> None:
    headers = api.cl_headers()
    before = client.get(PATH, headers=headers).json()["data"]["attributes"]["updated_at"]
    doc = _doc(
        {"reference": "ref-1", "metadata": {"rotator": "v1"}, "expires_in": 86400},
        relationships={"role": {"data": {"type": "roles", "id": "rolReadOnly1"}}},
    )
    r = client.patch(PATH, headers=headers, json=doc)
    assert r.status_code == 200, r.text
    attrs = r.json()["data"]["attributes"]
    assert attrs["reference"] == "ref-1" and attrs["expires_in"] == 86400
    assert attrs["updated_at"] > before
    again = client.patch(PATH, headers=headers, json=doc)
    assert again.json()["data"]["attributes"]["updated_at"] == attrs["updated_at"]
    history = client.get("/_sandbox/commercelayer/resources/cred1").json()["history"]
    assert len(history) == 1
    assert history[0]["secret"] == {
        "name": "integration",
        "reference": "ref-1",
        "reference_origin": None,
        "metadata": {"rotator": "v1"},
        "role_id": "rolReadOnly1",
    }
    assert history[0]["version"] == attrs["updated_at"]


@pytest.mark.parametrize("accept", [None, "application/json", f"{MEDIA}; charset=utf-8"])
def test_wrong_accept_is_406(
    client: httpx.Client, api: Api, cred: dict[str, Any], accept: str | None
) -> None:
    headers = api.cl_headers()
    if accept is None:
        headers["Accept"] = ""
    else:
        headers["Accept"] = accept
    r = client.get(PATH, headers=headers)
    assert r.status_code == 406 and _codes(r) == ["NOT_ACCEPTABLE"]


@pytest.mark.parametrize("ctype", ["application/json", "text/plain"])
def test_wrong_content_type_is_415(
    client: httpx.Client, api: Api, cred: dict[str, Any], ctype: str
) -> None:
    headers = {**api.cl_headers(), "Content-Type": ctype}
    r = client.patch(PATH, headers=headers, json=_doc({"reference": "x"}))
    assert r.status_code == 415 and _codes(r) == ["UNSUPPORTED_MEDIA_TYPE"]


@pytest.mark.parametrize(
    ("doc", "pointer"),
    [
        ({"data": {"type": "customers", "id": "cred1", "attributes": {}}}, "/data/type"),
        ({"data": {"type": "api_credentials", "id": "other", "attributes": {}}}, "/data/id"),
        ({"nodata": True}, "/data"),
    ],
)
def test_type_or_id_mismatch_is_400(
    client: httpx.Client, api: Api, cred: dict[str, Any], doc: dict[str, Any], pointer: str
) -> None:
    r = client.patch(PATH, headers=api.cl_headers(), json=doc)
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert error["source"]["pointer"] == pointer and error["status"] == "400"


@pytest.mark.parametrize(
    ("attributes", "relationships", "pointer"),
    [
        ({"client_secret": "new"}, None, "/data/attributes/client_secret"),
        ({"scopes": "market:all"}, None, "/data/attributes/scopes"),
        ({"kind": "sales_channel"}, None, "/data/attributes/kind"),
        ({"expires_in": 60}, None, "/data/attributes/expires_in"),
        ({"expires_in": 31536001}, None, "/data/attributes/expires_in"),
        ({"name": ""}, None, "/data/attributes/name"),
        (
            {},
            {"role": {"data": {"type": "roles", "id": "no-such-role"}}},
            "/data/relationships/role",
        ),
    ],
)
def test_validation_errors_are_422(
    client: httpx.Client,
    api: Api,
    cred: dict[str, Any],
    attributes: dict[str, Any],
    relationships: dict[str, Any] | None,
    pointer: str,
) -> None:
    extra = {"relationships": relationships} if relationships else {}
    r = client.patch(PATH, headers=api.cl_headers(), json=_doc(attributes, **extra))
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["code"] == "VALIDATION_ERROR" and error["status"] == "422"
    assert error["source"]["pointer"] == pointer
    assert error["title"] and error["detail"] and "meta" in error
    assert client.get("/_sandbox/commercelayer/resources/cred1").json()["history"] == []


def test_seeded_role_can_be_used(client: httpx.Client, api: Api, cred: dict[str, Any]) -> None:
    assert client.put("/_sandbox/commercelayer/roles/rolCustom01", json={"name": "ops"}).is_success
    doc = _doc({}, relationships={"role": {"data": {"type": "roles", "id": "rolCustom01"}}})
    r = client.patch(PATH, headers=api.cl_headers(), json=doc)
    assert r.status_code == 200
    role = client.get("/api/roles/rolCustom01", headers=api.cl_headers()).json()
    assert role["data"]["attributes"]["name"] == "ops"


def test_unknown_credential_is_404(client: httpx.Client, api: Api) -> None:
    r = client.get("/api/api_credentials/nope", headers=api.cl_headers())
    assert r.status_code == 404 and _codes(r) == ["RECORD_NOT_FOUND"]


def test_missing_or_unknown_token_is_401(
    client: httpx.Client, api: Api, cred: dict[str, Any]
) -> None:
    headers = api.cl_headers()
    del headers["Authorization"]
    r = client.get(PATH, headers=headers)
    assert r.status_code == 401 and _codes(r) == ["UNAUTHORIZED"]
    r = client.get(PATH, headers={**headers, "Authorization": "Bearer junk"})
    assert r.status_code == 401 and _codes(r) == ["UNAUTHORIZED"]


def test_token_errors(client: httpx.Client) -> None:
    base = {
        "grant_type": "client_credentials",
        "client_id": D.COMMERCELAYER_CLIENT_ID,
        "client_secret": D.COMMERCELAYER_CLIENT_SECRET,
        "scope": D.COMMERCELAYER_SCOPE,
    }
    assert client.post("/oauth/token", json={**base, "client_secret": "x"}).status_code == 401
    assert client.post("/oauth/token", json={**base, "scope": "market:all"}).status_code == 400
    ok = client.post("/oauth/token", json=base).json()
    assert ok["token_type"] == "bearer" and ok["expires_in"] > 0 and ok["access_token"]


def test_patch_burst_limit_is_429_without_retry_after(
    client: httpx.Client, api: Api, cred: dict[str, Any]
) -> None:
    headers = api.cl_headers()
    statuses = [
        client.patch(PATH, headers=headers, json=_doc({"reference": f"r{i}"})).status_code
        for i in range(51)
    ]
    assert statuses[:50] == [200] * 50
    assert statuses[50] == 429
    r = client.patch(PATH, headers=headers, json=_doc({"reference": "late"}))
    # Commerce Layer documents no reset header: clients must not count on one.
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert _codes(r) == ["TOO_MANY_REQUESTS"]
    history = client.get("/_sandbox/commercelayer/resources/cred1").json()["history"]
    assert len(history) == 50
    # GETs are limited separately (250 per 10 s).
    assert client.get(PATH, headers=headers).status_code == 200


def test_stats_show_every_arrival_per_window_and_tokens_per_client(
    client: httpx.Client, api: Api, cred: dict[str, Any]
) -> None:
    # Given 52 PATCHes (two refused) and 3 GETs through one token
    headers = api.cl_headers()
    for i in range(52):
        client.patch(PATH, headers=headers, json=_doc({"reference": f"r{i}"}))
    for _ in range(3):
        client.get(PATH, headers=headers)
    stats = client.get("/_sandbox/stats").json()
    windows = stats["rate_windows"]["commercelayer"]
    # Then every arrival is counted, refused ones too, with the peak of each documented window
    assert windows["write api_credentials"] == {
        "requests": 52,
        "limited": 2,
        "windows": [
            {"seconds": 10.0, "limit": 50, "peak": 52},
            {"seconds": 60.0, "limit": 200, "peak": 52},
        ],
    }
    assert windows["read api_credentials"]["requests"] == 3
    assert windows["auth oauth/token"]["requests"] == 1
    assert stats["tokens_minted_by_client"]["commercelayer"] == {D.COMMERCELAYER_CLIENT_ID: 1}


def test_rate_limits_can_be_disabled(client: httpx.Client, api: Api, cred: dict[str, Any]) -> None:
    client.put("/_sandbox/config", json={"rate_limits": False})
    headers = api.cl_headers()
    for i in range(60):
        r = client.patch(PATH, headers=headers, json=_doc({"reference": f"r{i}"}))
        assert r.status_code == 200


def test_auth_endpoint_limited_to_30_per_minute(client: httpx.Client) -> None:
    body = {
        "grant_type": "client_credentials",
        "client_id": D.COMMERCELAYER_CLIENT_ID,
        "client_secret": D.COMMERCELAYER_CLIENT_SECRET,
        "scope": D.COMMERCELAYER_SCOPE,
    }
    statuses = [client.post("/oauth/token", json=body).status_code for _ in range(31)]
    assert statuses[:30] == [200] * 30 and statuses[30] == 429


def test_oob_edit(client: httpx.Client, cred: dict[str, Any]) -> None:
    view = client.post("/_sandbox/commercelayer/resources/cred1/oob").json()
    assert view["reference"] != "ref-0" and view["version"] > cred["version"]
    assert view["history"][-1]["by"] == "oob"
