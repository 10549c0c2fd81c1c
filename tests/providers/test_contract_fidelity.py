"""Issue 11: the adapters against the sandbox's real-API variations, over real HTTP.

Each test reproduces one way the vendor's API differs from what the adapters used to assume
(each failed before its fix): Adobe connections without a description, an ``updatedClient``
that is not our client id and params the PATCH must not drop; CipherTrust connection tests
that do not answer ``{"connection_ok": true}`` and hand-made connections; Commerce Layer's
token request without a scope and 429s without ``Retry-After``; UiPath token URLs that are
not under the API root.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from rotator.errors import AuthError, BadRequest, PermanentError, RateLimited
from rotator.providers.adobe import AdobeFlowService
from rotator.providers.base import Evidence, ProviderContext, TokenCache
from rotator.providers.ciphertrust import CipherTrust
from rotator.providers.commercelayer import CommerceLayer
from rotator.providers.uipath import UiPathRobotAccounts
from rotator.sandbox import defaults as D

from .conftest import Admin
from .helpers import CANARY, MemoryJournal, run_live, secret, target, want

pytestmark = pytest.mark.integration


class Recording(httpx.AsyncBaseTransport):
    """A real transport that keeps every request it sends."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def run_recorded(fn: Callable[[ProviderContext], Awaitable[Any]], transport: Recording) -> Any:
    async def main() -> Any:
        ctx = ProviderContext(timeout=5.0, tokens=TokenCache(), transport=transport)
        try:
            return await fn(ctx)
        finally:
            await ctx.aclose()

    return asyncio.run(main())


# -- Adobe -------------------------------------------------------------------------------------

SF_PARAMS = {
    "environmentUrl": "https://acme.my.salesforce.com",
    "username": "etl@acme.example",
    "password": "old-pass",
    "securityToken": "old-token",
}
NEW_SF = {"password": "pw-" + CANARY, "securityToken": "tok-" + CANARY}


def adobe(url: str, **options: Any) -> Any:
    urls = D.base_urls(url)
    return target(
        "adobe",
        urls["adobe"],
        "conn-sf",
        options={"org_id": D.ADOBE_ORG_ID, "ims_url": urls["adobe_ims"], **options},
        credentials={"client_id": D.ADOBE_CLIENT_ID, "client_secret": D.ADOBE_CLIENT_SECRET},
    )


def seed_adobe(admin: Admin, **extra: Any) -> None:
    # As created through the API without a description: the sandbox's default now.
    auth = {"specName": "Basic Authentication", "params": dict(SF_PARAMS)}
    admin.put("adobe", "conn-sf", {"auth": auth, **extra})


def rotate_adobe(url: str, fields: dict[str, Any], **options: Any) -> list[Evidence]:
    async def go(ctx: ProviderContext) -> list[Evidence]:
        adapter = AdobeFlowService(ctx)
        spec = adobe(url, **options)
        live = await adapter.read(spec, MemoryJournal())
        result = await adapter.apply(spec, secret(fields), live, want(), MemoryJournal())
        after = await adapter.read(spec, MemoryJournal())
        return [adapter.carries(after, want(), result.version), adapter.carries(after, want())]

    result: list[Evidence] = run_live(go)
    return result


def test_adobe_connection_without_description_rotates(admin: Admin, sandbox_url: str) -> None:
    seed_adobe(admin)
    assert admin.get("adobe", "conn-sf")["description"] is None
    # Before: replace /description -> FLOW-1455-400 Missing field "description", job failed.
    rotate_adobe(sandbox_url, NEW_SF)
    live = admin.get("adobe", "conn-sf")
    assert live["description"] == f"[{want().marker}]"
    assert live["auth"]["params"]["password"] == NEW_SF["password"]


def test_adobe_verification_does_not_hinge_on_updated_client(
    admin: Admin, sandbox_url: str
) -> None:
    seed_adobe(admin, description="Salesforce prod")
    # The sandbox records a client name, not our client id, as updatedClient.
    # Before: the marker was ignored, verification failed, the retry reported a conflict.
    # Now our PATCH's etag decides; without it (response lost) the marker alone cannot tell
    # our update from a hand edit that kept the description, unless updated_client says what
    # this integration's updates show.
    assert rotate_adobe(sandbox_url, NEW_SF) == [Evidence.OURS, Evidence.UNKNOWN]
    named = rotate_adobe(sandbox_url, NEW_SF, updated_client=D.ADOBE_CLIENT_NAME)
    assert named == [Evidence.OURS, Evidence.OURS]
    assert admin.get("adobe", "conn-sf")["description"].startswith("Salesforce prod [rotator:")


