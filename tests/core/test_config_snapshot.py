"""Validated targets files shared through Redis (rotator.config_snapshot): used only for the
same bytes and settings, refused when forged, never a way around a config error."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import fakeredis
import pytest
import redis as redis_errors
import structlog

from rotator.config import Settings, load_targets
from rotator.config_snapshot import SnapshotCache, load_targets_cached
from rotator.errors import ConfigError
from rotator.store.keys import Keys

PROVIDERS = ["adobe", "appflow"]

GOOD = """
secrets:
  pw: {source: generate, length: 24}
targets:
  one:
    provider: adobe
    base_url: https://platform.adobe.io/data/foundation/flowservice
    resource_id: c1
    secret: pw
    credentials: {client_id: "env:ADOBE_ID"}
    schedule: 30d
  two:
    provider: adobe
    base_url: https://platform.adobe.io/data/foundation/flowservice
    resource_id: c2
    secret: pw
    schedule: "0 3 * * *"
    options: {org_id: "X@AdobeOrg", limit: 3, ratio: 0.5, flag: true, none: null}
"""


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def _settings(**kwargs: object) -> Settings:
    return Settings(audit_key="snapshot-test-audit-key-0123456789abcdef", **kwargs)  # type: ignore[arg-type]


def _cache(redis: fakeredis.FakeRedis, settings: Settings | None = None) -> SnapshotCache:
    return SnapshotCache(redis, Keys("snap:"), settings or _settings())


def _write(tmp_path: Path, text: str = GOOD) -> Path:
    path = tmp_path / "rotator.yaml"
    path.write_text(text)
    return path


def _load(path: Path, cache: SnapshotCache, settings: Settings | None = None) -> object:
    return load_targets_cached(path, PROVIDERS, settings or _settings(), cache)


def _snapshot_keys(redis: fakeredis.FakeRedis) -> list[bytes]:
    return sorted(redis.scan_iter(match="snap:config:snapshot:*"))


def test_second_load_uses_the_snapshot_and_gives_the_same_config(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    # Given a file loaded once (validated, stored)
    path = _write(tmp_path)
    cache = _cache(redis)
    first = _load(path, cache)
    assert cache.last is not None and cache.last.outcome == "miss"
    assert len(_snapshot_keys(redis)) == 1
    # When another process loads the same file
    other = _cache(redis)
    second = _load(path, other)
    # Then it uses the snapshot, and the config equals the file's
    assert other.last is not None and other.last.outcome == "hit"
    expected = load_targets(path, PROVIDERS, _settings())
    assert second.model == first.model == expected.model  # type: ignore[attr-defined]


def test_snapshot_used_only_when_the_file_hash_matches(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    path = _write(tmp_path)
    _load(path, _cache(redis))
    # An edit (one byte) misses, is validated from the file and stored under its own digest
    path.write_text(GOOD.replace("resource_id: c2", "resource_id: c3"))
    cache = _cache(redis)
    config = _load(path, cache)
    assert cache.last is not None and cache.last.outcome == "miss"
    assert config.targets["two"].resource_id == "c3"  # type: ignore[attr-defined]
    assert len(_snapshot_keys(redis)) == 2


def test_settings_that_decide_validity_are_part_of_the_key(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    # Given a file whose plain-http URL is valid only while the host is listed as insecure
    path = _write(tmp_path, GOOD.replace("https://platform.adobe.io", "http://127.0.0.1:8765"))
    lenient = _settings(insecure_hosts="127.0.0.1:8765")
    _load(path, _cache(redis, lenient), lenient)
    # When the operator removes the host, the snapshot is not used: the file is refused
    strict = _settings()
    cache = _cache(redis, strict)
    with pytest.raises(ConfigError) as caught:
        _load(path, cache, strict)
    assert cache.last is not None and cache.last.outcome == "miss"
    assert "targets.one.base_url" in str(caught.value)


def test_a_forged_snapshot_is_refused_and_the_file_revalidated(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    # Given a stored snapshot
    path = _write(tmp_path)
    _load(path, _cache(redis))
    (key,) = _snapshot_keys(redis)
    # When someone with Redis write access but without the audit key injects a target
    import json
    import zlib

    stored = redis.get(key)
    assert stored is not None
    lines = zlib.decompress(stored[32:]).split(b"\n")
    head = json.loads(lines[1])
    head["secrets"]["evil"] = {"source": "env", "var": "ROTATOR_MASTER_KEY"}
    lines[1] = json.dumps(head).encode()
    redis.set(key, stored[:32] + zlib.compress(b"\n".join(lines)))
    # Then a load refuses it, validates the file, and the injected secret is not there
    cache = _cache(redis)
    with structlog.testing.capture_logs() as logs:
        config = _load(path, cache)
    assert cache.last is not None and cache.last.outcome == "refused"
    assert set(config.targets) == {"one", "two"}  # type: ignore[attr-defined]
    assert set(config.secrets) == {"pw"}  # type: ignore[attr-defined]
    assert any("snapshot refused" in entry["event"] for entry in logs)
    # And the file's own snapshot replaced the forged one
    again = _cache(redis)
    _load(path, again)
    assert again.last is not None and again.last.outcome == "hit"


def test_a_snapshot_made_with_another_audit_key_is_not_used(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    # Given a snapshot stored by a process with another audit key (before a key rotation)
    path = _write(tmp_path)
    other_key = Settings(audit_key="another-audit-key-0123456789abcdef-xyz")  # type: ignore[arg-type]
    _load(path, _cache(redis, other_key), other_key)
    # Then a process with this key does not use it (the key's id is part of the digest)
    cache = _cache(redis)
    _load(path, cache)
    assert cache.last is not None and cache.last.outcome == "miss"
    # And the other key's snapshot, moved under this key's digest, is refused, not used
    keys = _snapshot_keys(redis)
    assert len(keys) == 2
    ours = cache.last.digest
    mine = Keys("snap:").config_snapshot(ours).encode()
    (other,) = [k for k in keys if k != mine]
    stored = redis.get(other)
    assert stored is not None
    redis.set(mine, stored)
    again = _cache(redis)
    _load(path, again)
    assert again.last is not None and again.last.outcome == "refused"


def test_errors_are_the_file_errors_and_nothing_is_stored(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    bad = GOOD.replace("schedule: 30d", "schedule: every tuesday")
    path = _write(tmp_path, bad)
    with pytest.raises(ConfigError) as cached:
        _load(path, _cache(redis))
    with pytest.raises(ConfigError) as direct:
        load_targets(path, PROVIDERS, _settings())
    assert [str(i) for i in cached.value.issues] == [str(i) for i in direct.value.issues]
    assert _snapshot_keys(redis) == []


def test_file_references_are_checked_on_every_load(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    # Given a file whose credential file exists when the snapshot is made
    (tmp_path / "adobe.secret").write_text("s")
    (tmp_path / "adobe.secret").chmod(0o600)
    path = _write(tmp_path, GOOD.replace('"env:ADOBE_ID"', '"file:adobe.secret"'))
    _load(path, _cache(redis))
    # When the credential file becomes a link out of the credentials directory, a snapshot
    # hit still reports it
    (tmp_path / "adobe.secret").unlink()
    outside = tmp_path.parent / f"{tmp_path.name}-outside.secret"
    outside.write_text("s")
    (tmp_path / "adobe.secret").symlink_to(outside)
    cache = _cache(redis)
    with pytest.raises(ConfigError) as caught:
        _load(path, cache)
    assert cache.last is not None and cache.last.outcome == "hit"
    assert "targets.one.credentials.client_id" in str(caught.value)


def test_a_file_json_cannot_carry_exactly_is_not_stored(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    path = _write(tmp_path, GOOD.replace("limit: 3", "since: 2024-01-02"))  # a date
    cache = _cache(redis)
    config = _load(path, cache)
    assert cache.last is not None and cache.last.outcome == "unstorable"
    assert _snapshot_keys(redis) == []
    assert str(config.targets["two"].options["since"]) == "2024-01-02"  # type: ignore[attr-defined]


class _Down:
    def get(self, key: str) -> bytes | None:
        raise redis_errors.ConnectionError("Connection refused")

    def set(self, key: str, value: bytes | str, ex: int, nx: bool = False) -> object:
        raise redis_errors.ConnectionError("Connection refused")

    def delete(self, *keys: str) -> object:
        raise redis_errors.ConnectionError("Connection refused")

    def mget(self, keys: Sequence[str]) -> Sequence[bytes | None]:
        raise redis_errors.ConnectionError("Connection refused")

    def pipeline(self, transaction: bool = True) -> object:
        raise redis_errors.ConnectionError("Connection refused")


def test_redis_unavailable_loads_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path)
    cache = SnapshotCache(_Down(), Keys("snap:"), _settings())
    config = _load(path, cache)
    assert set(config.targets) == {"one", "two"}  # type: ignore[attr-defined]
    assert cache.last is not None and cache.last.outcome == "unavailable"


def test_equal_parts_of_targets_are_shared_without_changing_them(tmp_path: Path) -> None:
    import yaml

    from rotator.config import TargetSpecModel

    text = GOOD.replace(
        'schedule: "0 3 * * *"',
        'schedule: "0 3 * * *"\n    credentials: {client_id: "env:ADOBE_ID"}',
    )
    config = load_targets(_write(tmp_path, text), PROVIDERS, _settings())
    one, two = config.targets["one"], config.targets["two"]
    assert one.credentials is two.credentials
    raw = yaml.safe_load(text)["targets"]
    for name, target in config.targets.items():
        alone = TargetSpecModel.model_validate(raw[name])  # validated outside a file load
        assert target == alone and target.model_fields_set == alone.model_fields_set
        assert target.model_dump() == alone.model_dump()


def _lock_key(redis: fakeredis.FakeRedis, path: Path) -> str:
    digest = _cache(redis).digest(path, path.read_bytes(), PROVIDERS)
    return Keys("snap:").config_snapshot_lock(digest)


def _load_in_thread(path: Path, cache: SnapshotCache) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(_load(path, cache))
        except ConfigError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_process_waits_for_the_snapshot_another_is_making(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    # Given another process validating this file (it holds the lock)
    path = _write(tmp_path)
    redis.set(_lock_key(redis, path), "other-process", ex=60)
    waiter = _cache(redis)
    waiter.wait, waiter.poll = 10.0, 0.01
    thread, outcome = _load_in_thread(path, waiter)
    # When that process stores its snapshot and lets go
    time.sleep(0.1)
    maker = _cache(redis)
    maker.claim = lambda digest: True  # type: ignore[method-assign]
    _load(path, maker)
    redis.delete(_lock_key(redis, path))
    thread.join(10)
    # Then the waiting process uses it instead of validating the file itself
    assert waiter.last is not None and waiter.last.outcome == "waited"
    assert set(outcome[0].targets) == {"one", "two"}  # type: ignore[attr-defined]


def test_a_waiter_validates_itself_when_the_lock_goes_without_a_snapshot(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    # Given a lock held by a process that then fails (an invalid file, or it died)
    path = _write(tmp_path, GOOD.replace("schedule: 30d", "schedule: every tuesday"))
    redis.set(_lock_key(redis, path), "other-process", ex=60)
    waiter = _cache(redis)
    waiter.wait, waiter.poll = 10.0, 0.01
    thread, outcome = _load_in_thread(path, waiter)
    time.sleep(0.05)
    redis.delete(_lock_key(redis, path))
    thread.join(10)
    # Then the waiter validates the file and reports its errors as ever
    assert isinstance(outcome[0], ConfigError)
    assert "targets.one.schedule" in str(outcome[0])


def test_the_lock_is_released_after_validating(tmp_path: Path, redis: fakeredis.FakeRedis) -> None:
    path = _write(tmp_path, GOOD.replace("schedule: 30d", "schedule: every tuesday"))
    with pytest.raises(ConfigError):
        _load(path, _cache(redis))
    assert redis.get(_lock_key(redis, path)) is None
    _load(_write(tmp_path), _cache(redis))
    assert redis.get(_lock_key(redis, path)) is None


def test_the_snapshot_keeps_every_section_of_the_file(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    # Given a file with a notify section (routing failures to a webhook)
    text = GOOD + (
        "notify:\n"
        "  webhooks:\n"
        "    chat: {url: 'https://hooks.slack.com/services/T/B/X', format: slack,"
        " secret_env: NOTIFY_KEY}\n"
    )
    path = _write(tmp_path, text)
    _load(path, _cache(redis))
    # When another process loads it from the snapshot
    other = _cache(redis)
    loaded = _load(path, other)
    assert other.last is not None and other.last.outcome == "hit"
    # Then nothing of the file was lost on the way (a dropped section silences alerts)
    assert loaded.model == load_targets(path, PROVIDERS, _settings()).model  # type: ignore[attr-defined]
    assert list(loaded.model.notify.webhooks) == ["chat"]  # type: ignore[attr-defined]
