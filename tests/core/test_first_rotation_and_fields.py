"""Issue 12.5 and 12.6 at the unit level: when a new target first comes due, and the engine's
field check when it pins a version (before any remote call)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rotator.config import SecretSpec, TargetSpecModel
from rotator.dispatch import first_due
from rotator.errors import SecretFieldsInvalid
from rotator.fields import diff
from rotator.models import JobState
from rotator.retry import RetryPolicy, Stop
from rotator.sources import SourceContext, pin_version

NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC).timestamp()  # a Tuesday


def target(schedule: str, **extra: Any) -> TargetSpecModel:
    return TargetSpecModel(
        provider="uipath",
        base_url="https://u.example",
        resource_id="r",
        secret="s",
        schedule=schedule,
        **extra,
    )


def test_a_cron_target_first_comes_due_at_its_next_slot() -> None:
    due = first_due(target("0 3 * * 1"), NOW, 0.0)
    assert due == datetime(2026, 12, 7, 3, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("first", "expected"),
    [("scheduled", NOW + 86400), ("adopt", NOW + 86400), ("now", NOW)],
)
def test_an_interval_target_follows_first_rotation(first: str, expected: float) -> None:
    assert first_due(target("1d", first_rotation=first), NOW, 0.0) == expected


def test_the_default_first_rotation_is_scheduled() -> None:
    assert target("1d").first_rotation == "scheduled"
    assert first_due(target("1d", enabled=False), NOW, 0.0) is None


class Versions:
    """A stored version of a UiPath secret that lacks ``groupIds``."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    async def put_secret_version(self, secret: str, fields: Any) -> tuple[str, str]:
        raise AssertionError("pinning a stored version stores nothing")

    async def load_secret_version(self, secret: str, version: str) -> dict[str, Any]:
        return dict(self.fields)

    async def latest_secret_version(self, secret: str) -> str | None:
        return "v000000000001"

    async def latest_field_names(self, secret: str, likely: Any = ()) -> list[str] | None:
        return sorted(self.fields)

    async def fingerprint_of(self, secret: str, version: str) -> str | None:
        return "f" * 64


def test_pinning_a_value_its_provider_cannot_use_fails_permanently() -> None:
    ctx = SourceContext(Versions({"x": "value-never-shown"}), base_dir=Path("."))
    uipath = {"robots": ("uipath", {})}
    with pytest.raises(SecretFieldsInvalid) as caught:
        asyncio.run(pin_version("s", SecretSpec(source="store"), ctx, targets=uipath))
    assert "needs field(s) ['groupIds']" in str(caught.value)
    assert "value-never-shown" not in str(caught.value)
    # a permanent failure: the retry policy never retries it
    assert RetryPolicy().decide(caught.value, attempt=1) == Stop(JobState.FAILED)

    good = SourceContext(Versions({"groupIds": ["g"]}), base_dir=Path("."))
    pinned = asyncio.run(pin_version("s", SecretSpec(source="store"), good, targets=uipath))
    assert pinned.fields == {"groupIds": ["g"]}  # handed on: the job needs no second read


def test_field_diff_names_fields_only() -> None:
    change = diff({"username": 1, "password": 2}, {"x": 3})
    assert change.describe() == "-password -username +x"


class MemoryVersions:
    """Stored versions in memory, as the store keeps them (the newest is the latest)."""

    def __init__(self) -> None:
        self.versions: list[dict[str, Any]] = []

    async def put_secret_version(self, secret: str, fields: Any) -> tuple[str, str]:
        self.versions.append(dict(fields))
        return f"v{len(self.versions):012d}", "f" * 64

    async def load_secret_version(self, secret: str, version: str) -> dict[str, Any]:
        return dict(self.versions[int(version[1:]) - 1])

    async def latest_secret_version(self, secret: str) -> str | None:
        return f"v{len(self.versions):012d}" if self.versions else None

    async def latest_field_names(self, secret: str, likely: Any = ()) -> list[str] | None:
        return sorted(self.versions[-1]) if self.versions else None

    async def fingerprint_of(self, secret: str, version: str) -> str | None:
        return "f" * 64


