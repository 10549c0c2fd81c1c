from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from rotator.errors import (
    AuthError,
    BadRequest,
    NotFound,
    PermanentError,
    TransportError,
    VersionConflict,
)
from rotator.providers.base import Evidence, ProviderContext
from rotator.providers.ciphertrust import STEP_NEW, STEP_RETIRE, CipherTrust

from .helpers import CANARY, Clock, FakeAPI, MemoryJournal, body, run_in, secret, target, want

HOST = "https://cm.example.com"
BASE = f"{HOST}/api/v1"
CONNS = "/api/v1/connectionmgmt/services/salesforce/connections"
ORG = "org-1"
# rotator tags the connections it creates with the organization (see _prefix)
TAG = hashlib.sha256(ORG.encode()).hexdigest()[:8]
CREDS = {"username": "admin", "password": "cm-pass"}
NEW_SECRET = {"client_secret": "cs-" + CANARY, "password": "pw-" + CANARY}
SECRET_KEYS = ("client_secret", "password")


def stamp(epoch: float) -> str:
    # CipherTrust timestamps carry nanoseconds
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def error(status: int, desc: str, message: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"code": status * 10, "codeDesc": desc, "message": message, "requestID": "rq-9"},
    )


class FakeCM:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.ids = (f"conn-{i}" for i in itertools.count(1))
        self.connections: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, Any]] = {}
        self.valid: set[str] = set()
        self.refresh: set[str] = set()
        self.grants: list[str] = []
        self.password_bodies: list[dict[str, Any]] = []
        self.test_ok: bool | None = True
        self.tested: list[dict[str, Any]] = []
        old = self.add("sfdc-main", meta={"owner": "ops"}, client_secret="old-secret")
        self.org: dict[str, Any] = {
            "id": ORG,
            "name": "acme",
            "organization_id": "00D000000000001",
            "connection": old,
            "cloud_name": "sfdc",
            "createdAt": stamp(clock.now - 10**6),
            "updatedAt": stamp(clock.now - 10**6),
        }
        self.other_orgs: list[dict[str, Any]] = []  # organizations rotator does not rotate
        self.test_answer: Any = None  # a connection-test answer of another shape

    def add(
        self, name: str, meta: dict[str, Any] | None = None, age: float = 10**6, **secrets: Any
    ) -> str:
        cid = next(self.ids)
        at = stamp(self.clock.now - age)
        self.connections[cid] = {
            "id": cid,
            "uri": f"kylo:{cid}",
            "name": name,
            "products": ["cckm"],
            "cloud_name": "Salesforce Cloud",
            "client_id": "sf-client",
            "username": "sf@acme",
            "meta": meta or {},
            "createdAt": at,
            "updatedAt": at,
        }
        self.secrets[cid] = dict(secrets)
        return cid

    def find(self, ref: str) -> dict[str, Any] | None:
        if ref in self.connections:
            return self.connections[ref]
        return next((c for c in self.connections.values() if c["name"] == ref), None)

    def mint(self) -> httpx.Response:
        jwt = f"jwt{len(self.grants)}"
        refresh = f"rt{len(self.grants)}"
        self.valid.add(jwt)
        self.refresh.add(refresh)
        return httpx.Response(
            200,
            json={
                "jwt": jwt,
                "duration": 300,
                "token_type": "Bearer",
                "client_id": "c",
                "refresh_token": refresh,
            },
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.path)
        if path == "/api/v1/auth/tokens/":
            return self.token(body(request))
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.valid:
            return error(401, "NCERRUnauthorizedAccess", "Token is expired")
        if path == "/api/v1/connectionmgmt/services/salesforce/connection-test":
            return self.connection_test(body(request))
        if path == CONNS and request.method == "GET":
            return self.list_connections(request)
        if path == CONNS and request.method == "POST":
            return self.create_connection(body(request))
        if path.startswith(CONNS + "/"):
            return self.one_connection(request, path.removeprefix(CONNS + "/"))
        if path == f"/api/v1/cckm/sfdc/organizations/{ORG}":
            return self.organization(request)
        if path == "/api/v1/cckm/sfdc/organizations" and request.method == "GET":
            orgs = [self.org, *self.other_orgs]
            return httpx.Response(
                200, json={"skip": 0, "limit": 100, "total": len(orgs), "resources": orgs}
            )
        return error(404, "NCERRResourceNotFound", "no such endpoint")

    def token(self, payload: dict[str, Any]) -> httpx.Response:
        self.grants.append(payload["grant_type"])
        if payload["grant_type"] == "password":
            self.password_bodies.append(payload)
            if payload["password"] != "cm-pass":
                return error(401, "NCERRUnauthorizedAccess", "bad credentials")
            return self.mint()
        if payload.get("refresh_token") not in self.refresh:
            return error(401, "NCERRUnauthorizedAccess", "refresh token invalid")
        return self.mint()

    def connection_test(self, payload: dict[str, Any]) -> httpx.Response:
        self.tested.append(payload)
        if self.test_ok is None:  # CipherTrust's own way: 200 with connection_ok false
            return httpx.Response(200, json={"connection_ok": False, "message": "bad creds"})
        if not self.test_ok:
            return error(
                400,
                "NCERRInvalidParamValue",
                f"authentication failed for {payload.get('client_secret')}",
            )
        if self.test_answer is not None:
            return httpx.Response(200, json=self.test_answer)
        return httpx.Response(200, json={"connection_ok": True})

    def list_connections(self, request: httpx.Request) -> httpx.Response:
        name = request.url.params.get("name")
        items = [
            {k: v for k, v in c.items() if k != "meta"}  # the list omits details
            for c in self.connections.values()
            if not name
            or c["name"] == name
            or (name.endswith("*") and c["name"].startswith(name[:-1]))
        ]
        skip = int(request.url.params.get("skip", 0))
        limit = int(request.url.params.get("limit", 10))
        return httpx.Response(
            200,
            json={
                "skip": skip,
                "limit": limit,
                "total": len(items),
                "resources": items[skip : skip + limit],
            },
        )

    def create_connection(self, payload: dict[str, Any]) -> httpx.Response:
        if self.find(payload["name"]):
            return error(409, "NCERRConflict", "connection with this name already exists")
        cid = self.add(payload["name"], age=0)
        self.secrets[cid] = {k: payload.get(k) for k in SECRET_KEYS}
        conn = self.connections[cid]
        conn.update({k: v for k, v in payload.items() if k not in SECRET_KEYS})
        return httpx.Response(201, json=conn)

    def one_connection(self, request: httpx.Request, ref: str) -> httpx.Response:
        conn = self.find(ref)
        if conn is None:
            return error(404, "NCERRResourceNotFound", "connection not found")
        if request.method == "GET":
            return httpx.Response(200, json=conn)
        if request.method == "DELETE":
            if self.org["connection"] in (conn["id"], conn["name"]):
                return error(409, "NCERRConflict", "connection in use")
            del self.connections[conn["id"]]
            return httpx.Response(204)
        payload = body(request)
        self.secrets[conn["id"]].update({k: payload[k] for k in SECRET_KEYS if k in payload})
        conn.update({k: v for k, v in payload.items() if k not in SECRET_KEYS})
        conn["updatedAt"] = stamp(self.clock.now)
        return httpx.Response(200, json=conn)

    def organization(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=self.org)
        ref = body(request)["connection"]
        if self.find(ref) is None:
            return error(422, "NCERRInvalidParamValue", "unknown connection")
        self.org.update(connection=ref, updatedAt=stamp(self.clock.now))
        return httpx.Response(200, json=self.org)


