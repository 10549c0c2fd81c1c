"""``rotator config check`` runs each adapter's option checks (issue 11: AppFlow's AWS
credentials must be an explicit choice, never the accident of an omitted field)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "rotator.example.yaml"
CHOICE = "      credentials: default-chain\n"


def provision_example(env: dict[str, str], tmp_path: Path) -> None:
    """The variables and files the example references: config check resolves every reference
    (issue 12.3)."""
    creds = tmp_path / "creds"
    for name, text in (
        ("secrets/sfdc-etl.json", '{"password": "p"}'),
        ("secrets/cl-integration.json", '{"reference": "r"}'),
        ("secrets/uipath_client_secret", "s"),
    ):
        (creds / name).parent.mkdir(parents=True, exist_ok=True)
        (creds / name).write_text(text)
        (creds / name).chmod(0o600)
    env["ROTATOR_CREDENTIALS_DIR"] = str(creds)
    for var in ("ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "UIPATH_CLIENT_ID", "CL_CLIENT_ID"):
        env[var] = "x"
    env.update(CL_CLIENT_SECRET="x", CTM_USER="x", CTM_PASSWORD="x")
    env.update(VAULT_ROLE_ID="x", VAULT_SECRET_ID="x")
    env.update(AWS_SM_ACCESS_KEY_ID="x", AWS_SM_SECRET_ACCESS_KEY="x")
    env["ROBOT_ACCESS_JSON"] = '{"groupIds": ["g"]}'


def config_check(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env["ROTATOR_STATE_DIR"] = str(tmp_path / "state")
    # the example's self-hosted products, as deploy/rotator.env.example allows them
    env["ROTATOR_ALLOWED_HOSTS"] = (
        "uipath=automation.example.com,ciphertrust=ciphertrust.example.com"
    )
    provision_example(env, tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "rotator", "config", "check", "--file", str(path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_example_chooses_the_default_chain_and_passes(tmp_path: Path) -> None:
    assert CHOICE in EXAMPLE.read_text()
    result = config_check(EXAMPLE, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("replacement", "message"),
    [
        ("", "no AWS credentials configured"),  # the choice left out
        ("      credentials: instance-role\n", "must be 'default-chain'"),
    ],
)
def test_an_appflow_target_without_the_choice_fails(
    tmp_path: Path, replacement: str, message: str
) -> None:
    broken = tmp_path / "rotator.yaml"
    broken.write_text(EXAMPLE.read_text().replace(CHOICE, replacement))
    result = config_check(broken, tmp_path)
    assert result.returncode == 1
    assert "targets.appflow-salesforce.options" in result.stderr
    assert message in result.stderr


def test_the_example_shows_both_remote_sources(tmp_path: Path) -> None:
    # The example's Vault (AppRole from env: references) and Secrets Manager (a stage) entries
    # are real entries, so `config check` above validates them too.
    from rotator.config import Settings, load_targets
    from rotator.providers import provider_names

    settings = Settings(
        state_dir=tmp_path,
        allowed_hosts="uipath=automation.example.com,ciphertrust=ciphertrust.example.com",
    )
    config = load_targets(EXAMPLE, provider_names(), settings)
    vault = config.secrets["sfdc-integration-from-vault"].vault
    assert vault is not None and vault.auth == "approle"
    assert all(ref.startswith("env:") for ref in vault.credentials.values())
    aws = config.secrets["appflow-oauth-from-aws"].aws_secrets_manager
    assert aws is not None and aws.stage == "AWSPENDING"
