"""The planner's parts without a network: the write guard, the field previews, the budget."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from rotator.config import TargetSpecModel
from rotator.errors import PlanWriteRefused
from rotator.plan import budget
from rotator.plan.changes import NewValue, preview
from rotator.plan.readonly import EmptyJournal, ReadOnlyContext
from rotator.providers import load_provider
from rotator.providers.base import RemoteState, SecretPayload, TargetSpec, Want, send

SENT: list[str] = []


def _answer(request: httpx.Request) -> httpx.Response:
    SENT.append(f"{request.method} {request.url.path}")
    if request.method == "GET":  # the live connection the Adobe update merges with
        auth = {"specName": "Basic Authentication", "params": {"username": "u"}}
        return httpx.Response(200, json={"items": [{"id": "r1", "auth": auth, "etag": "e1"}]})
    return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})


def _target(provider: str = "adobe", **options: object) -> TargetSpec:
    return TargetSpec(
        name="t",
        provider=provider,
        base_url="https://api.example",
        resource_id="r1",
        options={"org_id": "o", **options},
        credentials={"client_id": "c", "client_secret": "s"},
    )


@pytest.fixture
def context() -> ReadOnlyContext:
    SENT.clear()
    return ReadOnlyContext(transport=httpx.MockTransport(_answer))


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE", "POST"])
def test_read_only_context_refuses_every_write(context: ReadOnlyContext, method: str) -> None:
    async def go() -> None:
        client = context.client(_target())
        url = "https://api.example/connections/r1"
        try:
            with pytest.raises(PlanWriteRefused, match=f"refused to send {method} /connections"):
                await send(client, "adobe", method, url, json={"a": 1})
        finally:
            await context.aclose()

    asyncio.run(go())
    assert SENT == []


def test_read_only_context_lets_reads_and_token_grants_through(context: ReadOnlyContext) -> None:
    async def go() -> None:
        client = context.client(_target())
        await send(client, "adobe", "GET", "https://api.example/connections/r1")
        await send(client, "x", "POST", "https://ims.example/token", data={"grant_type": "cc"})
        await send(client, "appflow", "POST", "https://api.example/describe-connector-profiles")
        await context.aclose()

    asyncio.run(go())
    assert SENT == ["GET /connections/r1", "POST /token", "POST /describe-connector-profiles"]


def test_an_adapter_update_through_the_plan_context_never_leaves(context: ReadOnlyContext) -> None:
    # Even if the planner called apply by mistake, the PATCH would not be sent.
    adapter = load_provider("adobe", context)
    secret = SecretPayload({"password": "x" * 12}, "v1", "f" * 64)
    want = Want("v1", "f" * 64, "job")

    async def go() -> None:
        try:
            with pytest.raises(PlanWriteRefused):
                await adapter.apply(_target(), secret, RemoteState("e1"), want, EmptyJournal())
        finally:
            await context.aclose()

    asyncio.run(go())
    # the token grant and the read the update merges with; never the PATCH
    assert SENT[0] == "POST /ims/token/v3" and all(not s.startswith("PATCH") for s in SENT)


def test_empty_journal_refuses_to_record() -> None:
    with pytest.raises(PlanWriteRefused):
        asyncio.run(EmptyJournal().record("step", {}))


def test_previews_name_fields_never_values() -> None:
    new = NewValue(("password", "username"), {"password": "hunter2-secret", "username": "u"})
    changes = preview(_target(static_params={"environmentUrl": "x"}), RemoteState("1"), new)
    assert changes.fields == [
        "auth.params.environmentUrl",
        "auth.params.password",
        "auth.params.username",
        "description",
    ]
    assert "hunter2-secret" not in json.dumps(changes.__dict__)


def test_commercelayer_preview_applies_the_adapters_updatable_rule() -> None:
    cl = _target("commercelayer")
    bad = preview(cl, RemoteState("1"), NewValue(("client_secret",), {"client_secret": "x"}))
    assert bad.problems and "cannot be updated on api_credentials" in bad.problems[0]
    good = preview(cl, RemoteState("1"), NewValue(("metadata",), {"metadata": {"env": "x"}}))
    assert good.fields == ["metadata.env", "metadata.rotator", "metadata.rotator_digest"]


def test_uipath_preview_compares_the_readable_state() -> None:
    live = RemoteState("1", summary={"groupIds": ["G-1", "g-2"], "displayName": "Bot"})
    same = NewValue(("groupIds",), {"groupIds": ["g-2", "g-1"]})
    assert (
        preview(_target("uipath"), live, same).differs,
        preview(_target("uipath"), live, same).fields,
    ) == (False, [])
    other = NewValue(("displayName", "groupIds"), {"groupIds": ["g-3"], "displayName": "Bot"})
    assert preview(_target("uipath"), live, other).fields == ["groupIds"]
    broken = preview(_target("uipath"), live, NewValue(("groupIds",), {"groupIds": "g-1"}))
    assert broken.problems == ["secret field 'groupIds' must be a list of group ids"]


def test_appflow_preview_needs_a_connector_type() -> None:
    new = NewValue(("accessToken",), {"accessToken": "x"})
    assert preview(_target("appflow"), RemoteState("1"), new).problems
    live = RemoteState("1", summary={"connectorType": "Servicenow"})
    assert preview(_target("appflow"), live, new).fields == [
        "connectorProfileCredentials.ServiceNow.accessToken"
    ]


def _cl(schedule: str = "1h", jitter: str = "0s") -> TargetSpecModel:
    return TargetSpecModel(
        provider="commercelayer",
        base_url="https://cl.example/api",
        resource_id="r",
        secret="s",
        schedule=schedule,
        jitter=jitter,
    )


def test_budget_counts_every_occurrence_within_the_horizon() -> None:
    assert len(budget.occurrences(_cl("10m"), 0.0, 3600.0)) == 7  # 0, 10, ..., 60 minutes
    assert len(budget.occurrences(_cl("1s"), 0.0, 10**9)) == budget.MAX_OCCURRENCES


def test_budget_flags_bursts_and_accepts_spread_schedules() -> None:
    # first_rotation: now puts 51 new targets at the next sync: a burst
    burst = {f"t{i}": _cl().model_copy(update={"first_rotation": "now"}) for i in range(51)}
    due = budget.first_due(burst, {}, now=1000.0)
    problems = budget.check(burst, due, now=1000.0, horizon=60.0)
    assert sorted(problems) == sorted(burst)
    assert "51 write requests (51 rotations) due within 10 s on cl.example" in problems["t0"]
    spread = {f"t{i}": _cl(jitter="10m") for i in range(51)}
    due = budget.first_due(spread, {}, now=1000.0)
    assert budget.check(spread, due, now=1000.0, horizon=86400.0) == {}
    # Scheduled due times in Redis are taken as they are: 51 at one instant is a burst again.
    assert len(budget.check(spread, dict.fromkeys(spread, 2000.0), 1000.0, 3600.0)) == 51


def test_budget_ignores_unlimited_providers_and_unscheduled_targets(tmp_path: Path) -> None:
    adobe = {f"a{i}": _cl().model_copy(update={"provider": "adobe"}) for i in range(100)}
    assert budget.check(adobe, dict.fromkeys(adobe, 0.0), 0.0, 60.0) == {}
    manual = {f"m{i}": _cl().model_copy(update={"schedule": None}) for i in range(100)}
    assert all(v is None for v in budget.first_due(manual, {}, 0.0).values())
