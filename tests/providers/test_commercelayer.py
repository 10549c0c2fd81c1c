from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from rotator.errors import (
    BadRequest,
    TransportError,
)
from rotator.providers.base import Evidence, ProviderContext
from rotator.providers.budget import LocalRateLimiter, RateBudget
from rotator.providers.commercelayer import JSONAPI, LIMITS, CommerceLayer, state_digest

from .helpers import CANARY, Clock, FakeAPI, MemoryJournal, body, run_in, secret, target, want

BASE = "https://provisioning.commercelayer.io/api"
AUTH = "https://auth.commercelayer.io/oauth/token"
CRED_ID = "wLKoRdWxyz"
CREDS = {"client_id": "prov-id", "client_secret": "prov-secret"}


class FakeProvisioning:
    def __init__(self) -> None:
        self.resource: dict[str, Any] = {
            "id": CRED_ID,
            "type": "api_credentials",
            "attributes": {
                "name": "Storefront",
                "kind": "sales_channel",
                "confidential": False,
                "redirect_uri": None,
                "client_id": "cl-client-id",
                "client_secret": None,
                "scopes": "market:all",
                "expires_in": 14400,
                "mode": "test",
                "custom": False,
                "created_at": "2024-01-01T00:00:00.000Z",
                "updated_at": "2024-01-01T00:00:00.000Z",
                "reference": None,
                "reference_origin": None,
                "metadata": {"team": "web"},
            },
            "relationships": {"role": {"links": {}}},
        }
        self.valid: set[str] = set()
        self.minted = 0
        self.role: str | None = None
        self.error: tuple[int, dict[str, Any], dict[str, str]] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == AUTH:
            payload = body(request)
            assert payload["grant_type"] == "client_credentials"
            assert "scope" not in payload  # the documented grant has none
            if payload["client_secret"] != "prov-secret":
                return httpx.Response(401, json={"error": "invalid_client"})
            self.minted += 1
            token = f"tok{self.minted}"
            self.valid.add(token)
            return httpx.Response(
                200,
                json={
                    "access_token": token,
                    "token_type": "bearer",
                    "expires_in": 14400,
                    "scope": "provisioning-api",
                },
            )
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.valid:
            return httpx.Response(
                401,
                json={
                    "errors": [
                        {
                            "title": "Invalid token",
                            "detail": "expired",
                            "code": "UNAUTHORIZED",
                            "status": "401",
                        }
                    ]
                },
            )
        if request.headers.get("accept") != JSONAPI:
            return httpx.Response(406, json={"errors": [{"title": "Not acceptable"}]})
        if request.method == "PATCH" and request.headers.get("content-type") != JSONAPI:
            return httpx.Response(415, json={"errors": [{"title": "Unsupported media type"}]})
        if self.error:
            status, payload, headers = self.error
            return httpx.Response(status, json=payload, headers=headers)
        if not request.url.path.endswith(f"/api_credentials/{CRED_ID}"):
            return httpx.Response(
                404, json={"errors": [{"title": "Not found", "code": "NOT_FOUND"}]}
            )
        if request.method == "GET":
            doc = {"data": json.loads(json.dumps(self.resource))}
            if request.url.params.get("include") == "role" and self.role:
                doc["data"]["relationships"]["role"]["data"] = {"type": "roles", "id": self.role}
                doc["included"] = [{"type": "roles", "id": self.role, "attributes": {}}]
            return httpx.Response(200, json=doc)
        data = body(request)["data"]
        assert data["type"] == "api_credentials" and data["id"] == CRED_ID
        self.resource["attributes"].update(data["attributes"])
        self.resource["attributes"]["updated_at"] = "2024-01-02T00:00:00.000Z"
        if "relationships" in data:
            self.role = data["relationships"]["role"]["data"]["id"]
        return httpx.Response(200, json={"data": self.resource})


def spec() -> Any:
    return target("commercelayer", BASE, CRED_ID, credentials=CREDS)


def adapter_for(ctx: ProviderContext) -> CommerceLayer:
    return CommerceLayer(ctx)


def test_token_request_is_json_without_a_scope() -> None:
    # Token caching and the 401 re-mint are in test_contract.py.
    fake = FakeProvisioning()
    api = FakeAPI(fake)
    clock = Clock()

    async def go(ctx: ProviderContext):
        await adapter_for(ctx).read(spec(), MemoryJournal())

    run_in(api, go, clock)
    mint = api.calls("POST", "/oauth/token")[0]
    assert body(mint) == {
        "grant_type": "client_credentials",
        "client_id": "prov-id",
        "client_secret": "prov-secret",
    }
    assert mint.headers["content-type"] == "application/json"


def test_custom_auth_url() -> None:
    fake = FakeProvisioning()
    api = FakeAPI(fake)
    custom = "https://auth.example.test/oauth/token"

    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == custom:
            request = httpx.Request("POST", AUTH, headers=request.headers, content=request.content)
        return fake(request)

    api.handler = handler

    async def go(ctx: ProviderContext):
        t = target("commercelayer", BASE, CRED_ID, options={"auth_url": custom}, credentials=CREDS)
        await adapter_for(ctx).read(t, MemoryJournal())

    run_in(api, go)
    assert str(api.requests[0].url) == custom


