"""Config reload, lease fencing and version ordering (the retry policy: test_retry.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotator.config import Settings
from rotator.crypto import DecryptionError
from rotator.errors import (
    BadRequest,
    LeaseLost,
    ProviderUnavailable,
    RateLimited,
    error_class_for_status,
)
from rotator.models import JobState, version_id, version_seq
from rotator.runtime import ConfigHolder
from tests.core.conftest import TARGETS, Harness


def test_bad_reload_keeps_last_good_config(tmp_path: Path) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_text(TARGETS.replace("provider: fake", "provider: adobe"))
    settings = Settings(targets_file=path, state_dir=tmp_path, insecure_hosts="fake.example:*")
    holder = ConfigHolder(settings, check_interval=0)
    assert set(holder.get().targets) == {"crm"}

    path.write_text("targets: {crm: {provider: nope}}\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert set(holder.get().targets) == {"crm"}  # still serving the last good file
    assert holder.last_error is not None
    assert "targets.crm" in str(holder.last_error)

    path.write_text(TARGETS.replace("provider: fake", "provider: adobe").replace("crm:", "erp:"))
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert set(holder.get().targets) == {"erp"}
    assert holder.last_error is None


def test_stale_lease_holder_cannot_write(harness: Harness) -> None:
    job_id = harness.enqueue()
    begun = harness.run(harness.store.begin(job_id, "crm", 30))
    lease = begun.lease  # type: ignore[union-attr]
    # The lease expires and another attempt takes the target over.
    harness.expire_lease()
    again = harness.run(harness.store.begin(job_id, "crm", 30))
    assert again.lease.fence != lease.fence  # type: ignore[union-attr]

    with pytest.raises(LeaseLost):
        harness.run(harness.store.record(lease, 30, "intent", {"expected": "x"}))
    with pytest.raises(LeaseLost):
        harness.run(
            harness.store.finish(lease, JobState.COMPLETED, promote_version="v000000000001")
        )
    assert harness.run(harness.store.target_state("crm")).get("current") is None


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (412, None),
        (429, RateLimited),
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
        (504, ProviderUnavailable),
        (418, BadRequest),
    ],
)
def test_status_table(status: int, cls: type | None) -> None:
    mapped = error_class_for_status(status)
    if cls is None:
        assert mapped.__name__ == "VersionConflict"
    else:
        assert mapped is cls


@given(st.integers(min_value=0, max_value=10**11), st.integers(min_value=0, max_value=10**11))
def test_version_ids_sort_like_their_sequence(a: int, b: int) -> None:
    assert (version_id(a) < version_id(b)) == (a < b)
    assert version_seq(version_id(a)) == a


def test_master_key_rotation_reencrypts_and_old_key_can_go(harness: Harness) -> None:
    from cryptography.fernet import Fernet

    from rotator.crypto import Vault
    from rotator.store import RotatorStore

    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys = harness.store.keys
    old = RotatorStore(harness.redis, keys, Vault([old_key], b"audit-key"))
    version, _ = harness.run(old.put_secret_version("db-password", {"password": "x"}))
    # Given the new key listed first and the old one still listed
    both = RotatorStore(harness.redis, keys, Vault([new_key, old_key], b"audit-key"))
    assert harness.run(both.reseal_versions("db-password")) == 1
    # Then the new key alone decrypts it, and the old one alone no longer does
    only_new = RotatorStore(harness.redis, keys, Vault([new_key], b"audit-key"))
    assert harness.run(only_new.load_secret_version("db-password", version)) == {"password": "x"}
    with pytest.raises(DecryptionError):
        harness.run(old.load_secret_version("db-password", version))
