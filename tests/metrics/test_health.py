"""/healthz and /readyz over a real socket against the shared Redis: ready, then each cause of
not-ready on its own line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from cryptography.fernet import Fernet

from rotator import health
from rotator.config import Settings
from rotator.health import MonitorServer, readiness_checks
from rotator.store.keys import Keys
from tools.common import free_port

pytestmark = pytest.mark.integration

AUDIT_KEY = "health-test-audit-key-at-least-32-bytes"


def settings_for(tmp_path: Path, redis_url: str, key_prefix: str, master: str) -> Settings:
    targets = tmp_path / "rotator.yaml"
    if not targets.exists():
        targets.write_text("targets: {}\n")
    return Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        master_key=master,
        audit_key=AUDIT_KEY,
        targets_file=targets,
        state_dir=tmp_path / "state",
        dispatch_interval=1.0,
    )


@pytest.fixture
def serve() -> Iterator[list[MonitorServer]]:
    servers: list[MonitorServer] = []
    yield servers
    for server in servers:
        server.stop()


def ready(
    settings: Settings, servers: list[MonitorServer], *, beat: bool = False
) -> httpx.Response:
    server = MonitorServer(
        0, lambda: (b"", "text/plain"), readiness_checks(settings, beat=beat), host="127.0.0.1"
    ).start()
    servers.append(server)
    assert httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5).status_code == 200
    return httpx.get(f"http://127.0.0.1:{server.port}/readyz", timeout=30)


def failed(response: httpx.Response) -> set[str]:
    assert response.status_code == 503, response.text
    return {line.split(":", 1)[0] for line in response.text.splitlines()}


def test_ready_when_redis_keys_and_config_are_good(
    tmp_path: Path, redis_url: str, key_prefix: str, serve: list[MonitorServer]
) -> None:
    response = ready(
        settings_for(tmp_path, redis_url, key_prefix, Fernet.generate_key().decode()), serve
    )
    assert (response.status_code, response.text) == (200, "ready\n")


def test_not_ready_when_redis_is_unreachable(
    tmp_path: Path, key_prefix: str, serve: list[MonitorServer]
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings_for(tmp_path, nowhere, key_prefix, Fernet.generate_key().decode())
    assert {"redis", "keys"} <= failed(ready(settings, serve))


def test_not_ready_when_the_master_key_does_not_match_the_store(
    tmp_path: Path, redis_url: str, key_prefix: str, serve: list[MonitorServer]
) -> None:
    # Given a store whose check values were written with one master key
    first = settings_for(tmp_path, redis_url, key_prefix, Fernet.generate_key().decode())
    assert ready(first, serve).status_code == 200
    # When a process with another key asks
    other = settings_for(tmp_path, redis_url, key_prefix, Fernet.generate_key().decode())
    response = ready(other, serve)
    # Then only the keys check fails, and it names the setting, never a value
    assert failed(response) == {"keys"}
    assert "ROTATOR_MASTER_KEY" in response.text
    assert other.master_keys()[0] not in response.text


def test_not_ready_when_the_targets_file_is_invalid(
    tmp_path: Path, redis_url: str, key_prefix: str, serve: list[MonitorServer]
) -> None:
    (tmp_path / "rotator.yaml").write_text("targets:\n  broken: {provider: nope}\n")
    settings = settings_for(tmp_path, redis_url, key_prefix, Fernet.generate_key().decode())
    assert failed(ready(settings, serve)) == {"config"}


def test_beat_not_ready_when_dispatch_stalled_for_three_intervals(
    tmp_path: Path,
    redis_url: str,
    key_prefix: str,
    serve: list[MonitorServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for(tmp_path, redis_url, key_prefix, Fernet.generate_key().decode())
    client = redis.Redis.from_url(redis_url)
    # Given a beat process started a while ago whose last dispatch is 10 intervals old
    monkeypatch.setattr(health, "_STARTED", time.time() - 60)
    client.set(Keys(key_prefix).last_dispatch, repr(time.time() - 10))
    response = ready(settings, serve, beat=True)
    assert failed(response) == {"dispatch"}
    assert "no dispatch for 10s" in response.text
    # When a dispatch runs, it is ready again (a worker never checks dispatch)
    client.set(Keys(key_prefix).last_dispatch, repr(time.time()))
    assert ready(settings, serve, beat=True).status_code == 200
    client.set(Keys(key_prefix).last_dispatch, repr(time.time() - 10))
    assert ready(settings, serve).status_code == 200
    client.close()
