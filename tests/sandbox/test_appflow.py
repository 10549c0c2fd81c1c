"""AppFlow imitation: SigV4 checked with botocore, clientToken semantics, validation, Describe."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from rotator.sandbox import defaults as D
from tests.sandbox.conftest import Api

PROPS = {"Salesforce": {"instanceUrl": "https://acme.my.salesforce.com"}}


def _creds(n: int) -> dict[str, Any]:
    return {"Salesforce": {"accessToken": f"access-{n}", "refreshToken": f"refresh-{n}"}}


def _update(name: str = "sfdc-prod", n: int = 1, token: str | None = "tok-1") -> dict[str, Any]:
    body: dict[str, Any] = {
        "connectorProfileName": name,
        "connectionMode": "Public",
        "connectorProfileConfig": {
            "connectorProfileProperties": PROPS,
            "connectorProfileCredentials": _creds(n),
        },
    }
    if token is not None:
        body["clientToken"] = token
    return body


@pytest.fixture
def appflow(url: str) -> Iterator[Any]:
    session = botocore.session.get_session()
    c = session.create_client(
        "appflow",
        region_name=D.AWS_REGION,
        endpoint_url=url,
        aws_access_key_id=D.AWS_ACCESS_KEY_ID,
        aws_secret_access_key=D.AWS_SECRET_ACCESS_KEY,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    yield c
    c.close()


@pytest.fixture
def profile(client: httpx.Client) -> dict[str, Any]:
    r = client.put(
        "/_sandbox/appflow/resources/sfdc-prod",
        json={"connectorProfileProperties": PROPS, "connectorProfileCredentials": _creds(0)},
    )
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


def _history(client: httpx.Client, name: str = "sfdc-prod") -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = client.get(f"/_sandbox/appflow/resources/{name}").json()[
        "history"
    ]
    return history


def test_botocore_client_update_and_describe(
    client: httpx.Client, appflow: Any, profile: dict[str, Any]
) -> None:
    out = appflow.update_connector_profile(**_update(n=1))
    assert out["connectorProfileArn"].endswith(":connectorprofile/sfdc-prod")
    desc = appflow.describe_connector_profiles(connectorProfileNames=["sfdc-prod"])
    [detail] = desc["connectorProfileDetails"]
    assert detail["connectorProfileProperties"] == PROPS
    assert "connectorProfileCredentials" not in detail
    assert detail["lastUpdatedAt"] > detail["createdAt"]
    assert detail["credentialsArn"].startswith("arn:aws:secretsmanager:")
    history = _history(client)
    assert [h["secret"] for h in history] == [_creds(1)]
    assert history[0]["version"] == pytest.approx(detail["lastUpdatedAt"].timestamp(), abs=1e-6)


def test_describe_timestamps_are_epoch_seconds(api: Api, profile: dict[str, Any]) -> None:
    r = api.appflow("describe-connector-profiles", {"connectorProfileNames": ["sfdc-prod"]})
    assert r.status_code == 200 and r.headers["x-amzn-RequestId"]
    [detail] = r.json()["connectorProfileDetails"]
    assert isinstance(detail["lastUpdatedAt"], float)
    assert detail["lastUpdatedAt"] == profile["lastUpdatedAt"]


def test_client_token_replay_returns_first_result_without_applying(
    api: Api, client: httpx.Client, profile: dict[str, Any]
) -> None:
    first = api.appflow("update-connector-profile", _update(n=1, token="job-1.v1"))
    assert first.status_code == 200
    stamp = _history(client)[0]["version"]
    replay = api.appflow("update-connector-profile", _update(n=1, token="job-1.v1"))
    assert replay.status_code == 200 and replay.json() == first.json()
    assert len(_history(client)) == 1
    detail = api.appflow(
        "describe-connector-profiles", {"connectorProfileNames": ["sfdc-prod"]}
    ).json()["connectorProfileDetails"][0]
    assert detail["lastUpdatedAt"] == stamp
    # A new token re-applies (AppFlow has no other idempotency).
    again = api.appflow("update-connector-profile", _update(n=1, token="job-2.v1"))
    assert again.status_code == 200 and len(_history(client)) == 2


def test_client_token_with_different_parameters_is_409(
    api: Api, client: httpx.Client, profile: dict[str, Any]
) -> None:
    assert api.appflow("update-connector-profile", _update(n=1, token="t")).status_code == 200
    r = api.appflow("update-connector-profile", _update(n=2, token="t"))
    assert r.status_code == 409
    assert r.headers["x-amzn-ErrorType"].split(":")[0] == "ConflictException"
    assert r.json()["message"]
    assert len(_history(client)) == 1


def test_botocore_sees_conflict_exception(appflow: Any, profile: dict[str, Any]) -> None:
    appflow.update_connector_profile(**_update(n=1, token="same"))
    with pytest.raises(ClientError) as info:
        appflow.update_connector_profile(**_update(n=3, token="same"))
    assert info.value.response["Error"]["Code"] == "ConflictException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"connectorProfileName": "bad name!"}, "regular expression pattern"),
        ({"connectorProfileName": "x" * 257}, "length less than or equal to 256"),
        ({"connectionMode": "Sideways"}, "enum value set"),
        ({"connectionMode": None}, "at 'connectionMode' failed to satisfy constraint"),
        ({"connectorProfileConfig": {"connectorProfileCredentials": _creds(1)}}, "Properties"),
        ({"clientToken": ""}, "length greater than or equal to 1"),
        ({"clientToken": "x" * 257}, "length less than or equal to 256"),
        ({"clientToken": "tab\there"}, "regular expression pattern"),
        (
            {
                "connectorProfileConfig": {
                    "connectorProfileProperties": {
                        "Snowflake": {"warehouse": "w", "stage": "s", "bucketName": "bucket"}
                    },
                }
            },
            "connector profile's type",
        ),
    ],
)
def test_validation_exception(
    api: Api, client: httpx.Client, profile: dict[str, Any], change: dict[str, Any], fragment: str
) -> None:
    body = {**_update(n=9), **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = api.appflow("update-connector-profile", body)
    assert r.status_code == 400, r.text
    assert r.headers["x-amzn-ErrorType"].startswith("ValidationException")
    assert "validation error" in r.json()["message"] and fragment in r.json()["message"]
    assert "access-9" not in r.text  # credential values are never echoed
    assert _history(client) == []


def test_unknown_profile_is_404(api: Api) -> None:
    r = api.appflow("update-connector-profile", _update(name="ghost"))
    assert r.status_code == 404
    assert r.headers["x-amzn-ErrorType"].startswith("ResourceNotFoundException")


def test_connector_rejects_credentials_401(api: Api, profile: dict[str, Any]) -> None:
    body = _update()
    body["connectorProfileConfig"]["connectorProfileCredentials"] = {
        "Salesforce": {"accessToken": "invalid-token"}
    }
    r = api.appflow("update-connector-profile", body)
    assert r.status_code == 401
    assert r.headers["x-amzn-ErrorType"].startswith("ConnectorAuthenticationException")


def test_describe_unknown_name_is_empty_and_pagination(api: Api, client: httpx.Client) -> None:
    for i in range(5):
        client.put(f"/_sandbox/appflow/resources/p{i}", json={})
    r = api.appflow("describe-connector-profiles", {"connectorProfileNames": ["nope"]})
    assert r.status_code == 200 and r.json() == {"connectorProfileDetails": []}
    seen: list[str] = []
    body: dict[str, Any] = {"maxResults": 2}
    while True:
        page = api.appflow("describe-connector-profiles", body).json()
        assert len(page["connectorProfileDetails"]) <= 2
        seen += [d["connectorProfileName"] for d in page["connectorProfileDetails"]]
        for d in page["connectorProfileDetails"]:
            assert "connectorProfileCredentials" not in d
        if "nextToken" not in page:
            break
        body = {"maxResults": 2, "nextToken": page["nextToken"]}
    assert seen == [f"p{i}" for i in range(5)]
    for bad in (0, 101):
        r = api.appflow("describe-connector-profiles", {"maxResults": bad})
        assert r.status_code == 400
        assert r.headers["x-amzn-ErrorType"].startswith("ValidationException")
    r = api.appflow("describe-connector-profiles", {"nextToken": "garbage"})
    assert r.status_code == 400


def test_signature_checks(api: Api, client: httpx.Client, profile: dict[str, Any]) -> None:
    wrong = api.appflow("describe-connector-profiles", {}, secret="not-the-secret")
    assert wrong.status_code == 403
    assert wrong.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert "signature" in wrong.json()["message"]
    unknown = api.appflow("describe-connector-profiles", {}, key="AKIAUNKNOWN000000000")
    assert unknown.status_code == 403
    assert unknown.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
    missing = client.post("/describe-connector-profiles", json={})
    assert missing.status_code == 403
    assert missing.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    # A body changed after signing no longer matches the signature.
    signed = api.appflow("describe-connector-profiles", {})
    assert signed.status_code == 200


def test_tampered_body_fails_signature(api: Api, client: httpx.Client) -> None:
    import json

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = str(client.base_url).rstrip("/") + "/describe-connector-profiles"
    req = AWSRequest(
        method="POST", url=url, data=b"{}", headers={"Content-Type": "application/json"}
    )
    SigV4Auth(
        Credentials(D.AWS_ACCESS_KEY_ID, D.AWS_SECRET_ACCESS_KEY), "appflow", "us-east-1"
    ).add_auth(req)
    r = client.post(
        "/describe-connector-profiles",
        content=json.dumps({"maxResults": 5}).encode(),
        headers=dict(req.headers.items()),
    )
    assert r.status_code == 403


def test_oob_changes_credentials_and_version(client: httpx.Client, profile: dict[str, Any]) -> None:
    view = client.post("/_sandbox/appflow/resources/sfdc-prod/oob").json()
    assert view["connectorProfileCredentials"] != _creds(0)
    assert view["version"] > profile["version"]
    assert view["history"][-1]["by"] == "oob"
    given = client.post(
        "/_sandbox/appflow/resources/sfdc-prod/oob", json={"connectorProfileCredentials": _creds(7)}
    ).json()
    assert given["connectorProfileCredentials"] == _creds(7)
    assert given["history"][-1]["secret"] == _creds(7)


def _detail(api: Api) -> dict[str, Any]:
    r = api.appflow("describe-connector-profiles", {"connectorProfileNames": ["sfdc-prod"]})
    assert r.status_code == 200, r.text
    detail: dict[str, Any] = r.json()["connectorProfileDetails"][0]
    return detail


def test_admin_refresh_moves_last_updated_at_and_nothing_else(
    api: Api, client: httpx.Client, profile: dict[str, Any]
) -> None:
    before = _detail(api)
    r = client.post("/_sandbox/appflow/resources/sfdc-prod/refresh")
    assert r.status_code == 200, r.text
    after = _detail(api)
    assert after["lastUpdatedAt"] > before["lastUpdatedAt"]
    assert {k: v for k, v in after.items() if k != "lastUpdatedAt"} == {
        k: v for k, v in before.items() if k != "lastUpdatedAt"
    }
    view = client.get("/_sandbox/appflow/resources/sfdc-prod").json()
    salesforce = view["connectorProfileCredentials"]["Salesforce"]
    assert salesforce["refreshToken"] == "refresh-0"  # kept: it minted the new access token
    assert salesforce["accessToken"] != "access-0"
    assert view["refreshes"] == 1 and view["history"] == []
    assert client.post("/_sandbox/appflow/resources/ghost/refresh").status_code == 404


def test_refresh_on_describe_refreshes_after_each_answer(api: Api, client: httpx.Client) -> None:
    r = client.put(
        "/_sandbox/appflow/resources/sfdc-prod",
        json={"connectorProfileProperties": PROPS, "refreshOnDescribe": True},
    )
    assert r.status_code == 200, r.text
    first, second = _detail(api), _detail(api)
    assert second["lastUpdatedAt"] > first["lastUpdatedAt"]
    assert "refreshOnDescribe" not in first  # a sandbox setting, never on the wire
    assert client.get("/_sandbox/appflow/resources/sfdc-prod").json()["refreshes"] == 2


def test_token_reuse_as_validation_exception_variation(api: Api, client: httpx.Client) -> None:
    r = client.put(
        "/_sandbox/appflow/resources/sfdc-prod",
        json={"connectorProfileProperties": PROPS, "tokenReuseError": "ValidationException"},
    )
    assert r.status_code == 200, r.text
    assert api.appflow("update-connector-profile", _update(n=1, token="t")).status_code == 200
    r = api.appflow("update-connector-profile", _update(n=2, token="t"))
    assert r.status_code == 400
    assert r.headers["x-amzn-ErrorType"].startswith("ValidationException")
    assert "clientToken" in r.json()["message"] and "access-2" not in r.text
    assert len(_history(client)) == 1


@pytest.mark.parametrize(
    "body",
    [{"refreshOnDescribe": "yes"}, {"tokenReuseError": "TeapotException"}],
)
def test_variation_settings_are_checked(client: httpx.Client, body: dict[str, Any]) -> None:
    r = client.put("/_sandbox/appflow/resources/sfdc-prod", json=body)
    assert r.status_code == 400 and r.json()["error"]