def test_read_version_marker_and_media_types() -> None:
    fake = FakeProvisioning()
    fake.role = "role-1"
    attributes = fake.resource["attributes"]
    attributes["metadata"]["rotator"] = "rotator:v1:abc"
    attributes["metadata"]["rotator_digest"] = state_digest(attributes, "role-1")
    api = FakeAPI(fake)

    async def go(ctx: ProviderContext):
        adapter = adapter_for(ctx)
        live = await adapter.read(spec(), MemoryJournal())
        fake.role = "role-2"  # an out-of-band change of something an update sets
        return live, await adapter.read(spec(), MemoryJournal())

    live, changed = run_in(api, go)
    assert live.version == "2024-01-01T00:00:00.000Z"
    assert live.marker == "rotator:v1:abc"
    assert changed.marker is None
    assert live.summary["metadata_keys"] == ["rotator", "rotator_digest", "team"]
    get = api.calls("GET")[0]
    assert get.headers["accept"] == JSONAPI
    assert get.url.params["include"] == "role"
    assert "content-type" not in get.headers


def test_apply_patch_shape_merges_metadata_and_sets_role() -> None:
    fake = FakeProvisioning()
    api = FakeAPI(fake)
    fields = {
        "name": "Storefront " + CANARY,
        "reference": "ref-1",
        "role_id": "role-9",
        "metadata": {"owner": CANARY},
        "expires_in": 7200,
    }

    async def go(ctx: ProviderContext):
        adapter = adapter_for(ctx)
        live = await adapter.read(spec(), MemoryJournal())
        result = await adapter.apply(spec(), secret(fields), live, want(), MemoryJournal())
        after = await adapter.read(spec(), MemoryJournal())
        return live, result, after

    live, result, after = run_in(api, go)
    patch = api.calls("PATCH")[0]
    assert patch.headers["content-type"] == JSONAPI
    assert patch.headers["accept"] == JSONAPI
    assert body(patch) == {
        "data": {
            "type": "api_credentials",
            "id": CRED_ID,
            "attributes": {
                "name": fields["name"],
                "reference": "ref-1",
                "expires_in": 7200,
                "metadata": {
                    "team": "web",
                    "owner": CANARY,
                    "rotator": want().marker,
                    "rotator_digest": body(patch)["data"]["attributes"]["metadata"][
                        "rotator_digest"
                    ],
                },
            },
            "relationships": {"role": {"data": {"type": "roles", "id": "role-9"}}},
        }
    }
    assert fake.role == "role-9"
    assert result.version == "2024-01-02T00:00:00.000Z"
    assert after.marker == want().marker
    for value in (live, result, after):
        assert CANARY not in repr(value)


def test_read_only_secret_fields_are_rejected_before_any_call() -> None:
    fake = FakeProvisioning()
    api = FakeAPI(fake)

    async def go(ctx: ProviderContext):
        adapter = adapter_for(ctx)
        live = await adapter.read(spec(), MemoryJournal())
        await adapter.apply(
            spec(), secret({"client_secret": CANARY}), live, want(), MemoryJournal()
        )

    with pytest.raises(BadRequest, match="client_secret") as info:
        run_in(api, go)
    assert CANARY not in str(info.value)
    assert not api.calls("PATCH")


def test_transport_failure_on_patch_may_have_applied() -> None:
    fake = FakeProvisioning()
    api = FakeAPI(fake)

    async def go(ctx: ProviderContext):
        adapter = adapter_for(ctx)
        live = await adapter.read(spec(), MemoryJournal())
        api.fail_next[("PATCH", CRED_ID)] = httpx.ReadTimeout("slow")
        with pytest.raises(TransportError) as info:
            await adapter.apply(spec(), secret({"reference": "r"}), live, want(), MemoryJournal())
        assert info.value.maybe_applied
        api.fail_next[("GET", CRED_ID)] = httpx.ConnectError("refused")
        with pytest.raises(TransportError) as info:
            await adapter.read(spec(), MemoryJournal())
        assert not info.value.maybe_applied

    run_in(api, go)


def test_carries_compares_markers() -> None:
    from rotator.providers.base import RemoteState

    adapter = CommerceLayer(ProviderContext())
    assert adapter.carries(RemoteState("v", want().marker), want()) is Evidence.OURS
    assert adapter.carries(RemoteState("v", want().marker), want(), "v") is Evidence.OURS
    assert adapter.carries(RemoteState("v2", want().marker), want(), "v") is Evidence.NOT_OURS
    assert adapter.carries(RemoteState("v", "rotator:v9:zzz"), want()) is Evidence.NOT_OURS
    assert adapter.carries(RemoteState("v", None), want()) is Evidence.NOT_OURS


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def sends_per_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


