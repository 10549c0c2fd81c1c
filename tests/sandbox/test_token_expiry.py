"""A bearer token past its lifetime gets each API's own 401, while a fresh one still works.

One test for the four token APIs; AppFlow signs every request with SigV4 and has no tokens.
Provider-specific token behaviour (CipherTrust's refresh grant, malformed or missing tokens)
stays in ``test_<provider>.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from rotator.sandbox import defaults as D
from tests.sandbox.conftest import Api


def _adobe_401(r: httpx.Response) -> None:
    assert r.json()["error_code"] == "401013"


def _uipath_401(r: httpx.Response) -> None:
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def _commercelayer_401(r: httpx.Response) -> None:
    assert [e["code"] for e in r.json()["errors"]] == ["UNAUTHORIZED"]


def _ciphertrust_401(r: httpx.Response) -> None:
    body = r.json()
    assert set(body) == {"code", "codeDesc", "message", "requestID"}
    assert body["codeDesc"] == "NCERRUnauthorizedAccess" and "expired" in body["message"]


@dataclass(frozen=True)
class Expiry:
    provider: str
    seed: list[tuple[str, dict[str, Any]]]  # admin PUTs that create the resource
    path: str  # a GET the seeded resource answers
    headers: Callable[[Api], dict[str, str]]  # mints a fresh token
    unauthorized: Callable[[httpx.Response], None]  # the API's own 401 shape


CASES = [
    Expiry(
        "adobe",
        [("/_sandbox/adobe/resources/c1", {"auth": {"params": {"password": "p0"}}})],
        "/data/foundation/flowservice/connections/c1",
        lambda api: api.adobe_headers(),
        _adobe_401,
    ),
    Expiry(
        "uipath",
        [("/_sandbox/uipath/resources/robot-1", {"displayName": "Robot One", "groupIds": ["g-a"]})],
        f"/{D.UIPATH_ORGANIZATION}/identity_/api/RobotAccount/{D.UIPATH_PARTITION_GLOBAL_ID}/robot-1",
        lambda api: {"Authorization": f"Bearer {api.uipath_token()}"},
        _uipath_401,
    ),
    Expiry(
        "commercelayer",
        [("/_sandbox/commercelayer/resources/cred1", {"name": "integration"})],
        "/api/api_credentials/cred1",
        lambda api: api.cl_headers(),
        _commercelayer_401,
    ),
    Expiry(
        "ciphertrust",
        [
            ("/_sandbox/ciphertrust/connections/conn-a", {"name": "sf-a"}),
            ("/_sandbox/ciphertrust/resources/org-1", {"connection": "conn-a"}),
        ],
        "/api/v1/cckm/sfdc/organizations/org-1",
        lambda api: api.ct_headers(),
        _ciphertrust_401,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.provider)
def test_expired_token_is_the_apis_own_401(client: httpx.Client, api: Api, case: Expiry) -> None:
    for path, body in case.seed:
        assert client.put(path, json=body).status_code == 200
    # A whole second: the first GET must land inside the lifetime even on a loaded machine.
    client.put("/_sandbox/config", json={"token_ttl": {case.provider: 1}})
    headers = case.headers(api)
    assert client.get(case.path, headers=headers).status_code == 200

    time.sleep(1.2)
    r = client.get(case.path, headers=headers)

    assert r.status_code == 401, r.text
    case.unauthorized(r)
    assert client.get(case.path, headers=case.headers(api)).status_code == 200
