"""The operator's URL policy: patterns, settings parsing, and the shipped example config."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotator.config import Settings, load_settings, load_targets
from rotator.errors import ConfigError
from rotator.providers import provider_names
from rotator.urlpolicy import HostPattern, UrlPolicy, insecure_entry

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize(
    ("pattern", "host", "port", "ok"),
    [
        ("*.adobe.io", "platform.adobe.io", 443, True),
        ("*.adobe.io", "a.b.adobe.io", 443, True),
        ("*.adobe.io", "adobe.io", 443, False),
        ("*.adobe.io", "evil-adobe.io", 443, False),
        ("kms.example.com", "kms.example.com", 8443, True),
        ("kms.example.com:443", "kms.example.com", 8443, False),
        ("127.0.0.1:*", "127.0.0.1", 1234, True),
    ],
)
def test_host_patterns(pattern: str, host: str, port: int, ok: bool) -> None:
    assert HostPattern.parse(pattern).matches(host, port) is ok


def test_policy_decisions() -> None:
    policy = UrlPolicy.from_settings("127.0.0.1:8765", "ciphertrust=kms.example.com")
    assert policy.violation("adobe", "https://platform.adobe.io/x") is None
    assert policy.violation("adobe", "http://127.0.0.1:8765/adobe") is None
    assert policy.violation("ciphertrust", "https://kms.example.com/api/v1") is None
    assert policy.violation("ciphertrust", "https://KMS.example.com./api/v1") is None
    assert "not allowed" in str(policy.violation("uipath", "https://kms.example.com/x"))
    assert "plain http" in str(policy.violation("adobe", "http://127.0.0.1:8766/"))
    assert "user info" in str(policy.violation("adobe", "https://a:b@platform.adobe.io/"))
    assert "https" in str(policy.violation("adobe", "ftp://platform.adobe.io/"))
    assert insecure_entry("http://127.0.0.1:8765") == "127.0.0.1:8765"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROTATOR_INSECURE_HOSTS", "127.0.0.1"),  # no port
        ("ROTATOR_INSECURE_HOSTS", "*.example.com:80"),  # wildcard for plain http
        ("ROTATOR_ALLOWED_HOSTS", "kms.example.com"),  # no provider
        ("ROTATOR_ALLOWED_HOSTS", "nope=kms.example.com"),  # unknown provider
        ("ROTATOR_ALLOWED_HOSTS", "ciphertrust=http://kms"),  # not a host
    ],
)
def test_bad_policy_settings_are_named(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_the_deploy_example_passes_with_the_env_examples_allow_list() -> None:
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "rotator.env.example").read_text().splitlines()
        if line.startswith("ROTATOR_ALLOWED_HOSTS=")
    )
    settings = Settings(allowed_hosts=env["ROTATOR_ALLOWED_HOSTS"])
    config = load_targets(DEPLOY / "rotator.example.yaml", provider_names(), settings)
    assert len(config.targets) == 5
    with pytest.raises(ConfigError, match="ROTATOR_ALLOWED_HOSTS=ciphertrust"):
        load_targets(DEPLOY / "rotator.example.yaml", provider_names(), Settings())