def test_adobe_identity_check_is_an_explicit_option(admin: Admin, sandbox_url: str) -> None:
    seed_adobe(admin)
    # Set to what the service records for us: a lost response is still recognised.
    named = rotate_adobe(sandbox_url, NEW_SF, updated_client="sandbox integration")
    assert named == [Evidence.OURS, Evidence.OURS]
    seed_adobe(admin)
    # Set to something else: without our PATCH's etag, the marker alone no longer counts.
    wrong = rotate_adobe(sandbox_url, NEW_SF, updated_client=D.ADOBE_CLIENT_ID)
    assert wrong == [Evidence.OURS, Evidence.NOT_OURS]


def test_adobe_patch_keeps_the_params_it_does_not_rotate(admin: Admin, sandbox_url: str) -> None:
    seed_adobe(admin)
    # Before: replace /auth/params with the secret alone dropped environmentUrl and username.
    rotate_adobe(sandbox_url, NEW_SF)
    assert admin.get("adobe", "conn-sf")["auth"]["params"] == {
        "environmentUrl": SF_PARAMS["environmentUrl"],
        "username": SF_PARAMS["username"],
        **NEW_SF,
    }


def test_adobe_refuses_to_drop_a_masked_param(admin: Admin, sandbox_url: str) -> None:
    seed_adobe(admin)
    with pytest.raises(BadRequest, match="securityToken") as info:
        rotate_adobe(sandbox_url, {"password": "pw-" + CANARY})
    assert CANARY not in str(info.value)
    assert admin.get("adobe", "conn-sf")["auth"]["params"] == SF_PARAMS  # nothing written


# -- CipherTrust -------------------------------------------------------------------------------


def seed_ciphertrust(admin: Admin, client_id: str) -> None:
    connection = {"name": "sfdc-main", "client_id": client_id, "username": "int@acme.example"}
    admin.put("ciphertrust", "c-old", connection, kind="connections")
    admin.put("ciphertrust", "org-acme", {"name": "acme", "connection": "sfdc-main"})


def ciphertrust(url: str, **options: Any) -> Any:
    return target(
        "ciphertrust",
        D.base_urls(url)["ciphertrust"],
        "org-acme",
        options={"strategy": "blue-green", **options},
        credentials={"username": D.CIPHERTRUST_USERNAME, "password": D.CIPHERTRUST_PASSWORD},
    )


def rotate_ciphertrust(url: str, **options: Any) -> None:
    async def go(ctx: ProviderContext) -> None:
        adapter, spec, journal = CipherTrust(ctx), ciphertrust(url, **options), MemoryJournal()
        live = await adapter.read(spec, journal)
        fields = {"client_secret": "cs-" + CANARY, "password": "pw-" + CANARY}
        await adapter.apply(spec, secret(fields), live, want(), journal)
        await adapter.after_promote(spec, journal)

    run_live(go)


def test_ciphertrust_test_answer_of_another_shape_fails_closed(
    admin: Admin, sandbox_url: str
) -> None:
    seed_ciphertrust(admin, client_id="unconfirmed-sf-client")
    # Before: a 200 that did not say connection_ok: false re-pointed the organization.
    with pytest.raises(PermanentError, match=r"\{message: str, status: str\}") as info:
        rotate_ciphertrust(sandbox_url)
    assert CANARY not in str(info.value)
    assert admin.get("ciphertrust", "org-acme")["connection"] == "sfdc-main"


def test_ciphertrust_keeps_the_hand_made_connection(admin: Admin, sandbox_url: str) -> None:
    seed_ciphertrust(admin, client_id="sf-client")
    # Before: with grace_period_seconds 0 the first rotation deleted it.
    rotate_ciphertrust(sandbox_url, grace_period_seconds=0)
    assert admin.get("ciphertrust", "org-acme")["connection"] != "sfdc-main"
    assert admin.get("ciphertrust", "c-old", kind="connections").get("deleted") is not True


