"""Adobe Flow Service adapter: request shape, token cache, and every documented error body."""

from __future__ import annotations

import json
from typing import Any

import httpx

from rotator.providers.adobe import AdobeFlowService
from rotator.providers.base import Evidence, ProviderContext

from .helpers import CANARY, FakeAPI, MemoryJournal, run_in, secret, target, want

BASE = "https://platform.adobe.io/data/foundation/flowservice"
IMS = "https://ims-na1.adobelogin.com/ims/token/v3"
ETAG = '"1400dd53-0000-0200-0000-5f3f23450000"'


def spec() -> Any:
    return target(
        "adobe",
        BASE,
        "conn-1",
        options={"org_id": "ORG@AdobeOrg", "sandbox_name": "prod"},
        credentials={"client_id": "cid", "client_secret": "csecret"},
    )


def connection(description: str = "", updated_client: str = "cid") -> dict[str, Any]:
    return {
        "items": [
            {
                "id": "conn-1",
                "etag": ETAG,
                "version": ETAG,
                "state": "enabled",
                "description": description,
                "updatedClient": updated_client,
                "auth": {
                    "specName": "Basic Authentication",
                    "params": {"username": "u", "password": "***"},
                },
            }
        ]
    }


class FakeFlow:
    def __init__(self) -> None:
        self.error: tuple[int, dict[str, Any]] | None = None
        self.mints = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ims/token/v3"):
            self.mints += 1
            return httpx.Response(
                200,
                json={
                    "access_token": f"tok{self.mints}",
                    "token_type": "bearer",
                    "expires_in": 86399,
                },
            )
        if self.error is not None:
            status, body = self.error
            return httpx.Response(status, json=body)
        if request.method == "GET":
            return httpx.Response(200, json=connection())
        return httpx.Response(200, json={"id": "conn-1", "etag": '"new-etag"'})


def flow_error(code: str, status: int) -> dict[str, Any]:
    return {
        "type": f"https://ns.adobe.com/aep/errors/FLOW-{code}",
        "title": "problem",
        "status": status,
        "report": {},
    }


def test_patch_carries_if_match_headers_and_marker_and_token_is_cached() -> None:
    fake = FakeFlow()
    api = FakeAPI(fake)

    async def go(ctx: ProviderContext) -> Any:
        adapter = AdobeFlowService(ctx)
        live = await adapter.read(spec(), MemoryJournal())
        result = await adapter.apply(
            spec(), secret({"username": "u", "password": CANARY}), live, want(), MemoryJournal()
        )
        await adapter.read(spec(), MemoryJournal())
        return live, result

    live, result = run_in(api, go)
    patch = api.calls("PATCH")[0]
    assert patch.headers["if-match"] == ETAG
    assert patch.headers["x-api-key"] == "cid"
    assert patch.headers["x-gw-ims-org-id"] == "ORG@AdobeOrg"
    assert patch.headers["x-sandbox-name"] == "prod"
    ops = json.loads(patch.content)
    assert ops[0] == {
        "op": "replace",
        "path": "/auth/params",
        "value": {"username": "u", "password": CANARY},
    }
    assert ops[1]["path"] == "/description" and want().marker in ops[1]["value"]
    assert result.version == '"new-etag"'
    assert fake.mints == 1  # three calls, one token
    assert CANARY not in repr(live) + repr(result)


def test_marker_counts_only_while_our_client_made_the_last_change() -> None:
    fake = FakeFlow()
    adapter_want = want()
    marked = f"ETL [{adapter_want.marker}]"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "connections" in request.url.path:
            return httpx.Response(200, json=connection(marked, updated_client=client[0]))
        return fake(request)

    client = ["cid"]
    api = FakeAPI(handler)

    async def go(ctx: ProviderContext) -> tuple[Evidence, Evidence]:
        adapter = AdobeFlowService(ctx)
        ours = adapter.carries(await adapter.read(spec(), MemoryJournal()), adapter_want)
        client[0] = "someone-else"
        theirs = adapter.carries(await adapter.read(spec(), MemoryJournal()), adapter_want)
        return ours, theirs

    assert run_in(api, go) == (Evidence.OURS, Evidence.NOT_OURS)
