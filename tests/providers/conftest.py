"""Contract-test fixtures: one real sandbox server for this directory, reset before each test.

The sandbox is imported lazily so the unit tests here run without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    from rotator.sandbox.server import SandboxServer

    with SandboxServer(port=0, seed=4321) as server:
        yield server.url


class Admin:
    """The sandbox's /_sandbox admin API."""

    def __init__(self, client: httpx.Client) -> None:
        self.c = client

    def put(self, provider: str, rid: str, body: dict[str, Any], kind: str = "resources") -> Any:
        response = self.c.put(f"/_sandbox/{provider}/{kind}/{rid}", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, provider: str, rid: str, kind: str = "resources") -> Any:
        response = self.c.get(f"/_sandbox/{provider}/{kind}/{rid}")
        assert response.status_code == 200, response.text
        return response.json()

    def oob(
        self, provider: str, rid: str, body: dict[str, Any] | None = None, kind: str = "resources"
    ) -> Any:
        response = self.c.post(f"/_sandbox/{provider}/{kind}/{rid}/oob", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def faults(self, *rules: dict[str, Any]) -> None:
        response = self.c.put("/_sandbox/faults", json={"rules": list(rules)})
        assert response.status_code == 200, response.text

    def config(self, body: dict[str, Any]) -> None:
        response = self.c.put("/_sandbox/config", json=body)
        assert response.status_code == 200, response.text

    def client(self, provider: str, client_id: str, body: dict[str, Any]) -> None:
        response = self.c.put(f"/_sandbox/{provider}/clients/{client_id}", json=body)
        assert response.status_code == 200, response.text

    def stats(self) -> Any:
        return self.c.get("/_sandbox/stats").json()


@pytest.fixture
def admin(sandbox_url: str) -> Iterator[Admin]:
    with httpx.Client(base_url=sandbox_url, timeout=10) as client:
        assert client.post("/_sandbox/reset").status_code == 200
        yield Admin(client)
