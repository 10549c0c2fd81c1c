from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from rotator.errors import (
    AuthError,
    BadRequest,
    TransportError,
)
from rotator.providers.base import Evidence, ProviderContext
from rotator.providers.uipath import STEP, UiPathRobotAccounts

from .helpers import CANARY, Clock, FakeAPI, MemoryJournal, body, run_in, secret, target, want

BASE = "https://uipath.example.com/org/tenant/identity_"
PARTITION = "11111111-2222-3333-4444-555555555555"
ROBOT = "robot-1"
CREDS = {"client_id": "app-id", "client_secret": "app-secret"}


class FakeIdentity:
    def __init__(self, journal: MemoryJournal | None = None) -> None:
        self.account: dict[str, Any] = {
            "id": ROBOT,
            "name": "robot-1",
            "displayName": "Robot One",
            "creationTime": "2024-01-01T00:00:00Z",
            "lastModificationTime": "2024-01-01T00:00:00Z",
            "groupIds": ["AAAA-1", "bbbb-2"],
        }
        self.valid: set[str] = set()
        self.minted = 0
        self.modifications = 0
        self.error: tuple[int, dict[str, Any]] | None = None
        self.journal = journal
        self.journal_at_put: Any = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/connect/token"):
            form = parse_qs(request.content.decode())
            assert form["grant_type"] == ["client_credentials"]
            if form["client_secret"] != ["app-secret"]:
                return httpx.Response(400, json={"error": "invalid_client"})
            self.minted += 1
            token = f"tok{self.minted}"
            self.valid.add(token)
            return httpx.Response(
                200,
                json={
                    "access_token": token,
                    "expires_in": 3600,
                    "token_type": "Bearer",
                    "scope": form["scope"][0],
                },
            )
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.valid:
            return httpx.Response(401)
        if self.error:
            return httpx.Response(self.error[0], json=self.error[1])
        if request.method == "GET" and path.endswith(f"/api/RobotAccount/{PARTITION}/{ROBOT}"):
            return httpx.Response(200, json=self.account)
        if request.method == "PUT" and path.endswith(f"/api/RobotAccount/{ROBOT}"):
            if self.journal is not None:
                self.journal_at_put = self.journal.get(STEP)
            payload = body(request)
            assert payload["partitionGlobalId"] == PARTITION
            groups = [g for g in self.account["groupIds"] if g not in payload["groupIDsToRemove"]]
            groups += [g for g in payload["groupIDsToAdd"] if g not in groups]
            self.modifications += 1
            self.account.update(
                groupIds=groups,
                displayName=payload["displayName"],
                lastModificationTime=f"2024-01-02T00:00:{self.modifications:02d}Z",
            )
            return httpx.Response(
                200, json={k: v for k, v in self.account.items() if k != "lastModificationTime"}
            )
        return httpx.Response(404, json={"message": "not found"})


def spec(options: dict[str, Any] | None = None):
    return target(
        "uipath",
        BASE,
        ROBOT,
        options={"partition_global_id": PARTITION, **(options or {})},
        credentials=CREDS,
    )


def test_token_is_cached_and_requested_with_scope() -> None:
    fake = FakeIdentity()
    api = FakeAPI(fake)
    clock = Clock()

    async def go(ctx: ProviderContext):
        adapter = UiPathRobotAccounts(ctx)
        for _ in range(5):
            await adapter.read(spec(), MemoryJournal())

    run_in(api, go, clock)
    assert fake.minted == 1
    token_requests = api.calls("POST", "/connect/token")
    form = parse_qs(token_requests[0].content.decode())
    assert form["scope"] == ["PM.RobotAccount"] and form["client_id"] == ["app-id"]
    assert token_requests[0].url == f"{BASE}/connect/token"


def test_custom_scope_and_expiry_remint() -> None:
    fake = FakeIdentity()
    api = FakeAPI(fake)
    clock = Clock()

    async def go(ctx: ProviderContext):
        adapter = UiPathRobotAccounts(ctx)
        target_ = spec({"scope": "PM.RobotAccount.Read PM.RobotAccount.Write"})
        await adapter.read(target_, MemoryJournal())
        clock.advance(3000)
        await adapter.read(target_, MemoryJournal())
        assert fake.minted == 1
        clock.advance(600)  # past expiry minus the refresh margin
        await adapter.read(target_, MemoryJournal())

    run_in(api, go, clock)
    assert fake.minted == 2
    form = parse_qs(api.calls("POST", "/connect/token")[0].content.decode())
    assert form["scope"] == ["PM.RobotAccount.Read PM.RobotAccount.Write"]


def test_bad_client_secret_is_auth_error() -> None:
    fake = FakeIdentity()
    api = FakeAPI(fake)

    async def go(ctx: ProviderContext):
        bad = target(
            "uipath",
            BASE,
            ROBOT,
            options={"partition_global_id": PARTITION},
            credentials={"client_id": "app-id", "client_secret": "wrong-" + CANARY},
        )
        await UiPathRobotAccounts(ctx).read(bad, MemoryJournal())

    with pytest.raises(AuthError) as info:
        run_in(api, go)
    assert CANARY not in str(info.value)


