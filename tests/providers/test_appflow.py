from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from rotator.errors import (
    BadRequest,
    NotFound,
    TransportError,
    VersionConflict,
)
from rotator.providers.appflow import AppFlow, client_token, profile_version
from rotator.providers.base import Evidence, ProviderContext, RemoteState

from .helpers import CANARY, FakeAPI, MemoryJournal, body, run_in, secret, target, want

BASE = "https://appflow.us-east-1.amazonaws.com"
KEY_ID = "AKIDEXAMPLE"
KEY_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDS = {"aws_access_key_id": KEY_ID, "aws_secret_access_key": KEY_SECRET}


class FakeAppFlow:
    """Just enough AppFlow: Describe hides credentials; clientToken replays."""

    def __init__(self) -> None:
        self.profiles: dict[str, dict[str, Any]] = {
            "sfdc": {
                "connectorProfileArn": "arn:aws:appflow:us-east-1:123:connectorprofile/sfdc",
                "connectorProfileName": "sfdc",
                "connectorType": "Salesforce",
                "connectionMode": "Public",
                "credentialsArn": "arn:aws:secretsmanager:us-east-1:123:secret:x",
                "connectorProfileProperties": {
                    "Salesforce": {"instanceUrl": "https://example.my.salesforce.com"}
                },
                "createdAt": 1700000000.0,
                "lastUpdatedAt": 1700000000.5,
            }
        }
        self.credentials: dict[str, Any] = {}
        self.tokens: dict[str, str] = {}
        self.error: tuple[int, str, str] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.error:
            status, name, message = self.error
            return httpx.Response(
                status,
                headers={"x-amzn-ErrorType": name, "x-amzn-RequestId": "req-1"},
                json={"message": message},
            )
        payload = body(request)
        if request.url.path == "/describe-connector-profiles":
            names = payload["connectorProfileNames"]
            found = [p for n, p in self.profiles.items() if n in names]
            return httpx.Response(200, json={"connectorProfileDetails": found})
        if request.url.path == "/update-connector-profile":
            token = payload["clientToken"]
            digest = hashlib.sha256(
                json.dumps({k: v for k, v in payload.items() if k != "clientToken"}).encode()
            ).hexdigest()
            profile = self.profiles[payload["connectorProfileName"]]
            if token in self.tokens:
                if self.tokens[token] != digest:
                    return httpx.Response(
                        409,
                        headers={"x-amzn-ErrorType": "ConflictException"},
                        json={"message": "clientToken reused with different parameters"},
                    )
                return httpx.Response(
                    200, json={"connectorProfileArn": profile["connectorProfileArn"]}
                )
            self.tokens[token] = digest
            config = payload["connectorProfileConfig"]
            self.credentials[profile["connectorProfileName"]] = config[
                "connectorProfileCredentials"
            ]
            profile["connectorProfileProperties"] = config["connectorProfileProperties"]
            profile["lastUpdatedAt"] += 1
            return httpx.Response(200, json={"connectorProfileArn": profile["connectorProfileArn"]})
        return httpx.Response(404, json={"message": "no route"})


def make(options: dict[str, Any] | None = None, credentials: dict[str, str] | None = None):
    fake = FakeAppFlow()
    api = FakeAPI(fake)
    spec = target(
        "appflow",
        BASE,
        "sfdc",
        options={"region": "us-east-1", **(options or {})},
        credentials=CREDS if credentials is None else credentials,
    )
    return fake, api, spec


NEW = {"accessToken": "tok-" + CANARY, "refreshToken": "ref-" + CANARY}


def test_read_reports_last_updated_at_and_properties() -> None:
    fake, api, spec = make()

    async def go(ctx: ProviderContext):
        return await AppFlow(ctx).read(spec, MemoryJournal())

    live = run_in(api, go)
    assert live.version == profile_version(fake.profiles["sfdc"])
    assert live.summary["lastUpdatedAt"] == 1700000000.5
    assert live.marker is None
    assert live.summary["connectorType"] == "Salesforce"
    assert live.summary["connectorProfileProperties"]["Salesforce"]["instanceUrl"]
    request = api.requests[0]
    assert request.method == "POST"
    assert body(request) == {"connectorProfileNames": ["sfdc"]}
    assert request.headers["content-type"] == "application/json"


def test_unknown_profile_is_not_found() -> None:
    fake, api, spec = make()
    fake.profiles.clear()

    async def go(ctx: ProviderContext):
        return await AppFlow(ctx).read(spec, MemoryJournal())

    with pytest.raises(NotFound):
        run_in(api, go)


