"""Fault injection over a real socket: every kind, count/rate semantics, provider-shaped errors."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from rotator.sandbox import defaults as D
from tests.sandbox.conftest import Api

CONN = "/data/foundation/flowservice/connections/c1"
CONNECTION_LOST = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def _faults(client: httpx.Client, *rules: dict[str, Any], seed: int | None = None) -> None:
    r = client.put("/_sandbox/faults", json={"seed": seed, "rules": list(rules)})
    assert r.status_code == 200, r.text


@pytest.fixture
def adobe(client: httpx.Client, api: Api) -> dict[str, str]:
    client.put("/_sandbox/adobe/resources/c1", json={"auth": {"params": {"password": "p0"}}})
    return api.adobe_headers()


def _patch(client: httpx.Client, headers: dict[str, str], password: str) -> httpx.Response:
    etag = client.get(CONN, headers=headers).json()["items"][0]["etag"]
    ops = [{"op": "replace", "path": "/auth/params", "value": {"password": password}}]
    return client.patch(CONN, headers={**headers, "If-Match": etag}, json=ops)


def _history(client: httpx.Client) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = client.get("/_sandbox/adobe/resources/c1").json()["history"]
    return history


def test_drop_response_applies_then_loses_the_answer(
    client: httpx.Client, adobe: dict[str, str]
) -> None:
    _faults(
        client, {"provider": "adobe", "kind": "drop_response", "methods": ["PATCH"], "count": 1}
    )
    with pytest.raises(CONNECTION_LOST):
        _patch(client, adobe, "p1")
    history = _history(client)
    assert [h["secret"] for h in history] == [{"password": "p1"}]
    # The rule fired once and expired; the next PATCH is answered.
    assert client.get("/_sandbox/faults").json()["rules"] == []
    assert _patch(client, adobe, "p2").status_code == 200
    stats = client.get("/_sandbox/stats").json()
    assert stats["faults_injected"] == {"drop_response": 1}
    assert stats["updates_applied"]["adobe"] == 2


def test_drop_response_then_appflow_replay_is_safe(api: Api, client: httpx.Client) -> None:
    client.put("/_sandbox/appflow/resources/prof", json={})
    _faults(client, {"provider": "appflow", "kind": "drop_response", "count": 1})
    body = {
        "connectorProfileName": "prof",
        "connectionMode": "Public",
        "clientToken": "job-7.v3",
        "connectorProfileConfig": {
            "connectorProfileProperties": {"Salesforce": {"instanceUrl": "https://x"}},
            "connectorProfileCredentials": {"Salesforce": {"accessToken": "new-token"}},
        },
    }
    with pytest.raises(CONNECTION_LOST):
        api.appflow("update-connector-profile", body)
    retry = api.appflow("update-connector-profile", body)
    assert retry.status_code == 200
    history = client.get("/_sandbox/appflow/resources/prof").json()["history"]
    assert len(history) == 1  # applied exactly once


def test_reset_aborts_without_applying(client: httpx.Client, adobe: dict[str, str]) -> None:
    _faults(client, {"provider": "adobe", "kind": "reset", "methods": ["PATCH"], "count": 1})
    with pytest.raises(CONNECTION_LOST):
        _patch(client, adobe, "p1")
    assert _history(client) == []
    assert _patch(client, adobe, "p1").status_code == 200


def test_timeout_does_not_apply(client: httpx.Client, adobe: dict[str, str]) -> None:
    _faults(client, {"provider": "adobe", "kind": "timeout", "ms": 2000, "methods": ["PATCH"]})
    etag = client.get(CONN, headers=adobe).json()["items"][0]["etag"]
    ops = [{"op": "replace", "path": "/auth/params", "value": {"password": "p1"}}]
    with pytest.raises(httpx.ReadTimeout):
        client.patch(CONN, headers={**adobe, "If-Match": etag}, json=ops, timeout=0.2)
    assert _history(client) == []
    _faults(client, {"provider": "adobe", "kind": "timeout", "ms": 150, "methods": ["PATCH"]})
    started = time.monotonic()
    r = client.patch(CONN, headers={**adobe, "If-Match": etag}, json=ops)
    assert time.monotonic() - started >= 0.15
    assert r.status_code == 504 and r.json()["type"].endswith("FLOW-1104-504")
    assert _history(client) == []


def test_latency_delays_then_handles(client: httpx.Client, adobe: dict[str, str]) -> None:
    _faults(client, {"provider": "adobe", "kind": "latency", "ms": 200, "methods": ["GET"]})
    started = time.monotonic()
    assert client.get(CONN, headers=adobe).status_code == 200
    assert time.monotonic() - started >= 0.2
    assert client.get("/_sandbox/stats").json()["faults_injected"]["latency"] == 1


def _error_shape(provider: str, r: httpx.Response) -> None:
    body = r.json()
    if provider == "adobe":
        assert "type" in body or "error_code" in body
    elif provider == "appflow":
        assert r.headers["x-amzn-ErrorType"] and "message" in body
        assert r.headers["x-amzn-RequestId"]
    elif provider == "uipath":
        assert body["status"] == r.status_code and body["title"]
    elif provider == "commercelayer":
        assert body["errors"][0]["status"] == str(r.status_code)
    else:
        assert {"code", "codeDesc", "message", "requestID"} <= set(body)


def _provider_request(provider: str, client: httpx.Client, api: Api) -> httpx.Response:
    if provider == "adobe":
        return client.get(CONN, headers=api.adobe_headers())
    if provider == "appflow":
        return api.appflow("describe-connector-profiles", {})
    if provider == "uipath":
        token = api.uipath_token()
        return client.get(
            f"/{D.UIPATH_ORGANIZATION}/identity_/api/RobotAccount/{D.UIPATH_PARTITION_GLOBAL_ID}/r",
            headers={"Authorization": f"Bearer {token}"},
        )
    if provider == "commercelayer":
        return client.get("/api/api_credentials/x", headers=api.cl_headers())
    return client.get("/api/v1/cckm/sfdc/organizations/x", headers=api.ct_headers())


PROVIDERS = ["adobe", "appflow", "uipath", "commercelayer", "ciphertrust"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_error_is_provider_shaped(client: httpx.Client, api: Api, provider: str) -> None:
    _faults(client, {"provider": provider, "kind": "error", "status": 503, "retry_after": 2})
    r = _provider_request(provider, client, api)
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    _error_shape(provider, r)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rate_limit_carries_retry_after(client: httpx.Client, api: Api, provider: str) -> None:
    _faults(client, {"provider": provider, "kind": "rate_limit", "retry_after": 0.5})
    r = _provider_request(provider, client, api)
    # Commerce Layer documents no reset header: its 429s carry none (issue 11.10).
    expected = None if provider == "commercelayer" else "0.5"
    assert r.status_code == 429 and r.headers.get("Retry-After") == expected
    _error_shape(provider, r)


def test_rate_limited_update_is_not_applied(client: httpx.Client, adobe: dict[str, str]) -> None:
    _faults(client, {"provider": "adobe", "kind": "rate_limit", "methods": ["PATCH"]})
    r = _patch(client, adobe, "p1")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert _history(client) == []


def test_count_rules_expire(client: httpx.Client, adobe: dict[str, str]) -> None:
    _faults(client, {"provider": "adobe", "kind": "error", "count": 2, "methods": ["GET"]})
    codes = [client.get(CONN, headers=adobe).status_code for _ in range(4)]
    assert codes == [500, 500, 200, 200]


def test_rate_is_seeded_and_reproducible(client: httpx.Client, adobe: dict[str, str]) -> None:
    def run() -> list[int]:
        _faults(
            client,
            {"provider": "adobe", "kind": "error", "rate": 0.5, "methods": ["GET"]},
            seed=42,
        )
        return [client.get(CONN, headers=adobe).status_code for _ in range(30)]

    first, second = run(), run()
    assert first == second
    assert 500 in first and 200 in first


def test_token_endpoints_only_faulted_when_path_matches(
    client: httpx.Client, api: Api, adobe: dict[str, str]
) -> None:
    _faults(client, {"provider": "adobe", "kind": "error"})
    api.adobe_token()  # not affected: the rule has no path
    assert client.get(CONN, headers=adobe).status_code == 500
    _faults(client, {"provider": "*", "kind": "error", "path": "^/ims/"})
    r = client.post("/ims/token/v3", data={"grant_type": "client_credentials"})
    assert r.status_code == 500
    assert client.get(CONN, headers=adobe).status_code == 200


def test_method_and_provider_filters(client: httpx.Client, adobe: dict[str, str]) -> None:
    _faults(
        client,
        {"provider": "uipath", "kind": "error"},
        {"provider": "adobe", "kind": "error", "methods": ["PATCH"]},
    )
    assert client.get(CONN, headers=adobe).status_code == 200
    assert _patch(client, adobe, "p1").status_code == 500


def test_admin_is_never_faulted(client: httpx.Client) -> None:
    _faults(client, {"provider": "*", "kind": "reset", "path": "."})
    assert client.get("/_sandbox/stats").status_code == 200


@pytest.mark.parametrize(
    "rule",
    [
        {"provider": "nobody", "kind": "error"},
        {"provider": "adobe", "kind": "explode"},
        {"provider": "adobe", "kind": "error", "rate": 2},
        {"provider": "adobe", "kind": "error", "count": 0},
        {"provider": "adobe", "kind": "error", "status": 404},
        {"provider": "adobe", "kind": "error", "path": "("},
        {"provider": "adobe", "kind": "error", "unknown": 1},
    ],
)
def test_invalid_rules_are_rejected(client: httpx.Client, rule: dict[str, Any]) -> None:
    r = client.put("/_sandbox/faults", json={"rules": [rule]})
    assert r.status_code == 400 and r.json()["error"]


def test_faults_get_and_delete(client: httpx.Client) -> None:
    _faults(client, {"provider": "adobe", "kind": "latency", "ms": 5, "count": 3})
    shown = client.get("/_sandbox/faults").json()
    assert shown["rules"][0]["remaining"] == 3 and shown["rules"][0]["kind"] == "latency"
    assert client.delete("/_sandbox/faults").json()["rules"] == []
