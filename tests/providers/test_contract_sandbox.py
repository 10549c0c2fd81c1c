"""The sandbox half of the provider contract, once for all five adapters over real HTTP.

Every adapter that authenticates with a bearer token answers the provider's 401 for a token
it still believes fresh with exactly one re-mint (CipherTrust's is its refresh grant); every
adapter turns an injected 5xx or 429 on its update into ``ProviderUnavailable`` or
``RateLimited`` (with the server's Retry-After), applies nothing and never quotes the secret.
Each provider's own sandbox behaviour stays in ``test_contract_<provider>.py``, which also
supplies the seed, target and secret used here; the mock-HTTP contract is ``test_contract.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from rotator.errors import ProviderError, ProviderUnavailable, RateLimited
from rotator.providers.adobe import AdobeFlowService
from rotator.providers.appflow import AppFlow
from rotator.providers.base import Provider, ProviderContext, TargetSpec, TokenCache
from rotator.providers.ciphertrust import CipherTrust
from rotator.providers.commercelayer import CommerceLayer
from rotator.providers.uipath import UiPathRobotAccounts

from . import test_contract_appflow as appflow
from . import test_contract_ciphertrust as ciphertrust
from . import test_contract_commercelayer as commercelayer
from . import test_contract_uipath as uipath
from .conftest import Admin
from .helpers import CANARY, MemoryJournal, run_live, secret, target, want

pytestmark = pytest.mark.integration

ADOBE_CONN = "conn-contract-1"


def adobe_seed(admin: Admin) -> None:
    admin.put(
        "adobe",
        ADOBE_CONN,
        {
            "auth": {
                "specName": "Basic Authentication",
                "params": {"username": "etl", "password": "p0"},
            }
        },
    )


def adobe_spec(url: str) -> TargetSpec:
    from rotator.sandbox import defaults as D

    urls = D.base_urls(url)
    return target(
        "adobe",
        urls["adobe"],
        ADOBE_CONN,
        options={
            "ims_url": urls["adobe_ims"],
            "org_id": D.ADOBE_ORG_ID,
            "sandbox_name": D.ADOBE_SANDBOX_NAME,
        },
        credentials={"client_id": D.ADOBE_CLIENT_ID, "client_secret": D.ADOBE_CLIENT_SECRET},
    )


@dataclass(frozen=True)
class LiveCase:
    name: str
    adapter: Callable[[ProviderContext], Provider]
    seed: Callable[[Admin], None]
    spec: Callable[[str], TargetSpec]
    fields: dict[str, Any]
    resource: tuple[str, str]  # the admin kind and id of what a rotation changes
    update: dict[str, Any]  # fault-rule filter that matches the update request only
    tokens: bool = True  # authenticates with a minted bearer token (AppFlow signs with SigV4)


CASES = [
    LiveCase(
        name="adobe",
        adapter=AdobeFlowService,
        seed=adobe_seed,
        spec=adobe_spec,
        fields={"username": "etl", "password": "pw-" + CANARY},
        resource=("resources", ADOBE_CONN),
        update={"methods": ["PATCH"]},
    ),
    LiveCase(
        name="appflow",
        adapter=AppFlow,
        seed=appflow.seed,
        spec=appflow.spec,
        fields=appflow.NEW,
        resource=("resources", appflow.PROFILE),
        update={"path": "update-connector-profile"},
        tokens=False,
    ),
    LiveCase(
        name="uipath",
        adapter=UiPathRobotAccounts,
        seed=uipath.seed,
        spec=uipath.spec,
        fields=uipath.DESIRED,
        resource=("resources", uipath.ROBOT),
        update={"methods": ["PUT"]},
    ),
    LiveCase(
        name="commercelayer",
        adapter=CommerceLayer,
        seed=commercelayer.seed,
        spec=commercelayer.spec,
        fields=commercelayer.FIELDS,
        resource=("resources", commercelayer.CRED),
        update={"methods": ["PATCH"]},
    ),
    LiveCase(
        name="ciphertrust",
        adapter=CipherTrust,
        seed=ciphertrust.seed,
        spec=lambda url: ciphertrust.spec(url, ciphertrust.OLD),  # in place
        fields=ciphertrust.NEW_SECRET,
        resource=("connections", ciphertrust.OLD),
        update={"methods": ["PATCH"]},
    ),
]
TOKEN_CASES = [c for c in CASES if c.tokens]
FAULTS = [
    ({"kind": "error", "status": 500}, ProviderUnavailable),
    ({"kind": "error", "status": 503}, ProviderUnavailable),
    ({"kind": "rate_limit", "retry_after": 3}, RateLimited),
]


def test_every_adapter_is_covered() -> None:
    from rotator.providers import provider_names

    assert sorted(c.name for c in CASES) == sorted(provider_names())


@pytest.mark.parametrize("case", TOKEN_CASES, ids=lambda c: c.name)
def test_token_expired_server_side_is_reminted_once(
    case: LiveCase, admin: Admin, sandbox_url: str
) -> None:
    case.seed(admin)
    admin.config({"token_ttl": {case.name: 1}})
    frozen = TokenCache(clock=lambda: 0.0)  # our cache believes the token is still fresh

    async def go(ctx: ProviderContext) -> None:
        adapter = case.adapter(ctx)
        await adapter.read(case.spec(sandbox_url), MemoryJournal())
        await adapter.read(case.spec(sandbox_url), MemoryJournal())  # from the cache
        await asyncio.sleep(1.2)
        await adapter.read(case.spec(sandbox_url), MemoryJournal())  # 401 -> one re-mint -> ok

    run_live(go, frozen)
    assert admin.stats()["tokens_minted"][case.name] == 2
    assert frozen.mints == 2


@pytest.mark.parametrize(("rule", "cls"), FAULTS, ids=["500", "503", "429"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_injected_fault_on_the_update_is_classified_and_applies_nothing(
    case: LiveCase,
    admin: Admin,
    sandbox_url: str,
    rule: dict[str, Any],
    cls: type[ProviderError],
) -> None:
    case.seed(admin)
    kind, rid = case.resource

    async def go(ctx: ProviderContext) -> tuple[Any, ProviderError]:
        adapter = case.adapter(ctx)
        live = await adapter.read(case.spec(sandbox_url), MemoryJournal())
        before = admin.get(case.name, rid, kind=kind)
        admin.faults({"provider": case.name, "count": 1, **case.update, **rule})
        with pytest.raises(cls) as info:
            await adapter.apply(
                case.spec(sandbox_url), secret(case.fields), live, want(), MemoryJournal()
            )
        return before, info.value

    before, error = run_live(go)
    if isinstance(error, RateLimited):
        # Commerce Layer documents no reset header: its 429s carry none (issue 11.10).
        assert error.retry_after == (None if case.name == "commercelayer" else 3.0)
    assert CANARY not in str(error)
    assert admin.get(case.name, rid, kind=kind) == before  # nothing applied, nothing recorded
    assert admin.stats()["faults_injected"] == {rule["kind"]: 1}
