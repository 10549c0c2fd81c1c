"""UiPath identity imitation: OAuth errors, scopes, group deltas that converge, 404/400/401."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rotator.sandbox import defaults as D
from tests.sandbox.conftest import Api

ORG = D.UIPATH_ORGANIZATION
PART = D.UIPATH_PARTITION_GLOBAL_ID
GET = f"/{ORG}/identity_/api/RobotAccount/{PART}/robot-1"
PUT = f"/{ORG}/identity_/api/RobotAccount/robot-1"


@pytest.fixture
def robot(client: httpx.Client) -> dict[str, Any]:
    r = client.put(
        "/_sandbox/uipath/resources/robot-1",
        json={"name": "robot-1", "displayName": "Robot One", "groupIds": ["g-a", "g-b"]},
    )
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _body(**kw: Any) -> dict[str, Any]:
    return {"partitionGlobalId": PART, "groupIDsToAdd": [], "groupIDsToRemove": [], **kw}


def test_token_response_shape(client: httpx.Client) -> None:
    r = client.post(
        f"/{ORG}/{D.UIPATH_TENANT}/identity_/connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": D.UIPATH_CLIENT_ID,
            "client_secret": D.UIPATH_CLIENT_SECRET,
            "scope": "PM.RobotAccount.Read",
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["expires_in"] == 3600 and body["token_type"] == "Bearer"
    assert body["scope"] == "PM.RobotAccount.Read"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "unknown"}, "invalid_client"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"scope": "OR.Machines"}, "invalid_scope"),
    ],
)
def test_token_errors(client: httpx.Client, change: dict[str, str], error: str) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": D.UIPATH_CLIENT_ID,
        "client_secret": D.UIPATH_CLIENT_SECRET,
        "scope": D.UIPATH_SCOPES,
        **change,
    }
    r = client.post(f"/{ORG}/identity_/connect/token", data=form)
    assert r.status_code == 400 and r.json()["error"] == error


def test_token_for_another_organization_is_invalid_client(client: httpx.Client) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": D.UIPATH_CLIENT_ID,
        "client_secret": D.UIPATH_CLIENT_SECRET,
    }
    r = client.post("/otherorg/identity_/connect/token", data=form)
    assert r.status_code == 400 and r.json()["error"] == "invalid_client"


def test_get_needs_read_scope(client: httpx.Client, api: Api, robot: dict[str, Any]) -> None:
    ok = client.get(GET, headers=_auth(api.uipath_token("PM.RobotAccount.Read")))
    assert ok.status_code == 200
    body = ok.json()
    assert body["displayName"] == "Robot One" and body["groupIds"] == ["g-a", "g-b"]
    assert {"id", "name", "creationTime", "lastModificationTime"} <= set(body)
    denied = client.get(GET, headers=_auth(api.uipath_token("PM.RobotAccount.Write")))
    assert denied.status_code == 403 and denied.json()["status"] == 403
    full = client.get(GET, headers=_auth(api.uipath_token("PM.RobotAccount")))
    assert full.status_code == 200
    tenant = client.get(
        f"/{ORG}/{D.UIPATH_TENANT}/identity_/api/RobotAccount/{PART}/robot-1",
        headers=_auth(api.uipath_token()),
    )
    assert tenant.status_code == 200


def test_put_needs_write_scope(client: httpx.Client, api: Api, robot: dict[str, Any]) -> None:
    r = client.put(
        PUT, headers=_auth(api.uipath_token("PM.RobotAccount.Read")), json=_body(displayName="x")
    )
    assert r.status_code == 403
    assert client.get("/_sandbox/uipath/resources/robot-1").json()["history"] == []


def test_missing_or_bad_token_is_401(client: httpx.Client, robot: dict[str, Any]) -> None:
    r = client.get(GET)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get(GET, headers=_auth("nope")).status_code == 401


def test_put_applies_deltas_and_replay_converges(
    client: httpx.Client, api: Api, robot: dict[str, Any]
) -> None:
    headers = _auth(api.uipath_token())
    before = client.get(GET, headers=headers).json()
    body = _body(displayName="Robot One v2", groupIDsToAdd=["g-c"], groupIDsToRemove=["g-a"])
    first = client.put(PUT, headers=headers, json=body)
    assert first.status_code == 200, first.text
    assert first.json()["groupIds"] == ["g-b", "g-c"]
    assert first.json()["displayName"] == "Robot One v2"
    after = client.get(GET, headers=headers).json()
    assert after["lastModificationTime"] > before["lastModificationTime"]
    # Replaying the same PUT (lost response) changes nothing, and is not an error.
    replay = client.put(PUT, headers=headers, json=body)
    assert replay.status_code == 200 and replay.json()["groupIds"] == ["g-b", "g-c"]
    unchanged = client.get(GET, headers=headers).json()["lastModificationTime"]
    assert unchanged == after["lastModificationTime"]
    history = client.get("/_sandbox/uipath/resources/robot-1").json()["history"]
    assert len(history) == 1
    assert history[0]["secret"] == {"displayName": "Robot One v2", "groupIds": ["g-b", "g-c"]}
    assert history[0]["version"] == after["lastModificationTime"]


def test_unknown_account_or_partition_is_404(
    client: httpx.Client, api: Api, robot: dict[str, Any]
) -> None:
    headers = _auth(api.uipath_token())
    r = client.get(f"/{ORG}/identity_/api/RobotAccount/{PART}/nobody", headers=headers)
    assert r.status_code == 404 and r.json()["title"] == "Not Found"
    other = "00000000-0000-0000-0000-000000000000"
    r = client.get(f"/{ORG}/identity_/api/RobotAccount/{other}/robot-1", headers=headers)
    assert r.status_code == 404
    r = client.put(PUT, headers=headers, json={**_body(), "partitionGlobalId": other})
    assert r.status_code == 404
    r = client.put(f"/{ORG}/identity_/api/RobotAccount/nobody", headers=headers, json=_body())
    assert r.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"displayName": "x"},
        _body(groupIDsToAdd="g-a"),
        _body(groupIDsToAdd=["g-x"], groupIDsToRemove=["g-x"]),
        _body(displayName=""),
        ["not", "an", "object"],
    ],
)
def test_bad_body_is_400(client: httpx.Client, api: Api, robot: dict[str, Any], body: Any) -> None:
    r = client.put(PUT, headers=_auth(api.uipath_token()), json=body)
    assert r.status_code == 400 and r.json()["status"] == 400 and r.json()["detail"]


def test_oob_edit(client: httpx.Client, robot: dict[str, Any]) -> None:
    view = client.post("/_sandbox/uipath/resources/robot-1/oob").json()
    assert view["displayName"] != "Robot One" and len(view["groupIds"]) == 3
    assert view["history"][-1]["by"] == "oob"
    given = client.post(
        "/_sandbox/uipath/resources/robot-1/oob", json={"groupIds": ["g-z"], "displayName": "Z"}
    ).json()
    assert given["history"][-1]["secret"] == {"displayName": "Z", "groupIds": ["g-z"]}