@pytest.mark.parametrize(
    ("kind", "count", "burst", "per_minute"),
    [("write", 260, 50, 200), ("read", 1100, 250, 1000)],
)
def test_rate_budget_keeps_under_documented_limits(
    kind: str, count: int, burst: int, per_minute: int
) -> None:
    fake = FakeTime()
    budget = RateBudget(LIMITS, clock=fake.clock, sleep=fake.sleep, slack=0.0)
    times: list[float] = []

    async def go() -> None:
        for _ in range(count):
            await budget.acquire(("provisioning.commercelayer.io", kind))
            times.append(fake.now)
            fake.now += 0.001  # requests take a little time

    asyncio.run(go())
    assert sends_per_window(times, 10.0) <= burst
    assert sends_per_window(times, 60.0) <= per_minute
    # It waited rather than failing, and not more than needed: the first burst is immediate.
    assert times[burst - 1] < 1.0 and times[burst] >= 10.0
    assert budget.waited > 0


def test_rate_budget_is_per_host_and_method_class() -> None:
    fake = FakeTime()
    budget = RateBudget(LIMITS, clock=fake.clock, sleep=fake.sleep)

    async def go() -> None:
        for _ in range(50):
            await budget.acquire(("a", "write"))
        await budget.acquire(("a", "read"))
        await budget.acquire(("b", "write"))

    asyncio.run(go())
    assert fake.slept == []
    assert budget.delay(("a", "write")) > 9.0


def test_rate_budget_serialises_concurrent_callers() -> None:
    fake = FakeTime()
    budget = RateBudget(LIMITS, clock=fake.clock, sleep=fake.sleep, slack=0.0)
    times: list[float] = []

    async def one() -> None:
        await budget.acquire(("a", "write"))
        times.append(fake.now)

    async def go() -> None:
        await asyncio.gather(*(one() for _ in range(120)))

    asyncio.run(go())
    assert sends_per_window(times, 10.0) <= 50


def test_adapter_calls_go_through_the_budget() -> None:
    fake = FakeProvisioning()
    api = FakeAPI(fake)
    budget_time = FakeTime()

    async def go(ctx: ProviderContext):
        adapter = CommerceLayer(
            ctx, RateBudget(LIMITS, clock=budget_time.clock, sleep=budget_time.sleep)
        )
        for _ in range(3):
            await adapter.read(spec(), MemoryJournal())
        return adapter.budget

    budget = run_in(api, go)
    assert budget.delay(("provisioning.commercelayer.io", "read")) == 0.0
    assert isinstance(budget.limiter, LocalRateLimiter)
    assert budget.limiter.count("provisioning.commercelayer.io:read") == 3
    assert budget.limiter.count("auth.commercelayer.io:auth") == 1


def test_out_of_band_edit_after_ours_hides_the_marker() -> None:
    fake = FakeProvisioning()
    api = FakeAPI(fake)

    async def go(ctx: ProviderContext):
        adapter = adapter_for(ctx)
        live = await adapter.read(spec(), MemoryJournal())
        result = await adapter.apply(
            spec(), secret({"reference": "ours"}), live, want(), MemoryJournal()
        )
        ours = await adapter.read(spec(), MemoryJournal())
        assert adapter.carries(ours, want(), result.version) is Evidence.OURS
        # someone changes the reference and adds metadata, keeping our metadata keys
        attributes = fake.resource["attributes"]
        attributes["reference"] = "theirs"
        attributes["metadata"] = {**attributes["metadata"], "oob": "x"}
        attributes["updated_at"] = "2024-01-03T00:00:00.000Z"
        after = await adapter.read(spec(), MemoryJournal())
        assert after.version != ours.version
        assert after.marker is None
        assert adapter.carries(after, want()) is Evidence.NOT_OURS
        assert adapter.carries(after, want(), result.version) is Evidence.NOT_OURS

    run_in(api, go)


def test_no_rate_budget_wait_between_the_fresh_read_and_the_patch() -> None:
    # A wait for the write budget between compare and write would widen the window in which an
    # out-of-band edit is silently overwritten (the API has no compare-and-set).
    fake = FakeProvisioning()
    api = FakeAPI(fake)
    order: list[str] = []

    class RecordingBudget(RateBudget):
        async def acquire(self, *keys: tuple[str, str]) -> None:
            order.append("budget:" + "+".join(k[1] for k in keys))
            await super().acquire(*keys)

    original = api.handler

    def handler(request: httpx.Request) -> httpx.Response:
        if "api_credentials" in request.url.path:
            order.append(f"http:{request.method}")
        return original(request)

    api.handler = handler

    async def go(ctx: ProviderContext) -> None:
        adapter = CommerceLayer(ctx, RecordingBudget(LIMITS))
        live = await adapter.read(spec(), MemoryJournal())
        order.clear()
        await adapter.apply(spec(), secret({"reference": "r"}), live, want(), MemoryJournal())

    run_in(api, go)
    # The fresh read and the PATCH take their places together, then go out back to back.
    assert order == ["budget:write+read", "http:GET", "http:PATCH"]