def test_ciphertrust_retires_a_hand_made_connection_only_when_told(
    admin: Admin, sandbox_url: str
) -> None:
    seed_ciphertrust(admin, client_id="sf-client")
    rotate_ciphertrust(sandbox_url, grace_period_seconds=0, retire_foreign_connections=True)
    assert admin.get("ciphertrust", "c-old", kind="connections")["deleted"] is True


# -- Commerce Layer ----------------------------------------------------------------------------


def commercelayer(url: str, **options: Any) -> Any:
    urls = D.base_urls(url)
    return target(
        "commercelayer",
        urls["commercelayer"],
        "cred1",
        options={"auth_url": urls["commercelayer_auth"], **options},
        credentials={
            "client_id": D.COMMERCELAYER_CLIENT_ID,
            "client_secret": D.COMMERCELAYER_CLIENT_SECRET,
        },
    )


@pytest.mark.parametrize("scope", [None, "provisioning-api"])
def test_commercelayer_token_request_sends_a_scope_only_when_configured(
    admin: Admin, sandbox_url: str, scope: str | None
) -> None:
    admin.put("commercelayer", "cred1", {})
    transport = Recording()
    options = {"scope": scope} if scope else {}

    async def go(ctx: ProviderContext) -> None:
        await CommerceLayer(ctx).read(commercelayer(sandbox_url, **options), MemoryJournal())

    run_recorded(go, transport)
    mint = next(r for r in transport.requests if r.url.path == D.COMMERCELAYER_TOKEN_PATH)
    grant = httpx.Response(200, content=mint.content).json()
    # Before: scope=provisioning-api went out always; the documented grant has none.
    assert grant.get("scope") == scope
    assert set(grant) - {"scope"} == {"grant_type", "client_id", "client_secret"}


def test_commercelayer_429_without_retry_after(admin: Admin, sandbox_url: str) -> None:
    admin.put("commercelayer", "cred1", {})
    admin.faults(
        {"provider": "commercelayer", "kind": "rate_limit", "methods": ["GET"], "retry_after": 5}
    )

    async def go(ctx: ProviderContext) -> None:
        await CommerceLayer(ctx).read(commercelayer(sandbox_url), MemoryJournal())

    with pytest.raises(RateLimited) as info:
        run_live(go)
    assert info.value.retry_after is None  # the retry policy's own backoff decides


# -- UiPath ------------------------------------------------------------------------------------


def uipath(url: str, client_id: str, client_secret: str, **options: Any) -> Any:
    api_root = f"{url}/{D.UIPATH_ORGANIZATION}/{D.UIPATH_TENANT}/identity_"
    return target(
        "uipath",
        api_root,
        "robot-1",
        options={"partition_global_id": D.UIPATH_PARTITION_GLOBAL_ID, **options},
        credentials={"client_id": client_id, "client_secret": client_secret},
    )


def read_uipath(spec: Any) -> Any:
    async def go(ctx: ProviderContext) -> Any:
        return await UiPathRobotAccounts(ctx).read(spec, MemoryJournal())

    return run_live(go)


def test_uipath_token_url_with_and_without_tenant(admin: Admin, sandbox_url: str) -> None:
    admin.put("uipath", "robot-1", {"groupIds": []})
    cloud = (D.UIPATH_CLIENT_ID, D.UIPATH_CLIENT_SECRET)
    # Derived from a base URL with the tenant in its path, as before.
    assert read_uipath(uipath(sandbox_url, *cloud)).version
    # Explicit, without the tenant.
    token_url = f"{sandbox_url}/{D.UIPATH_ORGANIZATION}/identity_/connect/token"
    assert read_uipath(uipath(sandbox_url, *cloud, token_url=token_url)).version


def test_uipath_standalone_identity_server_needs_token_url(admin: Admin, sandbox_url: str) -> None:
    admin.put("uipath", "robot-1", {"groupIds": []})
    standalone = (D.UIPATH_STANDALONE_CLIENT_ID, D.UIPATH_STANDALONE_CLIENT_SECRET)
    # Before: the token URL could only be derived from base_url, which this server rejects.
    with pytest.raises(AuthError):
        read_uipath(uipath(sandbox_url, *standalone))
    token_url = sandbox_url + D.UIPATH_STANDALONE_TOKEN_PATH
    assert read_uipath(uipath(sandbox_url, *standalone, token_url=token_url)).version
