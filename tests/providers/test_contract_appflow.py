"""AppFlow adapter against the sandbox over real HTTP (SigV4 verified by the sandbox)."""

from __future__ import annotations

from typing import Any

import pytest

from rotator.errors import (
    AuthError,
    BadRequest,
    NotFound,
    TransportError,
    VersionConflict,
)
from rotator.providers.appflow import AppFlow
from rotator.providers.base import Evidence, ProviderContext

from .conftest import Admin
from .helpers import CANARY, MemoryJournal, run_live, secret, target, want

pytestmark = pytest.mark.integration

PROFILE = "sfdc-prod"
PROPS = {"Salesforce": {"instanceUrl": "https://acme.my.salesforce.com"}}
NEW = {"accessToken": "access-" + CANARY, "refreshToken": "refresh-" + CANARY}


def seed(admin: Admin, **variation: Any) -> None:
    admin.put(
        "appflow",
        PROFILE,
        {
            "connectorProfileProperties": PROPS,
            "connectorProfileCredentials": {
                "Salesforce": {"accessToken": "a0", "refreshToken": "r0"}
            },
            **variation,
        },
    )


@pytest.fixture
def profile(admin: Admin) -> Admin:
    seed(admin)
    return admin


def spec(url: str, name: str = PROFILE, **credentials: str) -> Any:
    from rotator.sandbox import defaults as D

    creds = credentials or {
        "aws_access_key_id": D.AWS_ACCESS_KEY_ID,
        "aws_secret_access_key": D.AWS_SECRET_ACCESS_KEY,
    }
    return target("appflow", url, name, options={"region": D.AWS_REGION}, credentials=creds)


def live_credentials(admin: Admin) -> Any:
    return admin.get("appflow", PROFILE)["connectorProfileCredentials"]