def verify_sigv4(request: httpx.Request, secret_key: str = KEY_SECRET) -> dict[str, str]:
    """Recompute the signature independently from what went over the wire."""
    auth = request.headers["authorization"]
    match = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
        r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})",
        auth,
    )
    assert match, auth
    access_key, _, region, service, signed, signature = match.groups()
    headers = {name: request.headers[name] for name in signed.split(";")}
    aws = AWSRequest(
        method=request.method, url=str(request.url), data=request.content, headers=headers
    )
    aws.context["timestamp"] = request.headers["x-amz-date"]
    token = request.headers.get("x-amz-security-token")
    signer = SigV4Auth(Credentials(access_key, secret_key, token), service, region)
    canonical = signer.canonical_request(aws)
    expected = signer.signature(signer.string_to_sign(aws, canonical), aws)
    assert expected == signature
    return {"access_key": access_key, "region": region, "service": service, "signed": signed}


def test_every_request_is_sigv4_signed_for_appflow() -> None:
    fake, api, spec = make(options={"region": "eu-west-1"})

    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec, MemoryJournal())
        await adapter.apply(spec, secret(NEW), live, want(), MemoryJournal())

    run_in(api, go)
    assert len(api.requests) == 2
    for request in api.requests:
        facts = verify_sigv4(request)
        assert facts == {
            "access_key": KEY_ID,
            "region": "eu-west-1",
            "service": "appflow",
            "signed": facts["signed"],
        }
        assert "host" in facts["signed"].split(";")
        assert "x-amz-date" in facts["signed"].split(";")
    # A tampered body no longer verifies.
    tampered = httpx.Request(
        "POST", api.requests[0].url, headers=api.requests[0].headers, content=b'{"x":1}'
    )
    with pytest.raises(AssertionError):
        verify_sigv4(tampered)


def test_session_token_is_signed() -> None:
    fake, api, spec = make(credentials={**CREDS, "aws_session_token": "session-tok"})

    async def go(ctx: ProviderContext):
        return await AppFlow(ctx).read(spec, MemoryJournal())

    run_in(api, go)
    request = api.requests[0]
    assert request.headers["x-amz-security-token"] == "session-tok"
    assert "x-amz-security-token" in verify_sigv4(request)["signed"]


def test_default_credential_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-key")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    fake, api, spec = make(options={"credentials": "default-chain"}, credentials={})

    async def go(ctx: ProviderContext):
        return await AppFlow(ctx).read(spec, MemoryJournal())

    run_in(api, go)
    assert verify_sigv4(api.requests[0], "env-secret-key")["access_key"] == "AKIDFROMENV"


def test_default_chain_is_never_used_unless_the_target_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given AWS keys in the environment, which the default chain would pick up
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-key")
    # When a target has no AWS credentials and does not choose the default chain
    fake, api, spec = make(credentials={})

    async def go(ctx: ProviderContext):
        return await AppFlow(ctx).read(spec, MemoryJournal())

    # Then nothing is signed or sent: a configuration error naming the explicit choice
    with pytest.raises(BadRequest, match="credentials: default-chain"):
        run_in(api, go)
    assert api.requests == []


@pytest.mark.parametrize(
    ("options", "credentials", "problem"),
    [
        ({"region": "eu-west-1"}, {}, "no AWS credentials configured"),
        ({"region": "eu-west-1", "credentials": "default-chain"}, {}, None),
        (
            {"region": "eu-west-1"},
            {"aws_access_key_id": "env:A", "aws_secret_access_key": "env:B"},
            None,
        ),
        (
            {"region": "eu-west-1", "credentials": "default-chain"},
            {"aws_access_key_id": "env:A"},
            "both configured",
        ),
        ({"region": "eu-west-1", "credentials": "instance"}, {}, "must be 'default-chain'"),
        ({"credentials": "default-chain"}, {}, "option 'region' is required"),
    ],
)
def test_check_options(
    options: dict[str, Any], credentials: dict[str, str], problem: str | None
) -> None:
    problems = AppFlow.check_options(options, credentials)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


def test_validation_exception_about_the_client_token_is_a_conflict() -> None:
    fake, api, spec = make()
    fake.error = (
        400,
        "ValidationException",
        "The clientToken was used with different request parameters",
    )

    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = RemoteState(version="1", summary={"connectorType": "Salesforce"})
        await adapter.apply(spec, secret(NEW), live, want(), MemoryJournal())

    with pytest.raises(VersionConflict):
        run_in(api, go)


def test_apply_sends_properties_mode_and_typed_credentials() -> None:
    fake, api, spec = make()
    fake.profiles["sfdc"]["connectionMode"] = "Private"

    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec, MemoryJournal())
        return live, await adapter.apply(spec, secret(NEW), live, want(), MemoryJournal())

    live, result = run_in(api, go)
    sent = body(api.calls("POST", "/update-connector-profile")[0])
    assert sent["connectorProfileName"] == "sfdc"
    assert sent["connectionMode"] == "Private"
    assert sent["connectorProfileConfig"] == {
        "connectorProfileProperties": live.summary["connectorProfileProperties"],
        "connectorProfileCredentials": {"Salesforce": NEW},
    }
    assert re.fullmatch(r"[ -~]{1,256}", sent["clientToken"])
    assert fake.credentials["sfdc"] == {"Salesforce": NEW}
    assert CANARY not in repr(result) and CANARY not in repr(live)


