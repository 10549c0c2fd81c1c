"""Fixtures for the sandbox's own tests: one real server per session, reset before each test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from rotator.sandbox import defaults as D
from rotator.sandbox.server import SandboxServer

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test here talks to a real server over a socket: the project's "integration" kind.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(port=0, seed=1234) as server:
        yield server


@pytest.fixture(scope="session")
def url(sandbox: SandboxServer) -> str:
    return sandbox.url


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as c:
        assert c.post("/_sandbox/reset").status_code == 200
        yield c


class Api:
    """Small helpers that speak each provider's auth dance against the sandbox."""

    def __init__(self, client: httpx.Client) -> None:
        self.c = client

    # Adobe
    def adobe_token(self) -> str:
        r = self.c.post(
            "/ims/token/v3",
            data={
                "grant_type": "client_credentials",
                "client_id": D.ADOBE_CLIENT_ID,
                "client_secret": D.ADOBE_CLIENT_SECRET,
                "scope": D.ADOBE_SCOPES,
            },
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def adobe_headers(self, token: str | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token or self.adobe_token()}",
            "x-api-key": D.ADOBE_API_KEY,
            "x-gw-ims-org-id": D.ADOBE_ORG_ID,
            "x-sandbox-name": D.ADOBE_SANDBOX_NAME,
        }

    # AppFlow
    def appflow(
        self,
        operation: str,
        body: Any,
        key: str = D.AWS_ACCESS_KEY_ID,
        secret: str = D.AWS_SECRET_ACCESS_KEY,
        raw: bytes | None = None,
    ) -> httpx.Response:
        """A request signed with botocore's SigV4Auth (bypasses botocore's client validation)."""
        data = raw if raw is not None else json.dumps(body).encode()
        url = str(self.c.base_url).rstrip("/") + "/" + operation
        req = AWSRequest(
            method="POST",
            url=url,
            data=data,
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(Credentials(key, secret), "appflow", D.AWS_REGION).add_auth(req)
        return self.c.post(f"/{operation}", content=data, headers=dict(req.headers.items()))

    # UiPath
    def uipath_token(self, scope: str | None = D.UIPATH_SCOPES) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": D.UIPATH_CLIENT_ID,
            "client_secret": D.UIPATH_CLIENT_SECRET,
        }
        if scope is not None:
            form["scope"] = scope
        r = self.c.post(f"/{D.UIPATH_ORGANIZATION}/identity_/connect/token", data=form)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    # Commerce Layer
    def cl_token(self) -> str:
        r = self.c.post(
            "/oauth/token",
            json={
                "grant_type": "client_credentials",
                "client_id": D.COMMERCELAYER_CLIENT_ID,
                "client_secret": D.COMMERCELAYER_CLIENT_SECRET,
                "scope": D.COMMERCELAYER_SCOPE,
            },
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def cl_headers(self, token: str | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token or self.cl_token()}",
            "Accept": "application/vnd.api+json",
            "Content-Type": "application/vnd.api+json",
        }

    # CipherTrust
    def ct_login(self) -> dict[str, Any]:
        r = self.c.post(
            "/api/v1/auth/tokens/",
            json={
                "grant_type": "password",
                "username": D.CIPHERTRUST_USERNAME,
                "password": D.CIPHERTRUST_PASSWORD,
            },
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def ct_headers(self, jwt: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {jwt or self.ct_login()['jwt']}"}


@pytest.fixture
def api(client: httpx.Client) -> Api:
    return Api(client)