def test_happy_path(profile: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        result = await adapter.apply(spec(sandbox_url), secret(NEW), live, want(), MemoryJournal())
        after = await adapter.read(spec(sandbox_url), MemoryJournal())
        return live, result, after, adapter.carries(after, want(), result.version)

    live, result, after, verdict = run_live(go)
    assert live_credentials(profile) == {"Salesforce": NEW}
    assert after.summary["lastUpdatedAt"] > live.summary["lastUpdatedAt"]
    assert after.summary["connectorProfileProperties"] == PROPS
    assert verdict is Evidence.OURS
    for value in (live, result, after):
        assert CANARY not in repr(value)


def test_unknown_profile_is_not_found(profile: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        await AppFlow(ctx).read(spec(sandbox_url, "nope"), MemoryJournal())

    with pytest.raises(NotFound):
        run_live(go)


@pytest.mark.parametrize(
    ("fields", "cls", "code"),
    [
        (
            {"accessToken": ["not", "a", "string"], "refreshToken": "r-" + CANARY},
            BadRequest,
            "ValidationException",
        ),
        ({"accessToken": "invalid-" + CANARY}, AuthError, "ConnectorAuthenticationException"),
    ],
)
def test_rejected_credentials(
    profile: Admin, sandbox_url: str, fields: dict[str, Any], cls: type[Exception], code: str
) -> None:
    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        await adapter.apply(spec(sandbox_url), secret(fields), live, want(), MemoryJournal())

    with pytest.raises(cls) as info:
        run_live(go)
    assert info.value.code == code
    assert CANARY not in str(info.value)
    assert live_credentials(profile)["Salesforce"]["accessToken"] == "a0"


def test_same_token_different_parameters_is_conflict(profile: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        await adapter.apply(spec(sandbox_url), secret(NEW), live, want(), MemoryJournal())
        other = {"accessToken": "other", "refreshToken": "other"}
        await adapter.apply(spec(sandbox_url), secret(other), live, want(), MemoryJournal())

    with pytest.raises(VersionConflict) as info:
        run_live(go)
    assert info.value.code == "ConflictException"
    assert live_credentials(profile) == {"Salesforce": NEW}


@pytest.mark.parametrize(
    "credentials",
    [
        {"aws_access_key_id": "AKIAUNKNOWNKEY000000", "aws_secret_access_key": "x"},
        {"aws_access_key_id": "AKIASANDBOXAPPFLOW01", "aws_secret_access_key": "wrong"},
    ],
)
def test_bad_aws_credentials_are_auth_errors(
    profile: Admin, sandbox_url: str, credentials: dict[str, str]
) -> None:
    async def go(ctx: ProviderContext):
        await AppFlow(ctx).read(spec(sandbox_url, **credentials), MemoryJournal())

    with pytest.raises(AuthError) as info:
        run_live(go)
    assert info.value.status == 403


def test_drop_response_then_replay_with_same_client_token(profile: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        profile.faults(
            {
                "provider": "appflow",
                "kind": "drop_response",
                "path": "update-connector-profile",
                "count": 1,
            }
        )
        with pytest.raises(TransportError) as info:
            await adapter.apply(spec(sandbox_url), secret(NEW), live, want(), MemoryJournal())
        assert info.value.maybe_applied
        after = await adapter.read(spec(sandbox_url), MemoryJournal())
        assert after.summary["lastUpdatedAt"] != live.summary["lastUpdatedAt"]  # it was applied
        assert adapter.carries(after, want()) is Evidence.UNKNOWN  # AppFlow cannot show credentials
        # replay_safe: the engine re-sends with the same clientToken and parameters
        await adapter.apply(spec(sandbox_url), secret(NEW), after, want(), MemoryJournal())
        final = await adapter.read(spec(sandbox_url), MemoryJournal())
        return after, final

    after, final = run_live(go)
    # The replay returned the first result without a new lastUpdatedAt
    assert final.summary["lastUpdatedAt"] == after.summary["lastUpdatedAt"]
    assert live_credentials(profile) == {"Salesforce": NEW}
    history = profile.get("appflow", PROFILE)["history"]
    assert [h["by"] for h in history] == ["api"]


def test_out_of_band_settings_edit_changes_version(profile: Admin, sandbox_url: str) -> None:
    edited = {"Salesforce": {"instanceUrl": "https://other.my.salesforce.com"}}

    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        result = await adapter.apply(spec(sandbox_url), secret(NEW), live, want(), MemoryJournal())
        profile.oob("appflow", PROFILE, {"connectorProfileProperties": edited})
        after = await adapter.read(spec(sandbox_url), MemoryJournal())
        return result, after, adapter.carries(after, want(), result.version)

    result, after, verdict = run_live(go)
    assert after.version != result.version
    assert verdict is not Evidence.OURS


def test_credentials_only_edit_cannot_be_told_from_a_refresh(
    profile: Admin, sandbox_url: str
) -> None:
    # Describe never returns credentials: an edit of the credentials alone looks exactly like
    # AppFlow's own token refresh (only lastUpdatedAt moves). The documented price of never
    # calling a refresh a conflict.
    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        profile.oob("appflow", PROFILE)
        after = await adapter.read(spec(sandbox_url), MemoryJournal())
        return live, after

    live, after = run_live(go)
    assert after.version == live.version
    assert after.summary["lastUpdatedAt"] > live.summary["lastUpdatedAt"]


def test_token_refresh_moves_last_updated_at_but_not_the_version(
    profile: Admin, sandbox_url: str
) -> None:
    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        result = await adapter.apply(spec(sandbox_url), secret(NEW), live, want(), MemoryJournal())
        response = profile.c.post(f"/_sandbox/appflow/resources/{PROFILE}/refresh")
        assert response.status_code == 200, response.text
        after = await adapter.read(spec(sandbox_url), MemoryJournal())
        return live, result, after, adapter.carries(after, want(), result.version)

    live, result, after, verdict = run_live(go)
    assert after.summary["lastUpdatedAt"] > live.summary["lastUpdatedAt"]
    assert after.version == live.version == result.version
    assert verdict is Evidence.OURS
    # The refresh is AppFlow's own: a new access token, our refresh token kept, no history entry
    live_now = profile.get("appflow", PROFILE)
    assert (
        live_now["connectorProfileCredentials"]["Salesforce"]["refreshToken"]
        == (NEW["refreshToken"])
    )
    assert (
        live_now["connectorProfileCredentials"]["Salesforce"]["accessToken"] != (NEW["accessToken"])
    )
    assert live_now["refreshes"] == 1
    assert [h["by"] for h in live_now["history"]] == ["api"]


def test_token_reuse_as_validation_exception_is_a_conflict(admin: Admin, sandbox_url: str) -> None:
    # Given the variation where AppFlow answers a reused clientToken with a ValidationException
    seed(admin, tokenReuseError="ValidationException")

    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        await adapter.apply(spec(sandbox_url), secret(NEW), live, want(), MemoryJournal())
        # When the same job's token goes out again with other parameters
        other = {"accessToken": "other-" + CANARY, "refreshToken": "other"}
        await adapter.apply(spec(sandbox_url), secret(other), live, want(), MemoryJournal())

    # Then it is the conflict path, never a permanent bad request, and nothing else applied
    with pytest.raises(VersionConflict) as info:
        run_live(go)
    assert info.value.code == "ValidationException"
    assert info.value.status == 400
    assert CANARY not in str(info.value)
    assert live_credentials(admin) == {"Salesforce": NEW}
