"""CipherTrust imitation: JWT expiry and refresh, connections CRUD, org re-pointing, tests."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from rotator.sandbox import defaults as D
from tests.sandbox.conftest import Api

CONNS = "/api/v1/connectionmgmt/services/salesforce/connections"
ORG = "/api/v1/cckm/sfdc/organizations/org-1"


@pytest.fixture
def seeded(client: httpx.Client) -> None:
    r = client.put(
        "/_sandbox/ciphertrust/connections/conn-a",
        json={"name": "sf-a", "client_id": "cid", "client_secret": "s-a", "password": "p-a"},
    )
    assert r.status_code == 200
    r = client.put("/_sandbox/ciphertrust/resources/org-1", json={"connection": "conn-a"})
    assert r.status_code == 200 and r.json()["connection"] == "sf-a"


def _new_connection(name: str, secret: str = "s-new") -> dict[str, Any]:
    return {
        "name": name,
        "products": ["cckm"],
        "cloud_name": "Salesforce Cloud",
        "client_id": "sf-client",
        "client_secret": secret,
        "username": "integration@example.com",
        "password": "pw-new",
    }


def _assert_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"code", "codeDesc", "message", "requestID"}
    return body


def test_password_and_refresh_grants(client: httpx.Client, api: Api) -> None:
    login = api.ct_login()
    assert login["duration"] == 300 and login["jwt"].count(".") == 2
    assert login["refresh_token"] and login["client_id"]
    r = client.post(
        "/api/v1/auth/tokens",
        json={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]},
    )
    assert r.status_code == 200
    assert r.json()["jwt"] != login["jwt"]
    assert r.json()["refresh_token"] == login["refresh_token"]


def test_wrong_password_and_bad_refresh_are_401(client: httpx.Client) -> None:
    r = client.post(
        "/api/v1/auth/tokens/",
        json={"grant_type": "password", "username": D.CIPHERTRUST_USERNAME, "password": "no"},
    )
    body = _assert_error(r, 401)
    assert body["codeDesc"] == "NCERRUnauthorizedAccess" and body["code"] == 5
    r = client.post(
        "/api/v1/auth/tokens/", json={"grant_type": "refresh_token", "refresh_token": "nope"}
    )
    _assert_error(r, 401)


def test_refresh_grant_renews_an_expired_jwt(client: httpx.Client, api: Api, seeded: None) -> None:
    # The expired JWT's 401 itself is checked for every token API in test_token_expiry.py.
    client.put("/_sandbox/config", json={"token_ttl": {"ciphertrust": 1}})
    login = api.ct_login()
    assert login["duration"] == 1
    headers = api.ct_headers(login["jwt"])
    time.sleep(1.1)
    _assert_error(client.get(ORG, headers=headers), 401)
    refreshed = client.post(
        "/api/v1/auth/tokens/",
        json={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]},
    ).json()
    assert client.get(ORG, headers=api.ct_headers(refreshed["jwt"])).status_code == 200


def test_missing_token_is_401(client: httpx.Client, seeded: None) -> None:
    _assert_error(client.get(ORG), 401)


def test_create_connection_hides_secrets_and_duplicate_is_409(
    client: httpx.Client, api: Api
) -> None:
    headers = api.ct_headers()
    r = client.post(CONNS, headers=headers, json=_new_connection("sf-b"))
    assert r.status_code == 201, r.text
    conn = r.json()
    assert "client_secret" not in conn and "password" not in conn
    assert conn["name"] == "sf-b" and conn["products"] == ["cckm"]
    assert "." in conn["updatedAt"] and conn["updatedAt"].endswith("Z")
    got = client.get(f"{CONNS}/{conn['id']}", headers=headers).json()
    assert "client_secret" not in got and "password" not in got and got["username"]
    dup = client.post(CONNS, headers=headers, json=_new_connection("sf-b", "other"))
    _assert_error(dup, 409)
    admin = client.get(f"/_sandbox/ciphertrust/connections/{conn['id']}").json()
    assert admin["client_secret"] == "s-new"
    assert [h["secret"]["client_secret"] for h in admin["history"]] == ["s-new"]


@pytest.mark.parametrize(
    "change",
    [{"products": []}, {"products": ["cte"]}, {"name": ""}, {"client_secret": None}, {"meta": 3}],
)
def test_create_validation_is_422(client: httpx.Client, api: Api, change: dict[str, Any]) -> None:
    body = {k: v for k, v in {**_new_connection("sf-x"), **change}.items() if v is not None}
    _assert_error(client.post(CONNS, headers=api.ct_headers(), json=body), 422)


def test_list_filters_and_paginates(client: httpx.Client, api: Api) -> None:
    headers = api.ct_headers()
    for i in range(3):
        assert client.post(CONNS, headers=headers, json=_new_connection(f"rot-{i}")).is_success
    client.post(CONNS, headers=headers, json=_new_connection("other"))
    page = client.get(CONNS, headers=headers, params={"name": "rot-1"}).json()
    assert page["total"] == 1 and page["resources"][0]["name"] == "rot-1"
    assert "client_secret" not in page["resources"][0]
    wild = client.get(CONNS, headers=headers, params={"name": "rot-*", "limit": 2}).json()
    assert wild["total"] == 3 and len(wild["resources"]) == 2 and wild["limit"] == 2
    rest = client.get(CONNS, headers=headers, params={"name": "rot-*", "skip": 2}).json()
    assert [c["name"] for c in rest["resources"]] == ["rot-2"] and rest["skip"] == 2


def test_org_patch_repoints_and_unknown_connection_is_4xx(
    client: httpx.Client, api: Api, seeded: None
) -> None:
    headers = api.ct_headers()
    created = client.post(CONNS, headers=headers, json=_new_connection("sf-new")).json()
    before = client.get(ORG, headers=headers).json()
    assert before["connection"] == "sf-a" and before["cloud_name"] == "sfdc"
    bad = client.patch(ORG, headers=headers, json={"connection": "no-such-connection"})
    assert 400 <= bad.status_code < 500
    _assert_error(bad, bad.status_code)
    by_id = client.patch(ORG, headers=headers, json={"connection": created["id"]})
    assert by_id.status_code == 200 and by_id.json()["connection"] == "sf-new"
    assert by_id.json()["updatedAt"] > before["updatedAt"]
    history = client.get("/_sandbox/ciphertrust/resources/org-1").json()["history"]
    assert [h["secret"] for h in history] == [{"connection": "sf-new"}]
    _assert_error(client.get("/api/v1/cckm/sfdc/organizations/nope", headers=headers), 404)


def test_patch_and_delete_connection(client: httpx.Client, api: Api, seeded: None) -> None:
    headers = api.ct_headers()
    r = client.patch(f"{CONNS}/conn-a", headers=headers, json={"client_secret": "s-a2"})
    assert r.status_code == 200 and "client_secret" not in r.json()
    assert client.get("/_sandbox/ciphertrust/connections/conn-a").json()["client_secret"] == "s-a2"
    _assert_error(client.patch(f"{CONNS}/conn-a", headers=headers, json={"name": "renamed"}), 422)
    # In use by org-1: cannot be deleted until the org points elsewhere.
    _assert_error(client.delete(f"{CONNS}/conn-a", headers=headers), 409)
    created = client.post(CONNS, headers=headers, json=_new_connection("sf-c")).json()
    client.patch(ORG, headers=headers, json={"connection": "sf-c"})
    assert client.delete(f"{CONNS}/sf-a", headers=headers).status_code == 204
    _assert_error(client.get(f"{CONNS}/conn-a", headers=headers), 404)
    tomb = client.get("/_sandbox/ciphertrust/connections/conn-a").json()
    assert tomb["deleted"] is True
    assert created["name"] == "sf-c"


def test_connection_test(client: httpx.Client, api: Api, seeded: None) -> None:
    headers = api.ct_headers()
    test = "/api/v1/connectionmgmt/services/salesforce/connection-test"
    ok = client.post(test, headers=headers, json=_new_connection("probe"))
    assert ok.status_code == 200 and ok.json()["connection_ok"] is True
    fail = client.post(test, headers=headers, json=_new_connection("probe", "invalid-secret"))
    assert fail.status_code == 200 and fail.json()["connection_ok"] is False
    by_ref = client.post(test, headers=headers, json={"connection": "conn-a"})
    assert by_ref.json()["connection_ok"] is True
    existing = client.post(f"{CONNS}/conn-a/test", headers=headers)
    assert existing.json()["connection_ok"] is True
    shown = client.get(f"{CONNS}/conn-a", headers=headers).json()
    assert shown["last_connection_ok"] is True and shown["last_connection_at"]
    _assert_error(client.post(test, headers=headers, json={"connection": "ghost"}), 404)


def test_oob_edits(client: httpx.Client, seeded: None) -> None:
    conn = client.post("/_sandbox/ciphertrust/connections/conn-a/oob").json()
    assert conn["client_secret"] != "s-a" and conn["history"][-1]["by"] == "oob"
    org = client.post("/_sandbox/ciphertrust/resources/org-1/oob").json()
    assert org["history"][-1] == {
        "at": org["history"][-1]["at"],
        "by": "oob",
        "secret": {"connection": "sf-a"},
        "version": org["updatedAt"],
    }
