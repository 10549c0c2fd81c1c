"""Issue 10.3 and 10.4: keys are checked against values stored in Redis before anything is
written; short audit keys are refused; both keys rotate, audited, and old events still verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet

from rotator.crypto import Vault
from rotator.errors import DecryptionError

from .audit_helpers import AUDIT_KEY, cli, make_env

SECRET = json.dumps({"password": "pw-0001"})


@pytest.fixture
def env(tmp_path: Path, redis_url: str, key_prefix: str) -> dict[str, str]:
    return make_env(tmp_path, redis_url, key_prefix)


def _stream_length(env: dict[str, str]) -> int:
    r = redis.Redis.from_url(env["ROTATOR_REDIS_URL"])
    return int(r.xlen(f"{env['ROTATOR_KEY_PREFIX']}audit"))


def test_a_process_with_another_audit_key_refuses_before_writing(env: dict[str, str]) -> None:
    assert cli(env, "secrets", "put", "s2", stdin=SECRET).returncode == 0
    before = _stream_length(env)
    other = cli(env, "secrets", "put", "s2", stdin=SECRET, ROTATOR_AUDIT_KEY="x" * 40)
    assert other.returncode == 2
    assert "ROTATOR_AUDIT_KEY" in other.stderr and "does not match" in other.stderr
    assert _stream_length(env) == before
    worker = cli(env, "beat", ROTATOR_AUDIT_KEY="y" * 40)
    assert worker.returncode == 2 and "ROTATOR_AUDIT_KEY" in worker.stderr
    assert cli(env, "audit", "verify", "--no-checkpoint").returncode == 0


def test_a_process_with_another_master_key_refuses(env: dict[str, str]) -> None:
    assert cli(env, "secrets", "put", "s2", stdin=SECRET).returncode == 0
    wrong = Fernet.generate_key().decode()
    result = cli(env, "run", "--once", ROTATOR_MASTER_KEY=wrong)
    assert result.returncode == 2
    assert "ROTATOR_MASTER_KEY" in result.stderr and "does not match" in result.stderr
    assert "ROTATOR_AUDIT_KEY" not in result.stderr


def test_a_short_audit_key_is_refused(env: dict[str, str]) -> None:
    result = cli(env, "secrets", "put", "s2", stdin=SECRET, ROTATOR_AUDIT_KEY="short-key")
    assert result.returncode == 2 and "at least 32 bytes" in result.stderr
    assert _stream_length(env) == 0


def test_audit_key_rotation_keeps_old_events_verifiable(env: dict[str, str]) -> None:
    assert cli(env, "secrets", "put", "s2", stdin=SECRET).returncode == 0
    new = "rotated-audit-key-" + "n" * 20
    both = f"{new},{AUDIT_KEY}"
    # The new key cannot be used before the rotation ...
    early = cli(env, "secrets", "put", "s2", stdin=SECRET, ROTATOR_AUDIT_KEY=both)
    assert early.returncode == 2 and "rotate-audit" in early.stderr
    rotated = cli(env, "keys", "rotate-audit", ROTATOR_AUDIT_KEY=both)
    assert rotated.returncode == 0, rotated.stderr
    # ... and after it the same value still finds its version (fingerprints rebuilt).
    again = cli(env, "secrets", "put", "s2", "--json", stdin=SECRET, ROTATOR_AUDIT_KEY=both)
    assert again.returncode == 0 and json.loads(again.stdout)["version"] == "v000000000001"
    assert cli(env, "secrets", "put", "s2", stdin=SECRET).returncode == 2  # old key retired
    listed = cli(env, "audit", "verify", "--no-checkpoint", "--json", ROTATOR_AUDIT_KEY=both)
    assert listed.returncode == 0, listed.stdout
    dropped = cli(env, "audit", "verify", "--no-checkpoint", "--json", ROTATOR_AUDIT_KEY=new)
    assert dropped.returncode == 1 and "key" in {
        p["kind"] for p in json.loads(dropped.stdout)["problems"]
    }


def test_secrets_put_and_keys_rotate_are_audited_and_reseal_every_secret(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert cli(env, "secrets", "put", "s2", stdin=SECRET).returncode == 0
    # s2 is then removed from the targets file: its versions must still be resealed.
    (tmp_path / "rotator.yaml").write_text(
        (tmp_path / "rotator.yaml").read_text().replace("  s2: {source: store}\n", "")
    )
    old = env["ROTATOR_MASTER_KEY"]
    new = Fernet.generate_key().decode()
    rotated = cli(env, "keys", "rotate", ROTATOR_MASTER_KEY=f"{new},{old}")
    assert rotated.returncode == 0, rotated.stderr
    assert "1 versions of 1 stored secrets" in rotated.stdout
    r = redis.Redis.from_url(env["ROTATOR_REDIS_URL"])
    token = r.hget(f"{env['ROTATOR_KEY_PREFIX']}secret:s2:versions", "v000000000001")
    assert token is not None
    # sealed under the new key alone
    assert Vault([new], b"unused").open("s2", "v000000000001", token) == json.loads(SECRET)
    with pytest.raises(DecryptionError):
        Vault([old], b"unused").open("s2", "v000000000001", token)
    # The old key alone no longer opens the store's check value: refused.
    assert cli(env, "run", "--once", ROTATOR_MASTER_KEY=old).returncode == 2
    listed = cli(env, "audit", "list", "--json", "--oldest-first")
    names = [e["event"] for e in json.loads(listed.stdout)["events"]]
    assert names == ["secret.stored", "keys.master_rotation_started", "keys.master_rotated"]
    assert json.loads(listed.stdout)["events"][0]["secret_version"] == "v000000000001"
    assert "pw-0001" not in listed.stdout


def test_an_interrupted_master_reseal_resumes(env: dict[str, str], key_prefix: str) -> None:
    assert cli(env, "secrets", "put", "s2", stdin=SECRET).returncode == 0
    new = Fernet.generate_key().decode()
    keys = f"{new},{env['ROTATOR_MASTER_KEY']}"
    r = redis.Redis.from_url(env["ROTATOR_REDIS_URL"])
    # A run for the new key that finished s2 and died: the rerun skips it.
    r.hset(
        f"{key_prefix}keys:reseal",
        mapping={
            "key": Fernet(new.encode()).encrypt(b"rotator master key check v1"),
            "done:s2": "1",
        },
    )
    result = cli(env, "keys", "rotate", ROTATOR_MASTER_KEY=keys)
    assert result.returncode == 0 and "re-encrypted 0 versions" in result.stdout
    assert not r.exists(f"{key_prefix}keys:reseal")