def test_a_source_value_that_drops_a_field_is_refused_unless_the_secret_allows_it(
    tmp_path: Path,
) -> None:
    # Given a file source whose first value carried a username and a password
    (tmp_path / "sfdc.json").write_text('{"username": "svc", "password": "first-secret"}')
    versions = MemoryVersions()
    ctx = SourceContext(versions, base_dir=tmp_path)
    spec = SecretSpec(source="file", path="sfdc.json")
    adobe = {"aep": ("adobe", {})}
    asyncio.run(pin_version("sfdc", spec, ctx, targets=adobe))
    # When the file is rewritten without the username
    (tmp_path / "sfdc.json").write_text('{"password": "second-secret"}')
    # Then pinning refuses it (a rotation would remove the username from the connection),
    # names the field, never a value, stores nothing, and is never retried
    with pytest.raises(SecretFieldsInvalid) as caught:
        asyncio.run(pin_version("sfdc", spec, ctx, targets=adobe))
    message = str(caught.value)
    assert "drops field(s) ['username']" in message and "allow_field_change" in message
    assert "second-secret" not in message and "svc" not in message
    assert len(versions.versions) == 1
    assert RetryPolicy().decide(caught.value, attempt=1) == Stop(JobState.FAILED)
    # And with allow_field_change the operator's intended change goes through
    allowed = SecretSpec(source="file", path="sfdc.json", allow_field_change=True)
    pinned = asyncio.run(pin_version("sfdc", allowed, ctx, targets=adobe))
    assert pinned.fields == {"password": "second-secret"}


def test_the_previous_versions_field_names_come_from_a_signed_record_not_a_decryption(
    harness: Any,
) -> None:
    """Pinning a value checks it against the newest version's field names. The commit keeps a
    keyed digest of them, so a pin whose value has the same names decrypts nothing; a record
    forged in Redis is ignored in favour of opening the newest version."""
    store = harness.store
    harness.run(store.put_secret_version("s", {"username": "u", "password": "p1"}))
    harness.run(store.put_secret_version("s", {"username": "u", "password": "p2", "x": "1"}))

    opened: list[str] = []
    real_open = store.vault.open

    def counting_open(secret: str, version: str, token: bytes) -> dict[str, Any]:
        opened.append(version)
        return real_open(secret, version, token)

    store.vault.open = counting_open
    names = ["password", "username", "x"]
    assert harness.run(store.latest_field_names("s", likely=names)) == names
    assert opened == []  # the same names as the newest version: no decryption on the pin path
    assert harness.run(store.latest_field_names("never-stored", likely=names)) is None
    # A value with other names: the newest version is opened to say which changed.
    assert harness.run(store.latest_field_names("s", likely=["password"])) == names
    assert opened == ["v000000000002"]

    # An attacker with Redis write access rewrites the record to vouch for fewer names, so
    # that a value dropping `username` and `x` would slip past.
    key = store.keys.secret_fingerprints("s")
    genuine = harness.run(store.redis.hget(key, "#latest"))
    assert len(genuine) < 64 and b"username" not in genuine  # compact, and names no field
    harness.run(store.redis.hset(key, "#latest", "v000000000002|" + "0" * 32))
    assert harness.run(store.latest_field_names("s", likely=["password"])) == names
    assert opened == ["v000000000002", "v000000000002"]  # the forged record was not believed


def test_a_late_commit_of_an_older_version_keeps_the_newer_names(harness: Any) -> None:
    store, k = harness.store, harness.store.keys
    harness.run(store.put_secret_version("s", {"a": "1", "b": "2"}))  # v1
    # A worker that reserved v2 commits it after v3 was committed by another.
    harness.run(store.redis.hset(k.secret_fingerprints("s"), "#seq", 2))
    harness.run(store.put_secret_version("s", {"a": "3", "b": "4", "c": "5"}))  # v3
    harness.run(store.redis.hset(k.secret_fingerprints("s"), "#seq", 1))
    harness.run(store.put_secret_version("s", {"a": "6"}))  # v2, late
    assert harness.run(store.latest_field_names("s", likely=["a", "b", "c"])) == ["a", "b", "c"]
    # the record vouches for v3's names: asked with them, nothing is decrypted to answer
    assert harness.run(store.redis.hget(k.secret_fingerprints("s"), "#latest")).startswith(
        b"v000000000003|"
    )
