"""Adobe IMS + Flow Service imitation: every documented error path, and the update contract."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rotator.sandbox import defaults as D
from tests.sandbox.conftest import Api

CONN = "/data/foundation/flowservice/connections/c1"
PARAMS = {"username": "sf-user", "password": "pw-0", "securityToken": "tok-0"}


@pytest.fixture
def conn(client: httpx.Client) -> dict[str, Any]:
    r = client.put("/_sandbox/adobe/resources/c1", json={"auth": {"params": PARAMS}})
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


def _item(client: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    r = client.get(CONN, headers=headers)
    assert r.status_code == 200, r.text
    item: dict[str, Any] = r.json()["items"][0]
    return item


def _flow_type(r: httpx.Response) -> str:
    return str(r.json()["type"]).rsplit("/", 1)[-1]


def test_token_and_read_masks_secrets(client: httpx.Client, api: Api, conn: dict[str, Any]) -> None:
    r = client.post(
        "/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": D.ADOBE_CLIENT_ID,
            "client_secret": D.ADOBE_CLIENT_SECRET,
            "scope": D.ADOBE_SCOPES,
        },
    )
    assert r.status_code == 200
    assert r.json()["token_type"] == "bearer" and r.json()["expires_in"] == 86399
    item = _item(client, api.adobe_headers(r.json()["access_token"]))
    assert item["version"] == item["etag"] == conn["version"]
    assert item["etag"].startswith('"') and item["etag"].endswith('"')
    assert item["auth"]["params"]["username"] == "sf-user"
    assert item["auth"]["params"]["password"] != "pw-0"
    assert item["auth"]["params"]["securityToken"] != "tok-0"
    # Seeded without a description, like connections created without one: no such member.
    assert item["name"] == "c1" and "description" not in item
    assert isinstance(item["updatedAt"], int) and item["updatedAt"] > 1_600_000_000_000


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"client_id": "nobody"}, 400, "invalid_client"),
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"scope": ""}, 400, "invalid_scope"),
    ],
)
def test_token_errors(client: httpx.Client, form: dict[str, str], status: int, error: str) -> None:
    data = {
        "grant_type": "client_credentials",
        "client_id": D.ADOBE_CLIENT_ID,
        "client_secret": D.ADOBE_CLIENT_SECRET,
        "scope": D.ADOBE_SCOPES,
        **form,
    }
    r = client.post("/ims/token/v3", data=data)
    assert r.status_code == status
    assert r.json()["error"] == error


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"Authorization": None}, 403, "403010"),
        ({"Authorization": "Bearer not-a-token"}, 401, "401013"),
        ({"x-api-key": None}, 403, "403000"),
        ({"x-api-key": "someone-else"}, 403, "403003"),
        ({"x-gw-ims-org-id": None}, 400, "400003"),
        ({"x-gw-ims-org-id": "OTHER@AdobeOrg"}, 403, "403025"),
    ],
)
def test_gateway_errors(
    client: httpx.Client,
    api: Api,
    conn: dict[str, Any],
    change: dict[str, str | None],
    status: int,
    code: str,
) -> None:
    headers = api.adobe_headers()
    for key, value in change.items():
        if value is None:
            headers.pop(key)
        else:
            headers[key] = value
    r = client.get(CONN, headers=headers)
    assert r.status_code == status
    assert r.json()["error_code"] == code and r.json()["message"]


def test_sandbox_header_missing_2105(client: httpx.Client, api: Api, conn: dict[str, Any]) -> None:
    headers = api.adobe_headers()
    del headers["x-sandbox-name"]
    r = client.get(CONN, headers=headers)
    assert r.status_code == 400 and _flow_type(r) == "FLOW-2105-400"
    assert r.json()["title"] and r.json()["status"] == 400 and "report" in r.json()


def test_not_found_1101(client: httpx.Client, api: Api, conn: dict[str, Any]) -> None:
    r = client.get("/data/foundation/flowservice/connections/nope", headers=api.adobe_headers())
    assert r.status_code == 404 and _flow_type(r) == "FLOW-1101-404"
    other = {**api.adobe_headers(), "x-sandbox-name": "dev"}
    assert client.get(CONN, headers=other).status_code == 404


def test_patch_requires_if_match_1403(client: httpx.Client, api: Api, conn: dict[str, Any]) -> None:
    ops = [{"op": "replace", "path": "/auth/params", "value": {"password": "x"}}]
    r = client.patch(CONN, headers=api.adobe_headers(), json=ops)
    assert r.status_code == 400 and _flow_type(r) == "FLOW-1403-400"


@pytest.mark.parametrize("quoted", [True, False])
def test_patch_applies_with_quoted_or_bare_etag(
    client: httpx.Client, api: Api, conn: dict[str, Any], quoted: bool
) -> None:
    headers = api.adobe_headers()
    etag = _item(client, headers)["etag"]
    if_match = etag if quoted else etag.strip('"')
    new = {"username": "sf-user", "password": "pw-1", "securityToken": "tok-1"}
    ops = [
        {"op": "replace", "path": "/auth/params", "value": new},
        {"op": "add", "path": "/description", "value": "rotated"},
    ]
    r = client.patch(CONN, headers={**headers, "If-Match": if_match}, json=ops)
    assert r.status_code == 200, r.text
    new_etag = r.json()["etag"]
    assert r.json()["id"] == "c1" and new_etag != etag and new_etag.startswith('"')
    item = _item(client, headers)
    assert item["etag"] == item["version"] == new_etag
    assert item["description"] == "rotated"
    assert item["updatedClient"] == "sandbox integration"  # not the client id: see the sim
    assert item["updatedAt"] >= item["createdAt"]
    admin = client.get("/_sandbox/adobe/resources/c1").json()
    assert admin["auth"]["params"] == new
    assert admin["history"] == [
        {"at": admin["history"][0]["at"], "by": "api", "secret": new, "version": new_etag}
    ]


def test_stale_if_match_1404_and_replay_is_412(
    client: httpx.Client, api: Api, conn: dict[str, Any]
) -> None:
    headers = api.adobe_headers()
    etag = _item(client, headers)["etag"]
    ops = [{"op": "add", "path": "/auth/params/password", "value": "pw-2"}]
    first = client.patch(CONN, headers={**headers, "If-Match": etag}, json=ops)
    assert first.status_code == 200
    replay = client.patch(CONN, headers={**headers, "If-Match": etag}, json=ops)
    assert replay.status_code == 412 and _flow_type(replay) == "FLOW-1404-412"
    assert replay.json()["title"] == "Version not matching"
    assert len(client.get("/_sandbox/adobe/resources/c1").json()["history"]) == 1


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ({"op": "replace"}, "FLOW-1455-400"),
        ([{"op": "replace", "path": "/connectionSpec", "value": {}}], "FLOW-1455-400"),
        ([{"op": "replace", "path": "/auth/params", "value": "not-an-object"}], "FLOW-1455-400"),
        ([{"op": "remove", "path": "/auth/params/nope"}], "FLOW-1455-400"),
        ([{"op": "replace", "path": "/name"}], "FLOW-1455-400"),
        ([{"op": "move", "path": "/name", "from": "/description"}], "FLOW-1434-400"),
    ],
)
def test_invalid_patch(
    client: httpx.Client, api: Api, conn: dict[str, Any], ops: Any, code: str
) -> None:
    headers = api.adobe_headers()
    etag = _item(client, headers)["etag"]
    r = client.patch(CONN, headers={**headers, "If-Match": etag}, json=ops)
    assert r.status_code == 400 and _flow_type(r) == code
    assert client.get("/_sandbox/adobe/resources/c1").json()["history"] == []


def test_wrong_state_1416(client: httpx.Client, api: Api) -> None:
    client.put("/_sandbox/adobe/resources/c1", json={"state": "delete-finalizing"})
    headers = api.adobe_headers()
    etag = _item(client, headers)["etag"]
    ops = [{"op": "replace", "path": "/name", "value": "x"}]
    r = client.patch(CONN, headers={**headers, "If-Match": etag}, json=ops)
    assert r.status_code == 400 and _flow_type(r) == "FLOW-1416-400"


def test_oob_changes_version_and_params(
    client: httpx.Client, api: Api, conn: dict[str, Any]
) -> None:
    headers = api.adobe_headers()
    before = _item(client, headers)["etag"]
    view = client.post("/_sandbox/adobe/resources/c1/oob").json()
    assert view["version"] != before and view["auth"]["params"]["password"] != "pw-0"
    assert view["auth"]["params"]["username"] == "sf-user"
    assert view["history"][-1]["by"] == "oob"
    stale = client.patch(
        CONN,
        headers={**headers, "If-Match": before},
        json=[{"op": "replace", "path": "/name", "value": "x"}],
    )
    assert stale.status_code == 412


def test_patch_requires_json_content_type(
    client: httpx.Client, api: Api, conn: dict[str, Any]
) -> None:
    headers = api.adobe_headers()
    etag = _item(client, headers)["etag"]
    r = client.patch(
        CONN,
        headers={**headers, "If-Match": etag, "Content-Type": "text/plain"},
        content=b'[{"op": "replace", "path": "/name", "value": "x"}]',
    )
    assert r.status_code == 400 and r.json()["title"] == "BadRequestError"


def test_replace_of_a_missing_description_is_1455_and_add_sets_it(
    client: httpx.Client, api: Api, conn: dict[str, Any]
) -> None:
    headers = api.adobe_headers()
    etag = _item(client, headers)["etag"]
    replace = [{"op": "replace", "path": "/description", "value": "x"}]
    r = client.patch(CONN, headers={**headers, "If-Match": etag}, json=replace)
    assert r.status_code == 400 and _flow_type(r) == "FLOW-1455-400"
    assert 'Missing field "description"' in r.json()["report"]["detailed-message"]
    add = [{"op": "add", "path": "/description", "value": "x"}]
    r = client.patch(CONN, headers={**headers, "If-Match": etag}, json=add)
    assert r.status_code == 200, r.text
    assert _item(client, headers)["description"] == "x"


def test_updated_client_is_not_the_callers_client_id(
    client: httpx.Client, api: Api, conn: dict[str, Any]
) -> None:
    headers = api.adobe_headers()
    etag = _item(client, headers)["etag"]
    add = [{"op": "add", "path": "/description", "value": "x"}]
    assert client.patch(CONN, headers={**headers, "If-Match": etag}, json=add).status_code == 200
    item = _item(client, headers)
    assert item["updatedClient"] == "sandbox integration"
    assert item["updatedBy"].endswith("@techacct.adobe.com")
    assert D.ADOBE_CLIENT_ID not in (item["updatedClient"], item["updatedBy"])
