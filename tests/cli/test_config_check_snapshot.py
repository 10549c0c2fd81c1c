"""``rotator config check`` with a Redis configured validates through the shared snapshots and
blocks (rotator.config_snapshot, rotator.config_blocks), as the workers do: a file checked once
is then read from them, yet every check still runs and every error names file and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis
from cryptography.fernet import Fernet

from tests.cli.test_config_check_trust import CREDS, GOOD_ADOBE, _env

KEY_ENV = {
    "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
    "ROTATOR_AUDIT_KEY": "config-check-audit-key-0123456789abcdef",
}


def _check(tmp_path: Path, text: str, redis_url: str, prefix: str, **extra: str) -> str:
    (tmp_path / "rotator.yaml").write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "rotator", "config", "check", "--offline"],
        env=_env(
            tmp_path, ROTATOR_REDIS_URL=redis_url, ROTATOR_KEY_PREFIX=prefix, **KEY_ENV, **extra
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return f"{result.returncode}\n{result.stdout}{result.stderr}"


def _keys(redis_url: str, prefix: str, kind: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(1 for _ in client.scan_iter(match=f"{prefix}config:{kind}:*"))
    finally:
        client.close()


def test_config_check_shares_the_validated_file_and_still_checks(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    # Given a valid file checked once: its snapshot, its head and its one block are stored
    first = _check(tmp_path, GOOD_ADOBE, redis_url, key_prefix, **CREDS)
    assert first.startswith("0\n") and "✓" in first, first
    assert _keys(redis_url, key_prefix, "snapshot") == 1
    assert _keys(redis_url, key_prefix, "block") == 2
    # When the same file is checked again with a credential unset: the check_config part runs
    again = _check(tmp_path, GOOD_ADOBE, redis_url, key_prefix, T_ADOBE_ID="id")
    assert again.startswith("1\n"), again
    assert "targets.t1.credentials.client_secret" in again
    # And an invalid edit is refused naming the file and the field
    bad = GOOD_ADOBE.replace("resource_id: conn-1", "resource_id: ''")
    edited = _check(tmp_path, bad, redis_url, key_prefix, **CREDS)
    assert edited.startswith("1\n"), edited
    assert f"{tmp_path / 'rotator.yaml'}: targets.t1.resource_id:" in edited
