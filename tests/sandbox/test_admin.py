"""The /_sandbox admin API: reset, resources with history, oob, clients, config, stats."""

from __future__ import annotations

import httpx
import pytest

from rotator.sandbox import defaults as D
from tests.sandbox.conftest import Api

CONN = "/data/foundation/flowservice/connections/c1"


def test_reset_restores_seeded_defaults(client: httpx.Client, api: Api) -> None:
    client.put("/_sandbox/adobe/resources/c1", json={})
    client.put("/_sandbox/faults", json={"rules": [{"provider": "adobe", "kind": "error"}]})
    client.put("/_sandbox/config", json={"token_ttl": {"adobe": 5}, "rate_limits": False})
    client.put("/_sandbox/adobe/clients/extra", json={"client_secret": "s"})
    api.adobe_token()
    assert client.post("/_sandbox/reset").status_code == 200
    assert client.get("/_sandbox/adobe/resources/c1").status_code == 404
    assert client.get("/_sandbox/faults").json() == {"seed": None, "rules": []}
    assert client.get("/_sandbox/config").json() == {"token_ttl": {}, "rate_limits": True}
    stats = client.get("/_sandbox/stats").json()
    assert all(v == 0 for v in stats["tokens_minted"].values())
    assert stats["faults_injected"] == {}
    r = client.post(
        "/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": "extra",
            "client_secret": "s",
            "scope": "x",
        },
    )
    assert r.status_code == 400  # the extra client is gone


def test_stats_count_tokens_requests_and_updates(client: httpx.Client, api: Api) -> None:
    client.put("/_sandbox/adobe/resources/c1", json={})
    headers = api.adobe_headers()
    etag = client.get(CONN, headers=headers).json()["items"][0]["etag"]
    ops = [{"op": "replace", "path": "/name", "value": "renamed"}]
    assert client.patch(CONN, headers={**headers, "If-Match": etag}, json=ops).is_success
    client.post("/_sandbox/adobe/resources/c1/oob")  # admin edits are not API updates
    stats = client.get("/_sandbox/stats").json()
    assert stats["tokens_minted"]["adobe"] == 1
    assert stats["requests"]["adobe"] == 3  # token, GET, PATCH; admin calls not counted
    assert stats["updates_applied"] == {
        "adobe": 1,
        "appflow": 0,
        "uipath": 0,
        "commercelayer": 0,
        "ciphertrust": 0,
    }


def test_stats_watch_every_providers_requests_in_10s_and_60s_windows(
    client: httpx.Client, api: Api
) -> None:
    # Given a token and two reads at Adobe, which documents no rate limit
    client.put("/_sandbox/adobe/resources/c1", json={})
    headers = api.adobe_headers()
    client.get(CONN, headers=headers)
    client.get(CONN, headers=headers)
    client.post("/_sandbox/adobe/resources/c1/oob")  # admin calls are not API requests
    # Then the peak of each window is shown, with no limit beside it
    windows = client.get("/_sandbox/stats").json()["request_windows"]
    assert windows == {
        "adobe": {
            "requests": 3,
            "limited": 0,
            "windows": [
                {"seconds": 10.0, "limit": None, "peak": 3},
                {"seconds": 60.0, "limit": None, "peak": 3},
            ],
        }
    }


def test_resource_view_has_secrets_initial_and_history(client: httpx.Client, api: Api) -> None:
    params = {"username": "u", "password": "p0"}
    put = client.put("/_sandbox/adobe/resources/c1", json={"auth": {"params": params}}).json()
    assert put["initial"] == {"secret": params, "version": put["version"]}
    assert put["history"] == []
    headers = api.adobe_headers()
    ops = [{"op": "replace", "path": "/auth/params/password", "value": "p1"}]
    client.patch(CONN, headers={**headers, "If-Match": put["version"]}, json=ops)
    oob = client.post("/_sandbox/adobe/resources/c1/oob", json={"params": {"password": "p9"}})
    view = client.get("/_sandbox/adobe/resources/c1").json()
    assert view == oob.json()
    assert view["auth"]["params"] == {"password": "p9"}
    assert [(h["by"], h["secret"]) for h in view["history"]] == [
        ("api", {"username": "u", "password": "p1"}),
        ("oob", {"password": "p9"}),
    ]
    assert view["history"][0]["at"] <= view["history"][1]["at"]
    assert view["history"][1]["version"] == view["version"] != view["history"][0]["version"]


@pytest.mark.parametrize(
    ("provider", "rid"),
    [
        ("adobe", "a"),
        ("appflow", "p/with/slashes"),
        ("uipath", "r"),
        ("commercelayer", "c"),
        ("ciphertrust", "o"),
    ],
)
def test_every_provider_supports_put_get_oob(client: httpx.Client, provider: str, rid: str) -> None:
    created = client.put(f"/_sandbox/{provider}/resources/{rid}", json={})
    assert created.status_code == 200, created.text
    oob = client.post(f"/_sandbox/{provider}/resources/{rid}/oob")
    assert oob.status_code == 200, oob.text
    view = client.get(f"/_sandbox/{provider}/resources/{rid}").json()
    assert view["version"] != created.json()["version"]
    assert [h["by"] for h in view["history"]] == ["oob"]
    assert set(view["history"][0]) == {"at", "by", "secret", "version"}


def test_clients_can_be_added(client: httpx.Client) -> None:
    r = client.put(
        "/_sandbox/uipath/clients/ro-app", json={"secret": "s3", "scopes": "PM.RobotAccount.Read"}
    )
    assert r.status_code == 200 and "s3" not in r.text
    token = client.post(
        f"/{D.UIPATH_ORGANIZATION}/identity_/connect/token",
        data={"grant_type": "client_credentials", "client_id": "ro-app", "client_secret": "s3"},
    )
    assert token.status_code == 200 and token.json()["scope"] == "PM.RobotAccount.Read"
    assert client.put("/_sandbox/ciphertrust/clients/ops", json={"password": "pw"}).is_success
    login = client.post("/api/v1/auth/tokens/", json={"username": "ops", "password": "pw"})
    assert login.status_code == 200
    assert client.put("/_sandbox/adobe/clients/x", json={}).status_code == 400


def test_admin_errors(client: httpx.Client) -> None:
    assert client.get("/_sandbox/nobody/resources/x").status_code == 404
    assert client.get("/_sandbox/adobe/widgets/x").status_code == 404
    assert client.get("/_sandbox/adobe/resources/missing").status_code == 404
    assert client.post("/_sandbox/adobe/resources/missing/oob").status_code == 404
    bad = client.put(
        "/_sandbox/adobe/resources/x", content=b"[1]", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["error"]
    assert client.put("/_sandbox/config", json={"token_ttl": {"nobody": 1}}).status_code == 400
    assert client.put("/_sandbox/config", json={"token_ttl": {"adobe": -1}}).status_code == 400
    assert client.put("/_sandbox/config", json={"rate_limits": "no"}).status_code == 400


def test_config_token_ttl_shortens_lifetimes(client: httpx.Client) -> None:
    client.put("/_sandbox/config", json={"token_ttl": {"uipath": 60, "ciphertrust": 2}})
    login = client.post(
        "/api/v1/auth/tokens/",
        json={"username": D.CIPHERTRUST_USERNAME, "password": D.CIPHERTRUST_PASSWORD},
    )
    assert login.json()["duration"] == 2
    assert client.put("/_sandbox/config", json={"token_ttl": {"ciphertrust": None}}).json() == {
        "token_ttl": {"uipath": 60.0},
        "rate_limits": True,
    }
