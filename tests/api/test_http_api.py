"""The HTTP API over real sockets: a `rotator api` process, the shared Redis, every endpoint,
every scope, missing/bad/unknown tokens, bad input, idempotency, and the audit of each call."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from .conftest import TOKENS, Api

pytestmark = pytest.mark.integration

# (method, path, scope); {job} is filled in with a real job id.
ENDPOINTS = [
    ("POST", "/v1/targets/erp/rotations", "enqueue"),
    ("GET", "/v1/jobs/{job}", "read"),
    ("GET", "/v1/targets", "read"),
    ("GET", "/v1/targets/crm", "read"),
    ("GET", "/v1/audit", "audit"),
]


def audit_events(api: Api, **params: Any) -> list[dict[str, Any]]:
    with api.client("all") as client:
        response = client.get("/v1/audit", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def enqueue(api: Api, target: str = "crm", token: str = "bot", **kwargs: Any) -> httpx.Response:
    with api.client(token) as client:
        return client.post(f"/v1/targets/{target}/rotations", **kwargs)


@pytest.fixture(scope="module")
def job_id(api: Api) -> str:
    response = enqueue(api, json={"reason": "fixture"})
    assert response.status_code in (200, 202), response.text
    value: str = response.json()["job_id"]
    return value


# --- authentication and scopes ------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS)
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-configured-token", "Bearer a b"],
)
def test_missing_malformed_and_unknown_tokens_get_401(
    api: Api, job_id: str, method: str, path: str, scope: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.request(
        method, api.url + path.format(job=job_id), headers=headers, json={}, timeout=30
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS)
@pytest.mark.parametrize("token", sorted(TOKENS))
def test_every_scope_on_every_endpoint(
    api: Api, job_id: str, method: str, path: str, scope: str, token: str
) -> None:
    with api.client(token) as client:
        response = client.request(method, path.format(job=job_id), json={})
    if scope in TOKENS[token]:
        assert response.status_code in (200, 202), response.text
    else:
        assert response.status_code == 403, response.text
        assert scope in response.json()["error"]["message"]


def test_a_denied_call_is_audited_with_the_token_name(api: Api) -> None:
    with api.client("auditor") as client:
        assert client.get("/v1/targets/erp").status_code == 403
    [event] = [
        e
        for e in audit_events(api, actor="api:auditor", event="api.request", target="erp")
        if " 403 " in e["detail"]
    ][:1]
    assert event["detail"].startswith("GET /v1/targets/{name} 403 id=")


def test_public_endpoints_need_no_token(api: Api) -> None:
    assert httpx.get(api.url + "/v1/healthz").json() == {"status": "ok"}
    assert httpx.get(api.url + "/v1/readyz").json() == {"status": "ready"}
    doc = httpx.get(api.url + "/v1/openapi.json").json()
    assert "/v1/targets/{name}/rotations" in doc["paths"]


# --- enqueue -------------------------------------------------------------------------------


def test_enqueue_returns_the_job_and_dedupes_like_the_cli(api: Api) -> None:
    first = enqueue(api, "crm", json={"reason": "leaked in ticket 4711"})
    second = enqueue(api, "crm")
    assert first.status_code in (200, 202)
    assert second.status_code == 200 and second.json()["created"] is False
    assert second.json()["job_id"] == first.json()["job_id"]
    job_id = first.json()["job_id"]
    with api.client("viewer") as client:
        record = client.get(f"/v1/jobs/{job_id}").json()
    assert record["target"] == "crm" and record["state"] == "queued"
    assert record["reason"] == "on-demand"
    assert record["actor"].startswith("api:")
    assert isinstance(record["journal"], dict)


def test_enqueue_creates_a_job_audited_with_the_token_as_actor(api: Api) -> None:
    with api.client("all") as client:
        response = client.post("/v1/targets/erp/rotations", json={"reason": "ci run 42"})
    assert response.status_code in (200, 202)
    job_id = response.json()["job_id"]
    if response.status_code == 202:
        [created] = audit_events(api, job=job_id, event="job.enqueued")
        assert created["actor"] == "api:all" and created["detail"] == "ci run 42"
    request_events = audit_events(api, job=job_id, event="api.request")
    assert any(e["detail"].startswith("POST /v1/targets/{name}/rotations") for e in request_events)


def test_enqueue_pins_a_version(api: Api) -> None:
    with api.client("all") as client:
        # A new target job needs the previous one gone: look at what was stored instead.
        response = client.post("/v1/targets/erp/rotations", json={"version": "v000000000042"})
    assert response.status_code in (200, 202)


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400,
         "bad_json"),
        ({"json": ["a list"]}, 400, "bad_request"),
        ({"json": {"reason": 7}}, 400, "bad_request"),
        ({"json": {"reason": "x" * 501}}, 400, "bad_request"),
        ({"json": {"version": "42"}}, 400, "bad_request"),
        ({"json": {"version": "v1; DROP"}}, 400, "bad_request"),
        ({"json": {"colour": "blue"}}, 400, "bad_request"),
        ({"content": b"reason=x", "headers": {"Content-Type": "text/plain"}}, 415,
         "unsupported_media_type"),
        ({"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}, 400,
         "bad_json"),
    ],
)  # fmt: skip
def test_bad_enqueue_bodies_get_4xx_json(
    api: Api, kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = enqueue(api, "crm", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text


def test_oversized_bodies_are_refused(api: Api) -> None:
    big = json.dumps({"reason": "x" * 4000}).encode()
    declared = enqueue(api, "crm", content=big, headers={"Content-Type": "application/json"})
    assert declared.status_code == 413

    def chunks() -> Any:  # no Content-Length: chunked transfer, counted while read
        for _ in range(10):
            yield b" " * 1000

    streamed = enqueue(api, "crm", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    ("target", "status"),
    [("no-such-target", 404), ("..", 404), ("%2e%2e", 400), ("a" * 200, 400), ("bad%20name", 400)],
)
def test_enqueue_of_unknown_or_invalid_targets(api: Api, target: str, status: int) -> None:
    response = enqueue(api, target)
    assert response.status_code == status, response.text
    assert "error" in response.json()


# --- idempotency ---------------------------------------------------------------------------


def test_same_idempotency_key_and_body_replays_the_same_response(api: Api) -> None:
    headers = {"Idempotency-Key": "incident-4711-a"}
    first = enqueue(api, "erp", json={"reason": "incident 4711"}, headers=headers)
    again = enqueue(api, "erp", json={"reason": "incident 4711"}, headers=headers)
    assert first.status_code in (200, 202)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    # Stored in Redis under the key table's name, with a TTL, holding no token.
    names = [k.decode() for k in api.redis.scan_iter(match=f"{api.prefix}api:idempotency:*")]
    assert names
    ttl = api.redis.ttl(names[0])
    assert 0 < ttl <= 86_400
    for name in names:
        stored = api.redis.get(name)
        assert stored is not None
        assert not any(token.encode() in stored for token in api.tokens.values())


def test_same_idempotency_key_with_another_body_is_422(api: Api) -> None:
    headers = {"Idempotency-Key": "incident-4711-b"}
    assert enqueue(api, "erp", json={"reason": "one"}, headers=headers).status_code in (200, 202)
    other = enqueue(api, "erp", json={"reason": "two"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    other_target = enqueue(api, "crm", json={"reason": "one"}, headers=headers)
    assert other_target.status_code == 422


def test_idempotency_keys_are_per_token(api: Api) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    mine = enqueue(api, "erp", token="bot", headers=headers)
    theirs = enqueue(api, "erp", token="all", headers=headers)
    assert mine.status_code in (200, 202) and theirs.status_code in (200, 202)
    assert "idempotent-replayed" not in theirs.headers


def test_error_responses_are_not_stored_under_the_key(api: Api) -> None:
    headers = {"Idempotency-Key": "retry-after-fix"}
    assert enqueue(api, "nope", headers=headers).status_code == 404
    again = enqueue(api, "nope", headers=headers)
    assert again.status_code == 404 and "idempotent-replayed" not in again.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "caf\u00e9"])
def test_bad_idempotency_keys_are_400(api: Api, key: str) -> None:
    response = enqueue(api, "erp", headers={"Idempotency-Key": key.encode()})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_idempotency_key"


# --- jobs, targets, audit -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "status"),
    [("0" * 32, 404), ("0" * 31, 400), ("Z" * 32, 400), ("0" * 33, 400), ("x" * 5000, 400)],
)
def test_job_lookup_errors(api: Api, job: str, status: int) -> None:
    with api.client("viewer") as client:
        response = client.get(f"/v1/jobs/{job}")
    assert response.status_code == status, response.text
    assert "error" in response.json()


def test_targets_list_and_detail(api: Api) -> None:
    with api.client("viewer") as client:
        listing = client.get("/v1/targets").json()["targets"]
        detail = client.get("/v1/targets/crm").json()
        missing = client.get("/v1/targets/nope")
        with_query = client.get("/v1/targets", params={"all": "1"})
    assert [t["name"] for t in listing] == ["crm", "erp"]
    assert {t["provider"] for t in listing} == {"adobe"}
    assert detail["name"] == "crm" and detail["resource_id"] == "conn-1"
    assert detail["schedule"] == "30d" and detail["secret"] == "s1"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_target"
    assert with_query.status_code == 400


def test_audit_filters_and_pages(api: Api, job_id: str) -> None:
    with api.client("auditor") as client:
        one_job = client.get("/v1/audit", params={"job": job_id}).json()["events"]
        assert one_job and {e["job_id"] for e in one_job} == {job_id}
        first = client.get("/v1/audit", params={"limit": 2}).json()
        assert len(first["events"]) == 2 and first["next_cursor"]
        second = client.get("/v1/audit", params={"limit": 2, "cursor": first["next_cursor"]})
        seqs = [e["seq"] for e in first["events"] + second.json()["events"]]
        assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 4
        since = client.get("/v1/audit", params={"since": "1h", "event": "api.request"}).json()
        assert since["events"] and all(e["event"] == "api.request" for e in since["events"])
        assert all(e["time"] > time.time() - 3700 for e in since["events"])
        globbed = client.get("/v1/audit", params={"actor": "api:view*"}).json()["events"]
        assert globbed and {e["actor"] for e in globbed} == {"api:viewer"}
        for bad in ({"limit": "0"}, {"nope": "1"}, {"since": "soon"}, {"cursor": "x"}):
            response = client.get("/v1/audit", params=bad)
            assert response.status_code == 400, bad
            assert response.json()["error"]["code"] == "bad_request"


def test_every_authenticated_call_is_audited_and_unauthenticated_ones_are_not(api: Api) -> None:
    before = len(audit_events(api, actor="api:viewer"))
    with api.client("viewer") as client:
        client.get("/v1/targets")
        client.get("/v1/targets/erp")
        client.get("/v1/jobs/" + "0" * 32)
    httpx.get(api.url + "/v1/targets", headers={"Authorization": "Bearer nobody"})
    after = audit_events(api, actor="api:viewer")
    assert len(after) == before + 3
    details = [e["detail"].rsplit(" id=", 1)[0] for e in after[:3]]
    assert details == [
        "GET /v1/jobs/{id} 404",
        "GET /v1/targets/{name} 200",
        "GET /v1/targets 200",
    ]
    assert not [e for e in audit_events(api) if not (e["actor"] or "").startswith("api:")
                and e["event"] == "api.request"]  # fmt: skip


def test_unknown_routes_and_methods_are_json(api: Api) -> None:
    with api.client("all") as client:
        missing = client.get("/v1/nothing")
        wrong = client.delete("/v1/targets")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_no_token_appears_in_logs_or_redis(api: Api) -> None:
    # Runs late in the module: every test above has sent its tokens by now.
    log = api.log.read_bytes()
    values = b"".join(api.redis.dump(k) or b"" for k in api.redis.scan_iter(match=f"{api.prefix}*"))
    for token in api.tokens.values():
        assert token.encode() not in log
        assert token.encode() not in values
    assert b"Authorization" not in log and b"Bearer" not in log


def test_a_key_whose_first_request_is_in_flight_gets_409(api: Api) -> None:
    # Given: the pending record a first request writes before it enqueues (begin's SET NX).
    from rotator.httpapi.idempotency import IdempotencyStore, request_fingerprint
    from rotator.store.keys import Keys

    body = b'{"reason":"racing"}'
    name = IdempotencyStore(None, Keys(api.prefix), 60)._key("bot", "in-flight")  # type: ignore[arg-type]
    fingerprint = request_fingerprint("POST", "/v1/targets/erp/rotations", body)
    api.redis.set(name, json.dumps({"fingerprint": fingerprint, "status": None}), ex=30)
    # When: a duplicate arrives meanwhile. Then: 409 with Retry-After, nothing enqueued.
    response = enqueue(
        api,
        "erp",
        content=body,
        headers={"Idempotency-Key": "in-flight", "Content-Type": "application/json"},
    )
    assert response.status_code == 409
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "idempotency_key_in_use"
