"""CipherTrust adapter (in-place and blue-green) against the sandbox over real HTTP."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from rotator.errors import AuthError, NotFound, PermanentError, TransportError, VersionConflict
from rotator.providers.base import Evidence, ProviderContext
from rotator.providers.ciphertrust import STEP_NEW, CipherTrust

from .conftest import Admin
from .helpers import CANARY, MemoryJournal, run_live, secret, target, want

pytestmark = pytest.mark.integration

ORG = "org-acme"
# rotator tags the connections it creates with the organization (see _prefix)
TAG = hashlib.sha256(ORG.encode()).hexdigest()[:8]
OLD = "c-old"
NEW_SECRET = {"client_secret": "cs-" + CANARY, "password": "pw-" + CANARY}


def seed(admin: Admin) -> None:
    admin.put(
        "ciphertrust",
        OLD,
        {
            "name": "sfdc-main",
            "client_id": "sf-client",
            "client_secret": "old-secret",
            "username": "int@acme.example",
            "password": "old-pass",
            "meta": {"team": "crm"},
        },
        kind="connections",
    )
    admin.put("ciphertrust", ORG, {"name": "acme", "connection": "sfdc-main"})


@pytest.fixture
def cm(admin: Admin) -> Admin:
    seed(admin)
    return admin


def spec(url: str, rid: str, password: str | None = None, **options: Any) -> Any:
    from rotator.sandbox import defaults as D

    return target(
        "ciphertrust",
        D.base_urls(url)["ciphertrust"],
        rid,
        options=options,
        credentials={
            "username": D.CIPHERTRUST_USERNAME,
            "password": password or D.CIPHERTRUST_PASSWORD,
        },
    )


def bg(url: str, **options: Any) -> Any:
    return spec(url, ORG, strategy="blue-green", **options)


def connection_names(url: str) -> list[str]:
    from rotator.sandbox import defaults as D

    with httpx.Client(base_url=D.base_urls(url)["ciphertrust"]) as c:
        jwt = c.post(
            "/auth/tokens/",
            json={
                "grant_type": "password",
                "username": D.CIPHERTRUST_USERNAME,
                "password": D.CIPHERTRUST_PASSWORD,
            },
        ).json()["jwt"]
        page = c.get(
            "/connectionmgmt/services/salesforce/connections",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {jwt}"},
        ).json()
    return sorted(r["name"] for r in page["resources"])


# -- in-place --------------------------------------------------------------------------------


def test_in_place_happy_path(cm: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx)
        live = await adapter.read(spec(sandbox_url, OLD), MemoryJournal())
        result = await adapter.apply(
            spec(sandbox_url, OLD), secret(NEW_SECRET), live, want(), MemoryJournal()
        )
        after = await adapter.read(spec(sandbox_url, OLD), MemoryJournal())
        return live, result, after, adapter.carries(after, want(), result.version)

    live, result, after, verdict = run_live(go)
    view = cm.get("ciphertrust", OLD, kind="connections")
    assert view["client_secret"] == NEW_SECRET["client_secret"]
    assert view["password"] == NEW_SECRET["password"]
    assert view["meta"] == {"team": "crm", "rotator": want().marker}
    assert verdict is Evidence.OURS and after.version != live.version
    for value in (live, result, after):
        assert CANARY not in repr(value)


def test_in_place_drop_response_and_out_of_band_edit(cm: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx)
        live = await adapter.read(spec(sandbox_url, OLD), MemoryJournal())
        cm.faults(
            {"provider": "ciphertrust", "kind": "drop_response", "methods": ["PATCH"], "count": 1}
        )
        with pytest.raises(TransportError) as info:
            await adapter.apply(
                spec(sandbox_url, OLD), secret(NEW_SECRET), live, want(), MemoryJournal()
            )
        assert info.value.maybe_applied
        ours = await adapter.read(spec(sandbox_url, OLD), MemoryJournal())
        assert adapter.carries(ours, want()) is Evidence.OURS and ours.version != live.version
        cm.oob("ciphertrust", OLD, kind="connections")
        after = await adapter.read(spec(sandbox_url, OLD), MemoryJournal())
        return ours, after, adapter.carries(after, want(), ours.version)

    ours, after, verdict = run_live(go)
    assert after.version != ours.version
    assert verdict is Evidence.NOT_OURS


def test_in_place_changed_since_read_is_conflict(cm: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx)
        live = await adapter.read(spec(sandbox_url, OLD), MemoryJournal())
        cm.oob("ciphertrust", OLD, kind="connections")
        await adapter.apply(
            spec(sandbox_url, OLD), secret(NEW_SECRET), live, want(), MemoryJournal()
        )

    with pytest.raises(VersionConflict):
        run_live(go)
    assert cm.get("ciphertrust", OLD, kind="connections")["client_secret"].startswith("oob-")


def test_errors(cm: Admin, sandbox_url: str) -> None:
    async def unknown(ctx: ProviderContext):
        await CipherTrust(ctx).read(spec(sandbox_url, "missing"), MemoryJournal())

    async def unknown_org(ctx: ProviderContext):
        await CipherTrust(ctx).read(
            spec(sandbox_url, "missing", strategy="blue-green"), MemoryJournal()
        )

    async def wrong_password(ctx: ProviderContext):
        await CipherTrust(ctx).read(
            spec(sandbox_url, OLD, password="nope-" + CANARY), MemoryJournal()
        )

    with pytest.raises(NotFound):
        run_live(unknown)
    with pytest.raises(NotFound):
        run_live(unknown_org)
    with pytest.raises(AuthError) as info:
        run_live(wrong_password)
    assert info.value.code == "NCERRUnauthorizedAccess" and CANARY not in str(info.value)


# -- blue-green ------------------------------------------------------------------------------


def test_blue_green_happy_path_and_after_promote(cm: Admin, sandbox_url: str) -> None:
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx)
        live = await adapter.read(bg(sandbox_url), journal)
        assert adapter.carries(live, want()) is Evidence.NOT_OURS
        result = await adapter.apply(bg(sandbox_url), secret(NEW_SECRET), live, want(), journal)
        after = await adapter.read(bg(sandbox_url), journal)
        assert adapter.carries(after, want(), result.version) is Evidence.OURS
        await adapter.after_promote(bg(sandbox_url), journal)  # inside the grace period
        assert "sfdc-main" in connection_names(sandbox_url)
        # The original is hand-made: retired only because this target opts in.
        await adapter.after_promote(
            bg(sandbox_url, grace_period_seconds=0, retire_foreign_connections=True), journal
        )
        return live, after

    live, after = run_live(go)
    new_id = journal.steps[STEP_NEW]["id"]
    new = cm.get("ciphertrust", new_id, kind="connections")
    assert new["name"] == f"sfdc-main-{TAG}-v000000000002"
    assert new["client_secret"] == NEW_SECRET["client_secret"]
    assert new["client_id"] == "sf-client"
    assert cm.get("ciphertrust", ORG)["connection"] == f"sfdc-main-{TAG}-v000000000002"
    assert cm.get("ciphertrust", OLD, kind="connections")["deleted"] is True
    assert connection_names(sandbox_url) == [f"sfdc-main-{TAG}-v000000000002"]
    assert after.version != live.version
    assert CANARY not in repr(after)


def test_blue_green_crash_after_step_one_resumes_without_duplicate(
    cm: Admin, sandbox_url: str
) -> None:
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        live = await CipherTrust(ctx).read(bg(sandbox_url), journal)
        cm.faults(
            {"provider": "ciphertrust", "kind": "reset", "path": "connection-test", "count": 1}
        )
        with pytest.raises(TransportError):
            await CipherTrust(ctx).apply(bg(sandbox_url), secret(NEW_SECRET), live, want(), journal)
        adapter = CipherTrust(ctx)  # a new process, the same journal
        live = await adapter.read(bg(sandbox_url), journal)
        result = await adapter.apply(bg(sandbox_url), secret(NEW_SECRET), live, want(), journal)
        return adapter.carries(await adapter.read(bg(sandbox_url), journal), want(), result.version)

    assert run_live(go) is Evidence.OURS
    assert connection_names(sandbox_url) == ["sfdc-main", f"sfdc-main-{TAG}-v000000000002"]


@pytest.mark.parametrize("journal_survives", [True, False])
def test_blue_green_lost_create_response(
    cm: Admin, sandbox_url: str, journal_survives: bool
) -> None:
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx)
        live = await adapter.read(bg(sandbox_url), journal)
        cm.faults(
            {
                "provider": "ciphertrust",
                "kind": "drop_response",
                "methods": ["POST"],
                "path": "connections$",
                "count": 1,
            }
        )
        with pytest.raises(TransportError):
            await adapter.apply(bg(sandbox_url), secret(NEW_SECRET), live, want(), journal)
        retry = journal if journal_survives else MemoryJournal()
        await adapter.apply(bg(sandbox_url), secret(NEW_SECRET), live, want(), retry)

    run_live(go)
    assert connection_names(sandbox_url) == ["sfdc-main", f"sfdc-main-{TAG}-v000000000002"]
    assert cm.get("ciphertrust", ORG)["connection"] == f"sfdc-main-{TAG}-v000000000002"


def test_blue_green_drop_response_on_repoint_is_ours(cm: Admin, sandbox_url: str) -> None:
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx)
        live = await adapter.read(bg(sandbox_url), journal)
        cm.faults(
            {
                "provider": "ciphertrust",
                "kind": "drop_response",
                "methods": ["PATCH"],
                "path": "organizations",
                "count": 1,
            }
        )
        with pytest.raises(TransportError) as info:
            await adapter.apply(bg(sandbox_url), secret(NEW_SECRET), live, want(), journal)
        assert info.value.maybe_applied
        after = await adapter.read(bg(sandbox_url), journal)
        return live, after, adapter.carries(after, want())

    live, after, verdict = run_live(go)
    assert verdict is Evidence.OURS and after.version != live.version


def test_blue_green_failed_connection_test(cm: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx)
        live = await adapter.read(bg(sandbox_url), MemoryJournal())
        bad = {"client_secret": "invalid-" + CANARY, "password": "pw"}
        await adapter.apply(bg(sandbox_url), secret(bad), live, want(), MemoryJournal())

    with pytest.raises(PermanentError, match="failed its connection test") as info:
        run_live(go)
    assert CANARY not in str(info.value)
    assert cm.get("ciphertrust", ORG)["connection"] == "sfdc-main"


def test_blue_green_out_of_band_repoint_is_not_ours(cm: Admin, sandbox_url: str) -> None:
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx)
        live = await adapter.read(bg(sandbox_url), journal)
        result = await adapter.apply(bg(sandbox_url), secret(NEW_SECRET), live, want(), journal)
        cm.oob("ciphertrust", ORG, {"connection": "sfdc-main"})
        after = await adapter.read(bg(sandbox_url), journal)
        return result, after, adapter.carries(after, want())

    result, after, verdict = run_live(go)
    assert after.version != result.version and verdict is Evidence.NOT_OURS
