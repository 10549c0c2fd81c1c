"""The remote sources' options, URL rule, field selection and lazy imports (no server needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from rotator.config import SecretSpec, load_targets
from rotator.errors import ConfigError, SecretSourceError
from rotator.sources.remote import import_extra, select, url_problem

VAULT = {"address": "https://bao.example.com:8200", "path": "apps/sfdc"}
AWS = {"secret_id": "prod/sfdc", "region": "eu-west-1"}


def spec(**raw: object) -> SecretSpec:
    return SecretSpec.model_validate(raw)


def test_vault_token_and_approle_need_their_credential_references() -> None:
    token = spec(source="vault", vault={**VAULT, "credentials": {"token": "env:VAULT_TOKEN"}})
    assert token.vault is not None and token.vault.mount == "secret"
    with pytest.raises(ValidationError, match="needs credentials secret_id"):
        spec(
            source="vault",
            vault={**VAULT, "auth": "approle", "credentials": {"role_id": "env:R"}},
        )


def test_an_inline_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_text(
        "secrets:\n  s:\n    source: vault\n    vault:\n      address: https://b.example\n"
        "      path: a\n      credentials: {token: hvs.pasted-token}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_targets(path, [])
    assert "secrets.s.vault.credentials: credential 'token' must be a reference" in str(
        caught.value
    )
    assert "hvs.pasted-token" not in str(caught.value)


def test_source_and_options_go_together() -> None:
    with pytest.raises(ValidationError, match="'vault' options go with source 'vault'"):
        spec(source="vault")
    with pytest.raises(ValidationError, match="'aws_secrets_manager' options go with"):
        spec(
            source="file",
            path="x.json",
            aws_secrets_manager={**AWS, "credentials": "default-chain"},
        )


def test_aws_credentials_are_references_or_an_explicit_default_chain() -> None:
    chain = spec(
        source="aws-secrets-manager", aws_secrets_manager={**AWS, "credentials": "default-chain"}
    )
    assert chain.aws_secrets_manager is not None
    assert chain.aws_secrets_manager.stage == "AWSCURRENT"
    with pytest.raises(ValidationError, match="credentials"):
        spec(source="aws-secrets-manager", aws_secrets_manager=AWS)  # no silent default chain
    with pytest.raises(ValidationError, match="needs secret_access_key"):
        spec(
            source="aws-secrets-manager",
            aws_secrets_manager={**AWS, "credentials": {"access_key_id": "env:K"}},
        )


def test_a_targets_file_with_a_vault_secret_loads_and_reports_problems(tmp_path: Path) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_text(
        "secrets:\n  s:\n    source: vault\n    vault:\n      address: ftp://x\n"
        "      path: a\n      credentials: {token: env:T}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_targets(path, [])
    assert "secrets.s.vault.address: must be an http(s) URL" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "insecure", "problem"),
    [
        ("https://bao.example.com:8200", "", None),
        ("http://127.0.0.1:8200", "", "plain http:// to 127.0.0.1:8200 is refused"),
        ("http://127.0.0.1:8200", "127.0.0.1:8200", None),
        ("http://127.0.0.1:8200", "127.0.0.1:*", None),
        ("http://127.0.0.1:8201", "127.0.0.1:8200", "plain http:// to 127.0.0.1:8201"),
        ("http://127.0.0.1", "127.0.0.1:80", None),
        ("https://user:pw@bao.example.com", "", "must not contain user info"),
        ("file:///etc/passwd", "", "must be an https:// URL"),
    ],
)
def test_url_rule_is_https_or_an_operator_listed_plain_http_host(
    url: str, insecure: str, problem: str | None
) -> None:
    found = url_problem(url, {"ROTATOR_INSECURE_HOSTS": insecure})
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
        assert "pw" not in found


def test_field_selection_by_list_or_renaming_map() -> None:
    data = {"user": "etl", "pass": "p", "other": "o"}
    assert select("s", "kv", data, []) == data
    assert select("s", "kv", data, ["user", "pass"]) == {"user": "etl", "pass": "p"}
    assert select("s", "kv", data, {"username": "user", "password": "pass"}) == {
        "username": "etl",
        "password": "p",
    }
    with pytest.raises(SecretSourceError, match="kv has no key missing$"):
        select("s", "kv", data, ["user", "missing"])


def test_a_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hvac", None)  # as if not installed
    with pytest.raises(SecretSourceError, match=r"pip install 'rotator\[vault\]'"):
        import_extra("hvac", "vault")


def test_hvac_is_imported_only_when_a_vault_source_runs() -> None:
    code = (
        "import rotator.config, rotator.sources, rotator.engine, rotator.cli, sys; "
        "assert 'hvac' not in sys.modules and 'requests' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