def test_connector_type_maps_to_credentials_member_name() -> None:
    fake, api, spec = make()
    fake.profiles["sfdc"]["connectorType"] = "Servicenow"

    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec, MemoryJournal())
        await adapter.apply(
            spec, secret({"username": "u", "password": "p"}), live, want(), MemoryJournal()
        )

    run_in(api, go)
    sent = body(api.calls("POST", "/update-connector-profile")[0])
    assert list(sent["connectorProfileConfig"]["connectorProfileCredentials"]) == ["ServiceNow"]


def test_client_token_stable_per_job_and_distinct_across_jobs() -> None:
    assert client_token(want("job1")) == client_token(want("job1"))
    assert client_token(want("job1")) != client_token(want("job2"))
    assert client_token(want("job1", "v1")) != client_token(want("job1", "v2"))
    assert 1 <= len(client_token(want())) <= 256


def test_replay_after_lost_response_does_not_apply_twice() -> None:
    fake, api, spec = make()
    api.fail_next[("POST", "/update-connector-profile")] = httpx.ReadTimeout("lost")

    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec, MemoryJournal())
        with pytest.raises(TransportError) as info:
            await adapter.apply(spec, secret(NEW), live, want(), MemoryJournal())
        assert info.value.maybe_applied
        # The lost request was never processed by the fake: retry applies once...
        first = await adapter.apply(spec, secret(NEW), live, want(), MemoryJournal())
        after = await adapter.read(spec, MemoryJournal())
        # ...and a replay with the same token (same params) returns without a new version.
        again = await adapter.apply(spec, secret(NEW), after, want(), MemoryJournal())
        final = await adapter.read(spec, MemoryJournal())
        return first, after, again, final

    first, after, again, final = run_in(api, go)
    tokens = {body(r)["clientToken"] for r in api.calls("POST", "/update-connector-profile")}
    assert len(tokens) == 1
    assert after.summary["lastUpdatedAt"] == final.summary["lastUpdatedAt"] == 1700000001.5
    assert first.version == after.version == final.version


def test_carries_only_when_version_after_update_is_known() -> None:
    from rotator.providers.base import RemoteState

    adapter = AppFlow(ProviderContext())
    live = RemoteState(version="17.5")
    assert adapter.carries(live, want()) is Evidence.UNKNOWN
    assert adapter.carries(live, want(), "17.5") is Evidence.OURS
    assert adapter.carries(live, want(), "16.5") is Evidence.UNKNOWN


def test_transport_failures() -> None:
    fake, api, spec = make()
    api.fail_next[("POST", "/describe-connector-profiles")] = httpx.ConnectError("refused")

    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        with pytest.raises(TransportError) as info:
            await adapter.read(spec, MemoryJournal())
        assert not info.value.maybe_applied  # never connected
        live = await adapter.read(spec, MemoryJournal())
        api.fail_next[("POST", "/update-connector-profile")] = httpx.RemoteProtocolError("reset")
        with pytest.raises(TransportError) as info:
            await adapter.apply(spec, secret(NEW), live, want(), MemoryJournal())
        assert info.value.maybe_applied
        assert CANARY not in str(info.value)

    run_in(api, go)


def test_region_is_required() -> None:
    fake, api, spec = make()
    spec = target("appflow", BASE, "sfdc", options={}, credentials=CREDS)

    async def go(ctx: ProviderContext):
        await AppFlow(ctx).read(spec, MemoryJournal())

    with pytest.raises(BadRequest, match="region"):
        run_in(api, go)


def test_version_ignores_last_updated_at_but_not_an_operators_edit() -> None:
    # AppFlow's own OAuth refresh moves lastUpdatedAt: not an edit, so not a new version.
    fake = FakeAppFlow()
    profile = fake.profiles["sfdc"]
    version = profile_version(profile)
    assert profile_version({**profile, "lastUpdatedAt": 1800000000.0}) == version
    edits: list[dict[str, Any]] = [
        {"connectionMode": "Private"},
        {"credentialsArn": "arn:aws:secretsmanager:us-east-1:123:secret:y"},
        {"connectorLabel": "other"},
        {"connectorProfileProperties": {"Salesforce": {"instanceUrl": "https://b.example"}}},
    ]
    for edit in edits:
        assert profile_version({**profile, **edit}) != version, edit
    assert version.startswith("settings-") and CANARY not in version


def test_apply_reports_the_version_the_next_read_shows() -> None:
    fake, api, spec = make()

    async def go(ctx: ProviderContext):
        adapter = AppFlow(ctx)
        live = await adapter.read(spec, MemoryJournal())
        result = await adapter.apply(spec, secret(NEW), live, want(), MemoryJournal())
        fake.profiles["sfdc"]["lastUpdatedAt"] += 60  # AppFlow refreshed the token since
        after = await adapter.read(spec, MemoryJournal())
        return result, after, adapter.carries(after, want(), result.version)

    result, after, verdict = run_in(api, go)
    assert result.version == after.version
    assert verdict is Evidence.OURS
