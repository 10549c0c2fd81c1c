"""UiPath robot-account adapter against the sandbox over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from rotator.errors import (
    AuthError,
    NotFound,
    TransportError,
)
from rotator.providers.base import Evidence, ProviderContext
from rotator.providers.uipath import UiPathRobotAccounts

from .conftest import Admin
from .helpers import MemoryJournal, run_live, secret, target, want

pytestmark = pytest.mark.integration

ROBOT = "robot-7"
DESIRED = {"groupIds": ["grp-b", "grp-c"], "displayName": "Invoice Robot"}


def seed(admin: Admin) -> None:
    admin.put("uipath", ROBOT, {"displayName": "Robot Seven", "groupIds": ["grp-a", "grp-b"]})


@pytest.fixture
def robot(admin: Admin) -> Admin:
    seed(admin)
    return admin


def spec(url: str, rid: str = ROBOT, **overrides: Any) -> Any:
    from rotator.sandbox import defaults as D

    options = {"partition_global_id": D.UIPATH_PARTITION_GLOBAL_ID, **overrides.pop("options", {})}
    credentials = {
        "client_id": D.UIPATH_CLIENT_ID,
        "client_secret": D.UIPATH_CLIENT_SECRET,
        **overrides.pop("credentials", {}),
    }
    return target(
        "uipath", D.base_urls(url)["uipath"], rid, options=options, credentials=credentials
    )


def live_state(admin: Admin) -> tuple[list[str], str]:
    view = admin.get("uipath", ROBOT)
    return sorted(view["groupIds"]), view["displayName"]


def test_happy_path_and_resume_from_journal(robot: Admin, sandbox_url: str) -> None:
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        adapter = UiPathRobotAccounts(ctx)
        live = await adapter.read(spec(sandbox_url), journal)
        assert adapter.carries(live, want()) is Evidence.NOT_OURS
        result = await adapter.apply(spec(sandbox_url), secret(DESIRED), live, want(), journal)
        after = await adapter.read(spec(sandbox_url), journal)
        fresh = UiPathRobotAccounts(ctx)  # another process, same journal
        resumed = await fresh.read(spec(sandbox_url), journal)
        return live, result, after, fresh.carries(resumed, want(), result.version)

    live, result, after, resumed = run_live(go)
    assert live_state(robot) == (["grp-b", "grp-c"], "Invoice Robot")
    assert after.version != live.version
    assert after.marker == want().marker and resumed is Evidence.OURS


def test_tenant_in_base_url(robot: Admin, sandbox_url: str) -> None:
    from rotator.sandbox import defaults as D

    async def go(ctx: ProviderContext):
        t = spec(sandbox_url)
        t = target(
            "uipath",
            f"{sandbox_url}/{D.UIPATH_ORGANIZATION}/{D.UIPATH_TENANT}/identity_",
            ROBOT,
            options=t.options,
            credentials=t.credentials,
        )
        return await UiPathRobotAccounts(ctx).read(t, MemoryJournal())

    assert run_live(go).summary["displayName"] == "Robot Seven"


@pytest.mark.parametrize(
    ("overrides", "cls", "status"),
    [
        ({"credentials": {"client_secret": "wrong"}}, AuthError, 400),
        (
            {"options": {"partition_global_id": "00000000-0000-0000-0000-000000000000"}},
            NotFound,
            404,
        ),
        ({"options": {"scope": "PM.Unknown"}}, AuthError, 400),
    ],
)
def test_errors(
    robot: Admin, sandbox_url: str, overrides: dict[str, Any], cls: type[Exception], status: int
) -> None:
    async def go(ctx: ProviderContext):
        await UiPathRobotAccounts(ctx).read(spec(sandbox_url, **overrides), MemoryJournal())

    with pytest.raises(cls) as info:
        run_live(go)
    assert info.value.status == status


def test_unknown_robot_is_not_found(robot: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        await UiPathRobotAccounts(ctx).read(spec(sandbox_url, "nobody"), MemoryJournal())

    with pytest.raises(NotFound, match="nobody"):
        run_live(go)


def test_read_only_scope_cannot_update(robot: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        adapter = UiPathRobotAccounts(ctx)
        t = spec(sandbox_url, options={"scope": "PM.RobotAccount.Read"})
        live = await adapter.read(t, MemoryJournal())
        await adapter.apply(t, secret(DESIRED), live, want(), MemoryJournal())

    with pytest.raises(AuthError) as info:
        run_live(go)
    assert info.value.status == 403
    assert live_state(robot) == (["grp-a", "grp-b"], "Robot Seven")


def test_drop_response_is_recognised_as_ours(robot: Admin, sandbox_url: str) -> None:
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        adapter = UiPathRobotAccounts(ctx)
        live = await adapter.read(spec(sandbox_url), journal)
        robot.faults(
            {"provider": "uipath", "kind": "drop_response", "methods": ["PUT"], "count": 1}
        )
        with pytest.raises(TransportError) as info:
            await adapter.apply(spec(sandbox_url), secret(DESIRED), live, want(), journal)
        assert info.value.maybe_applied
        after = await adapter.read(spec(sandbox_url), journal)
        return live, after, adapter.carries(after, want())

    live, after, verdict = run_live(go)
    assert verdict is Evidence.OURS and after.version != live.version
    assert live_state(robot) == (["grp-b", "grp-c"], "Invoice Robot")


def test_out_of_band_edit_is_not_ours(robot: Admin, sandbox_url: str) -> None:
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        adapter = UiPathRobotAccounts(ctx)
        live = await adapter.read(spec(sandbox_url), journal)
        await adapter.apply(spec(sandbox_url), secret(DESIRED), live, want(), journal)
        ours = await adapter.read(spec(sandbox_url), journal)
        robot.oob("uipath", ROBOT)
        after = await adapter.read(spec(sandbox_url), journal)
        return ours, after, adapter.carries(after, want())

    ours, after, verdict = run_live(go)
    assert after.version != ours.version
    assert verdict is Evidence.NOT_OURS