def bg(**options: Any) -> Any:
    return target(
        "ciphertrust", BASE, ORG, options={"strategy": "blue-green", **options}, credentials=CREDS
    )


def inplace(cid: str = "conn-1", **options: Any) -> Any:
    return target("ciphertrust", BASE, cid, options=options, credentials=CREDS)


def setup() -> tuple[Clock, FakeCM, FakeAPI]:
    clock = Clock(1_700_000_000.0)
    fake = FakeCM(clock)
    return clock, fake, FakeAPI(fake)


# -- tokens ----------------------------------------------------------------------------------


def test_password_grant_then_cache_then_refresh_grant_before_expiry() -> None:
    clock, fake, api = setup()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        spec = inplace(domain="sales")
        for _ in range(5):
            await adapter.read(spec, MemoryJournal())
        assert fake.grants == ["password"]
        clock.advance(239)  # the 300 s JWT is still fresh enough
        await adapter.read(spec, MemoryJournal())
        assert fake.grants == ["password"]
        clock.advance(2)  # within the refresh margin: renew through the refresh token
        await adapter.read(spec, MemoryJournal())
        assert fake.grants == ["password", "refresh_token"]

    run_in(api, go, clock)
    assert fake.password_bodies == [
        {"grant_type": "password", "username": "admin", "password": "cm-pass", "domain": "sales"}
    ]
    assert api.calls("POST", "/auth/tokens/")[0].url == f"{BASE}/auth/tokens/"


