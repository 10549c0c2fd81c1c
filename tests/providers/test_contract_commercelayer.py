"""Commerce Layer adapter against the sandbox over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rotator.errors import (
    AuthError,
    BadRequest,
    NotFound,
    TransportError,
)
from rotator.providers.base import Evidence, ProviderContext
from rotator.providers.commercelayer import CommerceLayer

from .conftest import Admin
from .helpers import CANARY, MemoryJournal, run_live, secret, target, want

pytestmark = pytest.mark.integration

CRED = "apiCred001"
FIELDS = {
    "name": "Storefront EU",
    "reference": "ref-" + CANARY,
    "reference_origin": "rotator-tests",
    "metadata": {"owner": "web", "ticket": CANARY},
    "role_id": "rolReadOnly1",
}


def seed(admin: Admin) -> None:
    admin.put("commercelayer", CRED, {"name": "Storefront", "metadata": {"team": "eu"}})


@pytest.fixture
def credential(admin: Admin) -> Admin:
    seed(admin)
    return admin


def spec(url: str, rid: str = CRED, client_secret: str | None = None) -> Any:
    from rotator.sandbox import defaults as D

    urls = D.base_urls(url)
    return target(
        "commercelayer",
        urls["commercelayer"],
        rid,
        options={"auth_url": urls["commercelayer_auth"]},
        credentials={
            "client_id": D.COMMERCELAYER_CLIENT_ID,
            "client_secret": client_secret or D.COMMERCELAYER_CLIENT_SECRET,
        },
    )


def test_happy_path(credential: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        adapter = CommerceLayer(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        assert adapter.carries(live, want()) is Evidence.NOT_OURS
        result = await adapter.apply(
            spec(sandbox_url), secret(FIELDS), live, want(), MemoryJournal()
        )
        after = await adapter.read(spec(sandbox_url), MemoryJournal())
        return live, result, after, adapter.carries(after, want(), result.version)

    live, result, after, verdict = run_live(go)
    view = credential.get("commercelayer", CRED)
    assert view["reference"] == FIELDS["reference"] and view["role_id"] == "rolReadOnly1"
    assert view["metadata"]["team"] == "eu"  # merged, not replaced
    assert view["metadata"]["ticket"] == CANARY
    assert view["metadata"]["rotator"] == want().marker
    assert verdict is Evidence.OURS and after.version == result.version != live.version
    for value in (live, result, after):
        assert CANARY not in repr(value)


@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"expires_in": 60}, "/data/attributes/expires_in"),
        ({"role_id": "rolMissing"}, "role"),
        ({"name": ""}, "/data/attributes/name"),
    ],
)
def test_validation_errors(
    credential: Admin, sandbox_url: str, fields: dict[str, Any], pointer: str
) -> None:
    async def go(ctx: ProviderContext):
        adapter = CommerceLayer(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        await adapter.apply(spec(sandbox_url), secret(fields), live, want(), MemoryJournal())

    with pytest.raises(BadRequest) as info:
        run_live(go)
    assert info.value.status == 422 and info.value.code == "VALIDATION_ERROR"
    assert pointer in str(info.value)


def test_read_only_field_is_refused_locally(credential: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        adapter = CommerceLayer(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        await adapter.apply(
            spec(sandbox_url), secret({"client_secret": CANARY}), live, want(), MemoryJournal()
        )

    with pytest.raises(BadRequest) as info:
        run_live(go)
    assert CANARY not in str(info.value)


def test_unknown_credential_and_bad_client(credential: Admin, sandbox_url: str) -> None:
    async def unknown(ctx: ProviderContext):
        await CommerceLayer(ctx).read(spec(sandbox_url, "nope"), MemoryJournal())

    async def bad_client(ctx: ProviderContext):
        await CommerceLayer(ctx).read(spec(sandbox_url, client_secret="wrong"), MemoryJournal())

    with pytest.raises(NotFound):
        run_live(unknown)
    with pytest.raises(AuthError):
        run_live(bad_client)


def test_drop_response_is_recognised_as_ours(credential: Admin, sandbox_url: str) -> None:
    async def go(ctx: ProviderContext):
        adapter = CommerceLayer(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        credential.faults(
            {"provider": "commercelayer", "kind": "drop_response", "methods": ["PATCH"], "count": 1}
        )
        with pytest.raises(TransportError) as info:
            await adapter.apply(spec(sandbox_url), secret(FIELDS), live, want(), MemoryJournal())
        assert info.value.maybe_applied
        after = await adapter.read(spec(sandbox_url), MemoryJournal())
        return live, after, adapter.carries(after, want())

    live, after, verdict = run_live(go)
    assert verdict is Evidence.OURS and after.version != live.version


@pytest.mark.parametrize("edit", [None, {"metadata": {"replaced": True}}])
def test_out_of_band_edit_is_not_ours(
    credential: Admin, sandbox_url: str, edit: dict[str, Any] | None
) -> None:
    async def go(ctx: ProviderContext):
        adapter = CommerceLayer(ctx)
        live = await adapter.read(spec(sandbox_url), MemoryJournal())
        result = await adapter.apply(
            spec(sandbox_url), secret(FIELDS), live, want(), MemoryJournal()
        )
        credential.oob("commercelayer", CRED, edit)
        after = await adapter.read(spec(sandbox_url), MemoryJournal())
        return (
            result,
            after,
            adapter.carries(after, want()),
            adapter.carries(after, want(), result.version),
        )

    result, after, without_version, with_version = run_live(go)
    assert after.version != result.version
    assert without_version is Evidence.NOT_OURS and with_version is Evidence.NOT_OURS


def test_many_reads_stay_within_the_rate_budget(credential: Admin, sandbox_url: str) -> None:
    credential.config({"rate_limits": True})

    async def go(ctx: ProviderContext):
        adapter = CommerceLayer(ctx)
        await asyncio.gather(*(adapter.read(spec(sandbox_url), MemoryJournal()) for _ in range(60)))
        return adapter.budget

    budget = run_live(go)
    assert budget.waited == 0.0  # 60 GETs fit the 250-per-10-s burst: no waiting, no 429
