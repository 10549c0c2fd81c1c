"""``rotator config check`` fails files that would fail every rotation (issue 12.3, 12.4),
through the real command line: unset env references, missing or world-readable files,
invalid or missing provider options, unreadable secret sources, and names that are close to a
known one get "did you mean"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

GOOD_ADOBE = """\
secrets:
  s1: {source: generate, field: password}
targets:
  t1:
    provider: adobe
    base_url: https://platform.adobe.io/data/foundation/flowservice
    resource_id: conn-1
    secret: s1
    credentials: {client_id: env:T_ADOBE_ID, client_secret: env:T_ADOBE_SECRET}
    options: {org_id: "X@AdobeOrg"}
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATOR_", "T_"))}
    env.update(
        ROTATOR_STATE_DIR=str(tmp_path / "state"),
        ROTATOR_TARGETS_FILE=str(tmp_path / "rotator.yaml"),
        **extra,
    )
    return env


def _check(tmp_path: Path, text: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rotator.yaml").write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "rotator", "config", "check", *args],
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


CREDS = {"T_ADOBE_ID": "id", "T_ADOBE_SECRET": "sec-VALUE-never-printed"}


def test_valid_file_passes(tmp_path: Path) -> None:
    result = _check(tmp_path, GOOD_ADOBE, **CREDS)
    assert result.returncode == 0, result.stderr
    assert "✓" in result.stdout


def test_unset_env_reference_fails(tmp_path: Path) -> None:
    result = _check(tmp_path, GOOD_ADOBE, T_ADOBE_ID="id")
    assert result.returncode == 1
    assert "targets.t1.credentials.client_secret" in result.stderr
    assert "T_ADOBE_SECRET is not set" in result.stderr


def test_missing_org_id_names_what_adobe_needs(tmp_path: Path) -> None:
    result = _check(
        tmp_path, GOOD_ADOBE.replace('options: {org_id: "X@AdobeOrg"}', "options: {}"), **CREDS
    )
    assert result.returncode == 1
    assert "option 'org_id' is required" in result.stderr
    assert "client_id, client_secret" in result.stderr  # what the provider needs


def test_misspelt_option_suggests_the_right_one(tmp_path: Path) -> None:
    text = GOOD_ADOBE.replace('options: {org_id: "X@AdobeOrg"}', 'options: {orgid: "X@AdobeOrg"}')
    result = _check(tmp_path, text, **CREDS)
    assert result.returncode == 1
    assert "unknown option 'orgid'" in result.stderr
    assert "did you mean 'org_id'?" in result.stderr


CTM = """\
secrets:
  s1: {source: generate, field: password}
targets:
  c1:
    provider: ciphertrust
    base_url: https://ctm.example.com/api/v1
    resource_id: conn-1
    secret: s1
    credentials: {username: env:T_CTM_USER, password: env:T_CTM_PASS}
    options: {strategy: inplace}
"""


def test_ciphertrust_strategy_inplace_rejected_with_valid_values(tmp_path: Path) -> None:
    hosts = "ciphertrust=ctm.example.com"
    result = _check(tmp_path, CTM, T_CTM_USER="u", T_CTM_PASS="p", ROTATOR_ALLOWED_HOSTS=hosts)
    assert result.returncode == 1
    assert "option 'strategy' must be one of 'in-place', 'blue-green'" in result.stderr
    assert "did you mean 'in-place'?" in result.stderr


def test_unknown_provider_suggests(tmp_path: Path) -> None:
    result = _check(tmp_path, GOOD_ADOBE.replace("provider: adobe", "provider: adobee"), **CREDS)
    assert result.returncode == 1
    assert "unknown provider 'adobee'; did you mean 'adobe'?" in result.stderr


def test_missing_file_reference_and_secret_file(tmp_path: Path) -> None:
    text = GOOD_ADOBE.replace("env:T_ADOBE_SECRET", "file:adobe.secret").replace(
        "{source: generate, field: password}", "{source: file, path: s1.json}"
    )
    result = _check(tmp_path, text, T_ADOBE_ID="id")
    assert result.returncode == 1
    assert "targets.t1.credentials.client_secret" in result.stderr
    assert "secrets.s1" in result.stderr and "s1.json" in result.stderr


def test_world_readable_credential_file_is_an_error_group_a_warning(tmp_path: Path) -> None:
    text = GOOD_ADOBE.replace("env:T_ADOBE_SECRET", "file:adobe.secret")
    secret = tmp_path / "adobe.secret"
    secret.write_text("sec-VALUE-never-printed")
    secret.chmod(0o644)
    result = _check(tmp_path, text, T_ADOBE_ID="id")
    assert result.returncode == 1
    assert "world-accessible" in result.stderr
    secret.chmod(0o640)
    result = _check(tmp_path, text, T_ADOBE_ID="id")
    assert result.returncode == 0, result.stderr
    assert "group-accessible" in result.stderr
    secret.chmod(0o600)
    result = _check(tmp_path, text, T_ADOBE_ID="id")
    assert result.returncode == 0 and "accessible" not in result.stderr
    assert "sec-VALUE" not in result.stdout + result.stderr


def test_env_secret_source_must_be_set_and_values_never_print(tmp_path: Path) -> None:
    text = GOOD_ADOBE.replace("{source: generate, field: password}", "{source: env, var: T_S1}")
    result = _check(tmp_path, text, **CREDS)
    assert result.returncode == 1
    assert "T_S1 is not set" in result.stderr
    result = _check(tmp_path, text, T_S1='{"password": "sec-VALUE-x"}', **CREDS)
    assert result.returncode == 0, result.stderr
    assert "sec-VALUE" not in result.stdout + result.stderr


def test_network_sources_references_resolved_and_skip_named(tmp_path: Path) -> None:
    text = GOOD_ADOBE.replace(
        "{source: generate, field: password}",
        "{source: vault, vault: {address: 'https://vault.example.com', path: apps/x, "
        "credentials: {token: env:T_VTOKEN}}}",
    )
    result = _check(tmp_path, text, "--offline", **CREDS)
    assert result.returncode == 1
    assert "secrets.s1.vault.credentials.token" in result.stderr
    assert "T_VTOKEN is not set" in result.stderr
    result = _check(tmp_path, text, "--offline", T_VTOKEN="tok", **CREDS)
    assert result.returncode == 0, result.stderr
    assert "secrets.s1 (vault) not read: --offline" in result.stderr


def test_config_providers_lists_needed_fields() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rotator", "config", "providers", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = json.loads(result.stdout)
    assert rows["adobe"]["required_options"] == ["org_id"]
    assert rows["ciphertrust"]["choices"]["strategy"] == ["in-place", "blue-green"]