def test_failed_refresh_falls_back_to_password_and_401_remints_once() -> None:
    clock, fake, api = setup()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        await adapter.read(inplace(), MemoryJournal())
        fake.refresh.clear()
        fake.valid.clear()  # JWT expired server-side: 401 -> one re-mint
        await adapter.read(inplace(), MemoryJournal())
        assert fake.grants == ["password", "refresh_token", "password"]
        original = fake.__call__

        def deny(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/auth/tokens/"):
                return original(request)
            return error(401, "NCERRUnauthorizedAccess", "Token is expired")

        api.handler = deny
        with pytest.raises(AuthError) as info:
            await adapter.read(inplace(), MemoryJournal())
        assert info.value.code == "NCERRUnauthorizedAccess"
        assert "rq-9" in str(info.value)
        assert fake.grants == ["password", "refresh_token", "password", "refresh_token"]

    run_in(api, go, clock)


def test_wrong_password_is_auth_error() -> None:
    clock, fake, api = setup()

    async def go(ctx: ProviderContext):
        spec = target(
            "ciphertrust", BASE, "conn-1", credentials={"username": "admin", "password": CANARY}
        )
        await CipherTrust(ctx, clock=clock).read(spec, MemoryJournal())

    with pytest.raises(AuthError) as info:
        run_in(api, go, clock)
    assert CANARY not in str(info.value)


# -- in-place --------------------------------------------------------------------------------


def test_in_place_patch_secret_and_marker_in_meta() -> None:
    clock, fake, api = setup()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        live = await adapter.read(inplace(), MemoryJournal())
        assert adapter.carries(live, want()) is Evidence.NOT_OURS
        clock.advance(5)
        result = await adapter.apply(inplace(), secret(NEW_SECRET), live, want(), MemoryJournal())
        after = await adapter.read(inplace(), MemoryJournal())
        return live, result, after

    live, result, after = run_in(api, go, clock)
    patch = body(api.calls("PATCH", "/conn-1")[0])
    assert patch == {**NEW_SECRET, "meta": {"owner": "ops", "rotator": want().marker}}
    assert fake.secrets["conn-1"]["client_secret"] == NEW_SECRET["client_secret"]
    assert after.marker == want().marker and after.version == result.version != live.version
    adapter = CipherTrust(ProviderContext())
    assert adapter.carries(after, want(), result.version) is Evidence.OURS
    # an out-of-band secret change keeps the marker but not the version after ours
    changed = type(after)(version="later", marker=after.marker)
    assert adapter.carries(changed, want(), result.version) is Evidence.NOT_OURS
    for value in (live, result, after):
        assert CANARY not in repr(value)


def test_in_place_unknown_connection_is_not_found() -> None:
    clock, fake, api = setup()

    async def go(ctx: ProviderContext):
        await CipherTrust(ctx, clock=clock).read(inplace("nope"), MemoryJournal())

    with pytest.raises(NotFound):
        run_in(api, go, clock)


def test_transport_failure_on_patch_may_have_applied() -> None:
    clock, fake, api = setup()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        live = await adapter.read(inplace(), MemoryJournal())
        api.drop_next[("PATCH", "/conn-1")] = httpx.ReadTimeout("lost")
        with pytest.raises(TransportError) as info:
            await adapter.apply(inplace(), secret(NEW_SECRET), live, want(), MemoryJournal())
        assert info.value.maybe_applied
        after = await adapter.read(inplace(), MemoryJournal())
        assert adapter.carries(after, want()) is Evidence.OURS  # the lost update is visibly ours

    run_in(api, go, clock)


def test_unknown_strategy_is_rejected() -> None:
    clock, fake, api = setup()

    async def go(ctx: ProviderContext):
        await CipherTrust(ctx, clock=clock).read(inplace(strategy="sideways"), MemoryJournal())

    with pytest.raises(BadRequest, match="strategy"):
        run_in(api, go, clock)


# -- blue-green ------------------------------------------------------------------------------


async def rotate(
    adapter: CipherTrust, spec: Any, journal: MemoryJournal, version: str, job: str = "job1"
) -> Any:
    w = want(job, version)
    live = await adapter.read(spec, journal)
    await adapter.apply(spec, secret(NEW_SECRET, version), live, w, journal)
    after = await adapter.read(spec, journal)
    assert adapter.carries(after, w) is Evidence.OURS
    return after


def test_blue_green_creates_tests_and_repoints() -> None:
    clock, fake, api = setup()
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        live = await adapter.read(bg(), journal)
        assert live.summary["connection_name"] == "sfdc-main"
        assert adapter.carries(live, want()) is Evidence.NOT_OURS
        return live, await rotate(adapter, bg(), journal, "v000000000002")

    live, after = run_in(api, go, clock)
    created = body(api.calls("POST", CONNS)[0])
    assert created["name"] == f"sfdc-main-{TAG}-v000000000002"
    assert created["products"] == ["cckm"]
    assert created["meta"] == {"rotator": want().marker, "rotator_org": ORG}
    assert {k: created[k] for k in ("client_id", "username", "cloud_name")} == {
        "client_id": "sf-client",
        "username": "sf@acme",
        "cloud_name": "Salesforce Cloud",
    }
    assert fake.tested == [
        {
            "cloud_name": "Salesforce Cloud",
            "client_id": "sf-client",
            "username": "sf@acme",
            **NEW_SECRET,
        }
    ]
    new_id = journal.steps[STEP_NEW]["id"]
    assert fake.org["connection"] == new_id
    assert fake.secrets[new_id]["client_secret"] == NEW_SECRET["client_secret"]
    assert journal.steps[STEP_RETIRE]["connection_id"] == "conn-1"
    assert "conn-1" in fake.connections  # kept for the grace period
    assert after.version != live.version
    assert CANARY not in repr(after) and CANARY not in repr(live)
    # order: create -> test -> re-point
    order = [
        (r.method, r.url.path.rsplit("/", 1)[-1])
        for r in api.requests
        if r.method in ("POST", "PATCH") and "auth" not in r.url.path
    ]
    assert order == [("POST", "connections"), ("POST", "connection-test"), ("PATCH", ORG)]


def test_blue_green_crash_after_step_one_resumes_without_duplicate() -> None:
    clock, fake, api = setup()
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        live = await CipherTrust(ctx, clock=clock).read(bg(), journal)
        api.fail_next[("POST", "/connection-test")] = httpx.ConnectError("cm down")
        with pytest.raises(TransportError):
            await CipherTrust(ctx, clock=clock).apply(
                bg(), secret(NEW_SECRET), live, want(), journal
            )
        assert journal.steps[STEP_NEW]["id"]
        # a new process (new adapter instance) resumes from the same journal
        adapter = CipherTrust(ctx, clock=clock)
        live = await adapter.read(bg(), journal)
        assert adapter.carries(live, want()) is Evidence.NOT_OURS
        await adapter.apply(bg(), secret(NEW_SECRET), live, want(), journal)
        assert adapter.carries(await adapter.read(bg(), journal), want()) is Evidence.OURS

    run_in(api, go, clock)
    assert len(api.calls("POST", CONNS)) == 1
    assert [c["name"] for c in fake.connections.values()] == [
        "sfdc-main",
        f"sfdc-main-{TAG}-v000000000002",
    ]


@pytest.mark.parametrize("journal_survives", [True, False])
def test_blue_green_lost_create_response_reuses_connection(journal_survives: bool) -> None:
    clock, fake, api = setup()
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        live = await adapter.read(bg(), journal)
        api.drop_next[("POST", CONNS)] = httpx.ReadTimeout("lost")
        with pytest.raises(TransportError) as info:
            await adapter.apply(bg(), secret(NEW_SECRET), live, want(), journal)
        assert info.value.maybe_applied
        retry_journal = journal if journal_survives else MemoryJournal()
        await adapter.apply(bg(), secret(NEW_SECRET), live, want(), retry_journal)

    run_in(api, go, clock)
    assert len(fake.connections) == 2
    assert fake.org["connection"] == "conn-2"


def test_blue_green_duplicate_name_409_is_reused() -> None:
    clock, fake, api = setup()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        live = await adapter.read(bg(), MemoryJournal())
        # The name lookup misses (e.g. the list is eventually consistent) but create says 409.
        fake.add(
            f"sfdc-main-{TAG}-v000000000002",
            meta={"rotator": want().marker, "rotator_org": ORG},
            **NEW_SECRET,
        )
        original = fake.__call__

        def hide(request: httpx.Request) -> httpx.Response:
            if request.method == "GET" and request.url.path == CONNS:
                return httpx.Response(
                    200, json={"skip": 0, "limit": 100, "total": 0, "resources": []}
                )
            return original(request)

        api.handler = hide
        await adapter.apply(bg(), secret(NEW_SECRET), live, want(), MemoryJournal())

    run_in(api, go, clock)
    assert fake.org["connection"] == "conn-2"
    assert len(fake.connections) == 2
    assert not api.calls("PATCH", "/conn-2")  # already carries our marker: no re-write


def test_blue_green_foreign_connection_with_our_name_is_not_touched() -> None:
    clock, fake, api = setup()
    fake.add(f"sfdc-main-{TAG}-v000000000002", meta={"owner": "someone"})

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        live = await adapter.read(bg(), MemoryJournal())
        await adapter.apply(bg(), secret(NEW_SECRET), live, want(), MemoryJournal())

    with pytest.raises(PermanentError, match="name_prefix"):
        run_in(api, go, clock)
    assert fake.org["connection"] == "conn-1"
    assert not api.calls("PATCH")


@pytest.mark.parametrize("outcome", [False, None])
def test_blue_green_failed_connection_test_is_permanent_and_repoints_nothing(
    outcome: bool | None,
) -> None:
    clock, fake, api = setup()
    fake.test_ok = outcome

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        live = await adapter.read(bg(), MemoryJournal())
        await adapter.apply(bg(), secret(NEW_SECRET), live, want(), MemoryJournal())

    with pytest.raises(PermanentError, match="failed its connection test") as info:
        run_in(api, go, clock)
    assert type(info.value) is PermanentError
    assert CANARY not in str(info.value)
    assert fake.org["connection"] == "conn-1"


@pytest.mark.parametrize(
    "answer",
    [{}, {"status": "ok", "message": CANARY}, {"connection_ok": "true"}, [], "ok"],
    ids=["empty", "other-keys", "string-true", "list", "string"],
)
def test_connection_test_fails_closed_on_an_answer_it_cannot_read(answer: Any) -> None:
    clock, fake, api = setup()
    fake.test_answer = answer

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        live = await adapter.read(bg(), MemoryJournal())
        await adapter.apply(bg(), secret(NEW_SECRET), live, want(), MemoryJournal())

    with pytest.raises(PermanentError, match="does not say connection_ok: true") as info:
        run_in(api, go, clock)
    assert CANARY not in str(info.value)  # the shape, never the values
    if answer == {"status": "ok", "message": CANARY}:
        assert "{message: str, status: str}" in str(info.value)
    assert fake.org["connection"] == "conn-1"


def test_blue_green_org_changed_meanwhile_is_conflict() -> None:
    clock, fake, api = setup()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        live = await adapter.read(bg(), MemoryJournal())
        fake.org["updatedAt"] = stamp(clock.now)  # someone edited the org
        await adapter.apply(bg(), secret(NEW_SECRET), live, want(), MemoryJournal())

    with pytest.raises(VersionConflict):
        run_in(api, go, clock)
    assert fake.org["connection"] == "conn-1"


def test_after_promote_deletes_retired_connection_only_after_grace() -> None:
    clock, fake, api = setup()
    journal = MemoryJournal()
    opted_in = bg(retire_foreign_connections=True)  # conn-1 is hand-made

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        await rotate(adapter, opted_in, journal, "v000000000002")
        await adapter.after_promote(opted_in, journal)
        assert "conn-1" in fake.connections  # inside the grace period
        clock.advance(3601)
        await adapter.after_promote(opted_in, journal)
        assert "conn-1" not in fake.connections
        await adapter.after_promote(opted_in, journal)  # idempotent: gone, nothing to delete

    run_in(api, go, clock)
    assert fake.org["connection"] in fake.connections
    assert [r.url.path.rsplit("/", 1)[-1] for r in api.calls("DELETE")] == ["conn-1"]
    assert len(journal.log) == 3  # after_promote records nothing: the lease is gone by then


def test_hand_made_connection_is_kept_unless_the_target_opts_in() -> None:
    # Issue 11 item 7: with grace 0 the first rotation deleted the operator's connection.
    clock, fake, api = setup()
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        await rotate(adapter, bg(grace_period_seconds=0), journal, "v000000000002")
        await adapter.after_promote(bg(grace_period_seconds=0), journal)

    run_in(api, go, clock)
    assert "conn-1" in fake.connections
    assert not api.calls("DELETE")


def test_a_connection_another_organization_uses_is_never_deleted() -> None:
    clock, fake, api = setup()
    fake.other_orgs.append({"id": "org-2", "name": "beta", "connection": "sfdc-main"})
    journal = MemoryJournal()
    opted_in = bg(grace_period_seconds=0, retire_foreign_connections=True)

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        await rotate(adapter, opted_in, journal, "v000000000002")
        await adapter.after_promote(opted_in, journal)

    run_in(api, go, clock)
    assert "conn-1" in fake.connections  # org-2 still points at it by name
    assert not api.calls("DELETE")


def test_after_promote_never_deletes_the_current_connection() -> None:
    clock, fake, api = setup()
    journal = MemoryJournal()

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        await rotate(adapter, bg(grace_period_seconds=0), journal, "v000000000002")
        fake.org["connection"] = "conn-1"  # an operator rolled back
        await adapter.after_promote(bg(grace_period_seconds=0), journal)

    run_in(api, go, clock)
    assert "conn-1" in fake.connections
    assert not api.calls("DELETE", "/conn-1")


def test_later_rotation_sweeps_old_rotator_connections() -> None:
    clock, fake, api = setup()
    foreign = fake.add(f"sfdc-main-{TAG}-v000000000001", meta={"rotator_org": "org-2"})

    async def go(ctx: ProviderContext):
        adapter = CipherTrust(ctx, clock=clock)
        await rotate(adapter, bg(), MemoryJournal(), "v000000000002", "job2")
        clock.advance(60)
        await rotate(adapter, bg(), MemoryJournal(), "v000000000003", "job3")
        v2 = next(
            c["id"]
            for c in fake.connections.values()
            if c["name"] == f"sfdc-main-{TAG}-v000000000002"
        )
        clock.advance(3700)
        await rotate(adapter, bg(), MemoryJournal(), "v000000000004", "job4")
        return v2

    v2 = run_in(api, go, clock)
    names = sorted(c["name"] for c in fake.connections.values())
    assert v2 not in fake.connections
    # kept: the human-made original (only its journal may retire it), the other org's
    # connection, the one retired just now and the current one
    assert names == [
        "sfdc-main",
        f"sfdc-main-{TAG}-v000000000001",
        f"sfdc-main-{TAG}-v000000000003",
        f"sfdc-main-{TAG}-v000000000004",
    ]
    assert foreign in fake.connections
    assert fake.org["connection"] == next(
        c["id"] for c in fake.connections.values() if c["name"] == f"sfdc-main-{TAG}-v000000000004"
    )


def test_name_prefix_option() -> None:
    clock, fake, api = setup()

    async def go(ctx: ProviderContext):
        await rotate(
            CipherTrust(ctx, clock=clock),
            bg(name_prefix="acme-sfdc"),
            MemoryJournal(),
            "v000000000002",
        )

    run_in(api, go, clock)
    assert body(api.calls("POST", CONNS)[0])["name"] == "acme-sfdc-v000000000002"