def test_read_summary_and_state_marker() -> None:
    fake = FakeIdentity()
    api = FakeAPI(fake)

    async def go(ctx: ProviderContext):
        return await UiPathRobotAccounts(ctx).read(spec(), MemoryJournal())

    live = run_in(api, go)
    assert live.version == "2024-01-01T00:00:00Z"
    assert live.marker and live.marker.startswith("state:")
    assert live.summary["groupIds"] == ["AAAA-1", "bbbb-2"]
    assert live.summary["displayName"] == "Robot One"
    assert (
        api.calls("GET")[0].url.path
        == f"/org/tenant/identity_/api/RobotAccount/{PARTITION}/{ROBOT}"
    )


def test_apply_sends_deltas_and_journals_first_then_carries() -> None:
    journal = MemoryJournal()
    fake = FakeIdentity(journal)
    api = FakeAPI(fake)
    desired = {"groupIds": ["aaaa-1", "cccc-3"], "displayName": "Robot Uno"}

    async def go(ctx: ProviderContext):
        adapter = UiPathRobotAccounts(ctx)
        live = await adapter.read(spec(), journal)
        assert adapter.carries(live, want()) is Evidence.NOT_OURS
        await adapter.apply(spec(), secret(desired), live, want(), journal)
        after = await adapter.read(spec(), journal)
        assert adapter.carries(after, want()) is Evidence.OURS
        assert after.version != live.version
        # A fresh process with the same journal also sees it; another job's journal does not.
        other = UiPathRobotAccounts(ctx)
        assert other.carries(await other.read(spec(), journal), want()) is Evidence.OURS
        assert other.carries(await other.read(spec(), MemoryJournal()), want()) is Evidence.NOT_OURS

    run_in(api, go)
    put = body(api.calls("PUT")[0])
    assert put == {
        "partitionGlobalId": PARTITION,
        "displayName": "Robot Uno",
        "groupIDsToAdd": ["cccc-3"],  # AAAA-1 matches aaaa-1: GUIDs ignore case
        "groupIDsToRemove": ["bbbb-2"],
    }
    assert fake.journal_at_put and fake.journal_at_put["marker"] == want().marker
    assert api.calls("PUT")[0].headers["authorization"].startswith("Bearer ")


def test_display_name_defaults_to_live_and_replay_converges() -> None:
    journal = MemoryJournal()
    fake = FakeIdentity()
    api = FakeAPI(fake)
    desired = {"groupIds": ["bbbb-2", "dddd-4"]}

    async def go(ctx: ProviderContext):
        adapter = UiPathRobotAccounts(ctx)
        live = await adapter.read(spec(), journal)
        await adapter.apply(spec(), secret(desired), live, want(), journal)
        # replay (e.g. after a lost response) from a fresh read: empty deltas, same state
        again = await adapter.read(spec(), journal)
        await adapter.apply(spec(), secret(desired), again, want(), journal)
        return await adapter.read(spec(), journal)

    final = run_in(api, go)
    assert final.marker == want().marker
    assert sorted(fake.account["groupIds"]) == ["bbbb-2", "dddd-4"]
    assert fake.account["displayName"] == "Robot One"
    second = body(api.calls("PUT")[1])
    assert second["groupIDsToAdd"] == [] and second["groupIDsToRemove"] == []


def test_out_of_band_change_is_not_ours() -> None:
    journal = MemoryJournal()
    fake = FakeIdentity()
    api = FakeAPI(fake)

    async def go(ctx: ProviderContext):
        adapter = UiPathRobotAccounts(ctx)
        live = await adapter.read(spec(), journal)
        await adapter.apply(spec(), secret({"groupIds": ["x-1"]}), live, want(), journal)
        fake.account["groupIds"].append("intruder")
        fake.account["lastModificationTime"] = "2025-01-01T00:00:00Z"
        after = await adapter.read(spec(), journal)
        assert after.version == "2025-01-01T00:00:00Z"
        assert adapter.carries(after, want()) is Evidence.NOT_OURS

    run_in(api, go)


def test_invalid_desired_state_is_bad_request() -> None:
    fake = FakeIdentity()
    api = FakeAPI(fake)

    async def go(ctx: ProviderContext):
        adapter = UiPathRobotAccounts(ctx)
        live = await adapter.read(spec(), MemoryJournal())
        await adapter.apply(spec(), secret({"groupIds": CANARY}), live, want(), MemoryJournal())

    with pytest.raises(BadRequest) as info:
        run_in(api, go)
    assert CANARY not in str(info.value)
    assert not api.calls("PUT")


def test_transport_failures_flag_maybe_applied_only_for_put() -> None:
    fake = FakeIdentity()
    api = FakeAPI(fake)

    async def go(ctx: ProviderContext):
        adapter = UiPathRobotAccounts(ctx)
        await adapter.read(spec(), MemoryJournal())
        api.fail_next[("GET", ROBOT)] = httpx.ReadTimeout("slow")
        with pytest.raises(TransportError) as info:
            await adapter.read(spec(), MemoryJournal())
        assert not info.value.maybe_applied
        live = await adapter.read(spec(), MemoryJournal())
        api.fail_next[("PUT", ROBOT)] = httpx.ReadTimeout("slow")
        with pytest.raises(TransportError) as info:
            await adapter.apply(spec(), secret({"groupIds": ["g"]}), live, want(), MemoryJournal())
        assert info.value.maybe_applied

    run_in(api, go)


def test_partition_is_required() -> None:
    api = FakeAPI(FakeIdentity())

    async def go(ctx: ProviderContext):
        await UiPathRobotAccounts(ctx).read(
            target("uipath", BASE, ROBOT, credentials=CREDS), MemoryJournal()
        )

    with pytest.raises(BadRequest, match="partition_global_id"):
        run_in(api, go)
