"""Adobe Flow Service adapter: request shape, token cache, and every documented error body."""

from __future__ import annotations

import json
from typing import Any

import httpx

from rotator.errors import VersionConflict
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
        self.patch_error: tuple[int, dict[str, Any]] | None = None  # the GETs still answer
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
        if self.patch_error is not None and request.method == "PATCH":
            status, body = self.patch_error
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


def test_the_update_builds_on_the_engines_read_and_if_match_guards_it() -> None:
    """A rotation is GET, PATCH, GET: the update reuses the read of the etag it sends in
    If-Match (no second GET), so a change between the read and the PATCH is the API's 412."""
    fake = FakeFlow()
    api = FakeAPI(fake)

    async def go(ctx: ProviderContext) -> Any:
        adapter = AdobeFlowService(ctx)
        live = await adapter.read(spec(), MemoryJournal())
        await adapter.apply(
            spec(), secret({"username": "u", "password": CANARY}), live, want(), MemoryJournal()
        )
        fake.patch_error = (412, flow_error("1404-412", 412))  # someone edited after our read
        try:
            await adapter.apply(spec(), secret({"password": CANARY}), live, want(), MemoryJournal())
        except VersionConflict as exc:
            return exc
        return None

    conflict = run_in(api, go)
    assert [r.method for r in api.requests if "connections" in r.url.path] == [
        "GET",
        "PATCH",
        "PATCH",
    ]
    assert isinstance(conflict, VersionConflict)
    assert CANARY not in repr(conflict)


def test_evidence_is_the_etag_our_patch_returned_plus_the_marker() -> None:
    adapter_want = want()
    marked = f"ETL [{adapter_want.marker}]"
    api = FakeAPI(
        lambda request: (
            httpx.Response(200, json=connection(marked, updated_client="acme"))
            if request.method == "GET" and "connections" in request.url.path
            else FakeFlow()(request)
        )
    )

    async def go(ctx: ProviderContext) -> list[Evidence]:
        adapter = AdobeFlowService(ctx)
        live = await adapter.read(spec(), MemoryJournal())
        unquoted = ETAG.strip('"')
        return [
            adapter.carries(live, adapter_want, ETAG),  # our PATCH's etag is still live
            adapter.carries(live, adapter_want, unquoted),  # the docs show both spellings
            adapter.carries(live, adapter_want, '"later"'),  # changed again after ours
            adapter.carries(live, want(job_id="other-job")),  # another job's marker
            # response lost: our marker, but a hand edit that kept the description would look
            # the same, and updatedClient is not configured to tell them apart
            adapter.carries(live, adapter_want),
        ]

    # updatedClient "acme" is not our client id: without option updated_client it is ignored.
    assert run_in(api, go) == [
        Evidence.OURS,
        Evidence.OURS,
        Evidence.NOT_OURS,
        Evidence.NOT_OURS,
        Evidence.UNKNOWN,
    ]


def test_updated_client_is_checked_only_when_configured() -> None:
    adapter_want = want()
    marked = f"ETL [{adapter_want.marker}]"
    client = ["rotator-prod"]
    api = FakeAPI(
        lambda request: (
            httpx.Response(200, json=connection(marked, updated_client=client[0]))
            if request.method == "GET" and "connections" in request.url.path
            else FakeFlow()(request)
        )
    )
    checked = target(
        "adobe",
        BASE,
        "conn-1",
        options={"org_id": "ORG@AdobeOrg", "updated_client": "rotator-prod"},
        credentials={"client_id": "cid", "client_secret": "csecret"},
    )

    async def go(ctx: ProviderContext) -> list[Any]:
        adapter = AdobeFlowService(ctx)
        ours = await adapter.read(checked, MemoryJournal())
        client[0] = "someone-else"
        theirs = await adapter.read(checked, MemoryJournal())
        return [
            adapter.carries(ours, adapter_want),
            adapter.carries(theirs, adapter_want),
            theirs.summary["identity"],
            adapter.carries(theirs, adapter_want, ETAG),  # the etag outranks the identity
        ]

    assert run_in(api, go) == [Evidence.OURS, Evidence.NOT_OURS, "mismatch", Evidence.OURS]
