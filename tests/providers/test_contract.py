"""The provider contract, once for all five adapters (mock HTTP; each adapter's fake API).

Every adapter: caches its token (one mint for many calls, a fresh one after expiry), answers a
401 with exactly one re-mint and then an AuthError, maps every status its API documents to one
error class (never quoting the secret), and refuses to overwrite a change made since its read.
Provider-specific behaviour stays in ``test_<provider>.py``; the sandbox contract (token expiry,
injected faults) runs in ``test_contract_sandbox.py``, each provider's own sandbox behaviour in
``test_contract_<provider>.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from rotator.errors import (
    AuthError,
    BadRequest,
    NotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    VersionConflict,
)
from rotator.providers.adobe import AdobeFlowService
from rotator.providers.appflow import AppFlow
from rotator.providers.base import Provider, ProviderContext, TargetSpec
from rotator.providers.ciphertrust import CipherTrust
from rotator.providers.commercelayer import CommerceLayer
from rotator.providers.uipath import UiPathRobotAccounts

from . import test_adobe as adobe
from . import test_appflow as appflow
from . import test_ciphertrust as ciphertrust
from . import test_commercelayer as commercelayer
from . import test_uipath as uipath
from .helpers import CANARY, Clock, FakeAPI, MemoryJournal, run_in, secret, want

# status, JSON body, headers, error class, error code, text the message must contain
Row = tuple[int, Any, dict[str, str], type[ProviderError], str, str]


@dataclass
class Case:
    name: str
    fake: Callable[[Clock], Any]
    adapter: Callable[[ProviderContext, Clock], Provider]
    spec: Callable[[], TargetSpec]
    fields: dict[str, Any]
    write: tuple[str, str]  # the update request: method, path suffix
    conflict: Callable[[Any], None]  # an out-of-band change after the read
    writes_on_conflict: int  # the update sent anyway (a server-side CAS refuses it) or not
    mint: str | None = None  # the token endpoint's path suffix (None: no token)
    unauthorized: httpx.Response | None = None  # what the API answers a rejected token
    unauthorized_code: str = ""
    errors: list[Row] = field(default_factory=list)


def adobe_conflict(fake: Any) -> None:
    # The etag moved between the adapter's fresh read and its PATCH: Flow Service refuses
    # the PATCH's If-Match.
    fake.patch_error = (412, adobe.flow_error("1404-412", 412))


def appflow_conflict(fake: Any) -> None:
    # The same clientToken already went out with other parameters.
    fake.tokens = {appflow.client_token(want()): "other parameters"}


def uipath_conflict(fake: Any) -> None:
    fake.account["lastModificationTime"] = "2024-06-01T00:00:00Z"


def commercelayer_conflict(fake: Any) -> None:
    fake.resource["attributes"]["updated_at"] = "2024-01-01T05:00:00.000Z"


def ciphertrust_conflict(fake: Any) -> None:
    fake.connections["conn-1"]["updatedAt"] = ciphertrust.stamp(fake.clock.now + 1)


def cl_errors(status: int) -> Any:
    return {
        "errors": [
            {
                "title": "is invalid",
                "detail": "reference ref-" + CANARY + " taken",
                "code": "VALIDATION_ERROR",
                "source": {"pointer": "/data/attributes/reference"},
                "status": str(status),
            },
            {"title": "second", "code": "OTHER"},
        ]
    }


def uipath_row(
    status: int, payload: dict[str, Any], cls: type[ProviderError], code: str, text: str
) -> Row:
    # The adapter must blank the desired display name wherever the API quotes it back.
    echoed = {
        k: (f"{v} Display {CANARY}" if k in ("message", "title", "detail") else v)
        for k, v in payload.items()
    }
    return (status, echoed or {"echo": CANARY}, {}, cls, code, text)


def appflow_row(status: int, name: str, cls: type[ProviderError]) -> Row:
    headers = {"x-amzn-ErrorType": name, "x-amzn-RequestId": "req-1"}
    body = {"message": f"Value '{appflow.NEW['accessToken']}' at 'credentials' failed"}
    return (status, body, headers, cls, name.split(":")[0], "req-1")


def ct_row(status: int, desc: str, cls: type[ProviderError]) -> Row:
    body = {
        "code": status * 10,
        "codeDesc": desc,
        "message": f"invalid value {ciphertrust.NEW_SECRET['password']}",
        "requestID": "rq-9",
    }
    return (status, body, {}, cls, desc, "rq-9")


def flow(status: int, code: str, cls: type[ProviderError]) -> Row:
    return (status, adobe.flow_error(code, status), {}, cls, f"FLOW-{code}", "")


def gateway(status: int, code: str, message: str, cls: type[ProviderError]) -> Row:
    return (status, {"error_code": code, "message": message}, {}, cls, code, message)


CASES = [
    Case(
        name="adobe",
        fake=lambda clock: adobe.FakeFlow(),
        adapter=lambda ctx, clock: AdobeFlowService(ctx),
        spec=adobe.spec,
        fields={"username": "u", "password": CANARY},
        write=("PATCH", "/connections/conn-1"),
        conflict=adobe_conflict,
        writes_on_conflict=1,
        mint="/ims/token/v3",
        unauthorized=httpx.Response(
            401, json={"error_code": "401013", "message": "Oauth token is not valid"}
        ),
        unauthorized_code="401013",
        errors=[
            flow(400, "1403-400", BadRequest),
            flow(412, "1404-412", VersionConflict),
            flow(404, "1101-404", NotFound),
            flow(400, "1455-400", BadRequest),
            flow(400, "1416-400", BadRequest),
            flow(400, "2105-400", BadRequest),
            flow(403, "2118-403", AuthError),
            flow(403, "2120-403", AuthError),
            flow(500, "1102-500", ProviderUnavailable),
            flow(503, "1103-503", ProviderUnavailable),
            flow(504, "1104-504", ProviderUnavailable),
            gateway(403, "403000", "Api Key is required", AuthError),
            gateway(403, "403003", "Api Key is invalid", AuthError),
            gateway(400, "400003", "org header missing", BadRequest),
            # Not in providers.md: any throttling answer must still map to RateLimited.
            gateway(429, "429050", "Too many requests", RateLimited),
        ],
    ),
    Case(
        name="appflow",
        fake=lambda clock: appflow.FakeAppFlow(),
        adapter=lambda ctx, clock: AppFlow(ctx),
        spec=lambda: appflow.make()[2],
        fields=appflow.NEW,
        write=("POST", "/update-connector-profile"),
        conflict=appflow_conflict,
        writes_on_conflict=1,
        errors=[
            appflow_row(400, "ValidationException", BadRequest),
            appflow_row(401, "ConnectorAuthenticationException", AuthError),
            appflow_row(404, "ResourceNotFoundException", NotFound),
            appflow_row(409, "ConflictException", VersionConflict),
            appflow_row(500, "InternalServerException", ProviderUnavailable),
            appflow_row(429, "ThrottlingException", RateLimited),
            appflow_row(400, "ThrottlingException:http://internal.amazon.com/coral/x", RateLimited),
            appflow_row(403, "AccessDeniedException", AuthError),
            appflow_row(503, "", ProviderUnavailable),
        ],
    ),
    Case(
        name="uipath",
        fake=lambda clock: uipath.FakeIdentity(),
        adapter=lambda ctx, clock: UiPathRobotAccounts(ctx),
        spec=uipath.spec,
        fields={"groupIds": ["g"], "displayName": "Display " + CANARY},
        write=("PUT", f"/api/RobotAccount/{uipath.ROBOT}"),
        conflict=uipath_conflict,
        writes_on_conflict=0,
        mint="/connect/token",
        unauthorized=httpx.Response(401, json={"error": "invalid_token"}),
        unauthorized_code="invalid_token",
        errors=[
            uipath_row(
                400,
                {"title": "One or more validation errors occurred."},
                BadRequest,
                "",
                "validation errors",
            ),
            uipath_row(403, {"error": "insufficient_scope"}, AuthError, "insufficient_scope", ""),
            uipath_row(404, {"message": "Robot account not found"}, NotFound, "", "not found"),
            uipath_row(409, {"message": "concurrency"}, VersionConflict, "", "concurrency"),
            uipath_row(422, {"detail": "bad"}, BadRequest, "", "bad"),
            uipath_row(429, {}, RateLimited, "", ""),
            uipath_row(500, {"message": "boom"}, ProviderUnavailable, "", "boom"),
            uipath_row(
                503,
                {"error": "down", "error_description": "maintenance"},
                ProviderUnavailable,
                "down",
                "maintenance",
            ),
        ],
    ),
    Case(
        name="commercelayer",
        fake=lambda clock: commercelayer.FakeProvisioning(),
        adapter=lambda ctx, clock: CommerceLayer(ctx),
        spec=commercelayer.spec,
        fields={"reference": "ref-" + CANARY},
        write=("PATCH", f"/api_credentials/{commercelayer.CRED_ID}"),
        conflict=commercelayer_conflict,
        writes_on_conflict=0,
        mint="/oauth/token",
        unauthorized=httpx.Response(
            401, json={"errors": [{"title": "Unauthorized", "code": "UNAUTHORIZED"}]}
        ),
        unauthorized_code="UNAUTHORIZED",
        errors=[
            (
                status,
                cl_errors(status),
                {"Retry-After": "7"},
                cls,
                "VALIDATION_ERROR",
                "is invalid: reference [redacted] taken (/data/attributes/reference); second",
            )
            for status, cls in [
                (400, BadRequest),
                (404, NotFound),
                (406, BadRequest),
                (409, VersionConflict),
                (415, BadRequest),
                (422, BadRequest),
                (423, ProviderUnavailable),
                (429, RateLimited),
                (500, ProviderUnavailable),
                (503, ProviderUnavailable),
            ]
        ],
    ),
    Case(
        name="ciphertrust",
        fake=lambda clock: ciphertrust.FakeCM(clock),
        adapter=lambda ctx, clock: CipherTrust(ctx, clock=clock),
        spec=ciphertrust.inplace,
        fields=ciphertrust.NEW_SECRET,
        write=("PATCH", "/connections/conn-1"),
        conflict=ciphertrust_conflict,
        writes_on_conflict=0,
        mint="/auth/tokens/",
        unauthorized=ciphertrust.error(401, "NCERRUnauthorizedAccess", "Token is expired"),
        unauthorized_code="NCERRUnauthorizedAccess",
        errors=[
            ct_row(400, "NCERRBadRequest", BadRequest),
            ct_row(403, "NCERRForbidden", AuthError),
            ct_row(404, "NCERRResourceNotFound", NotFound),
            ct_row(409, "NCERRConflict", VersionConflict),
            ct_row(422, "NCERRInvalidParamValue", BadRequest),
            ct_row(429, "NCERRTooManyRequests", RateLimited),
            ct_row(500, "NCERRInternalServerError", ProviderUnavailable),
        ],
    ),
]
TOKEN_CASES = [case for case in CASES if case.mint]
ERROR_ROWS = [
    pytest.param(case, row, id=f"{case.name}-{row[0]}-{row[4] or row[3].__name__}")
    for case in CASES
    for row in case.errors
]


def harness(case: Case) -> tuple[Clock, Any, FakeAPI]:
    clock = Clock(1_700_000_000.0)
    fake = case.fake(clock)
    return clock, fake, FakeAPI(fake)


def is_write(case: Case, request: httpx.Request) -> bool:
    method, suffix = case.write
    return request.method == method and request.url.path.endswith(suffix)


def mints(case: Case, api: FakeAPI) -> int:
    assert case.mint
    return len(api.calls("POST", case.mint))


def reject_tokens(case: Case, api: FakeAPI, times: int | None) -> None:
    """Answer every API call (``times`` of them, or all) as if its token were rejected."""
    original = api.handler
    left = [times]

    def handler(request: httpx.Request) -> Any:
        if case.mint and request.url.path.endswith(case.mint):
            return original(request)
        if left[0] is None or left[0] > 0:
            if left[0] is not None:
                left[0] -= 1
            assert case.unauthorized is not None
            return case.unauthorized
        return original(request)

    api.handler = handler


def test_every_adapter_is_covered() -> None:
    assert sorted(c.name for c in CASES) == [
        "adobe",
        "appflow",
        "ciphertrust",
        "commercelayer",
        "uipath",
    ]


@pytest.mark.parametrize("case", TOKEN_CASES, ids=lambda c: c.name)
def test_token_is_cached_until_expiry(case: Case) -> None:
    clock, fake, api = harness(case)

    async def go(ctx: ProviderContext) -> None:
        adapter = case.adapter(ctx, clock)
        for _ in range(4):
            await adapter.read(case.spec(), MemoryJournal())
        assert mints(case, api) == 1
        clock.advance(10**6)  # past any token's lifetime: a new one before using it
        await adapter.read(case.spec(), MemoryJournal())
        assert mints(case, api) == 2

    run_in(api, go, clock)


@pytest.mark.parametrize("case", TOKEN_CASES, ids=lambda c: c.name)
def test_401_remints_once_then_is_an_auth_error(case: Case) -> None:
    clock, fake, api = harness(case)

    async def go(ctx: ProviderContext) -> None:
        adapter = case.adapter(ctx, clock)
        await adapter.read(case.spec(), MemoryJournal())
        reject_tokens(case, api, times=1)  # the token expired server-side
        await adapter.read(case.spec(), MemoryJournal())
        assert mints(case, api) == 2
        reject_tokens(case, api, times=None)  # and now every token is refused
        with pytest.raises(AuthError) as info:
            await adapter.read(case.spec(), MemoryJournal())
        assert info.value.status == 401 and info.value.code == case.unauthorized_code
        assert mints(case, api) == 3  # exactly one more mint, no loop

    run_in(api, go, clock)


@pytest.mark.parametrize(("case", "row"), ERROR_ROWS)
def test_documented_status_maps_to_one_error_class(case: Case, row: Row) -> None:
    status, payload, headers, cls, code, text = row
    clock, fake, api = harness(case)

    async def go(ctx: ProviderContext) -> None:
        adapter = case.adapter(ctx, clock)
        live = await adapter.read(case.spec(), MemoryJournal())
        original = api.handler

        def failing(request: httpx.Request) -> Any:
            if is_write(case, request):
                return httpx.Response(status, json=payload, headers=headers)
            return original(request)

        api.handler = failing
        await adapter.apply(case.spec(), secret(case.fields), live, want(), MemoryJournal())

    with pytest.raises(cls) as info:
        run_in(api, go, clock)
    exc = info.value
    assert exc.status == status and exc.code == code
    assert text in str(exc)
    assert CANARY not in str(exc) and CANARY not in repr(exc)
    if status in (429, 500, 503) and "Retry-After" in headers:
        assert exc.retry_after == 7.0


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_change_since_read_is_a_conflict_never_an_overwrite(case: Case) -> None:
    clock, fake, api = harness(case)

    async def go(ctx: ProviderContext) -> None:
        adapter = case.adapter(ctx, clock)
        live = await adapter.read(case.spec(), MemoryJournal())
        case.conflict(fake)
        await adapter.apply(case.spec(), secret(case.fields), live, want(), MemoryJournal())

    with pytest.raises(VersionConflict) as info:
        run_in(api, go, clock)
    assert CANARY not in str(info.value)
    assert len([r for r in api.requests if is_write(case, r)]) == case.writes_on_conflict
