"""Issue 10.11: a hostile or broken provider endpoint cannot hold a rotation (or its memory).

Each attack runs end to end: a targets file points an Adobe target's token URL at a local
hostile peer, and ``rotator run --once`` (the same engine a worker runs) must end the attempt
quickly with a clear error, instead of talking to the peer for minutes or inflating its body.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest
import redis
from cryptography.fernet import Fernet

from rotator.errors import ResponseTooLarge
from rotator.providers.base import ProviderContext, TargetSpec, send
from tests.security.hostile import BOMB_DECODED, gzip_bomb, hostile_server

TARGETS = """
secrets:
  s:
    source: generate
targets:
  hostile:
    provider: adobe
    base_url: {url}/data/foundation/flowservice
    resource_id: conn-1
    secret: s
    schedule: 1d
    first_rotation: now
    credentials:
      client_id: env:HOSTILE_CLIENT_ID
      client_secret: env:HOSTILE_CLIENT_SECRET
    options:
      ims_url: {url}/ims/token/v3
      org_id: "org@AdobeOrg"
"""


def run_once(
    tmp_path: Path, redis_url: str, key_prefix: str, server_url: str, hostport: str, **env: str
) -> tuple[float, dict[str, str]]:
    """``rotator run --once`` against the hostile peer; (seconds it took, the job's record)."""
    (tmp_path / "rotator.yaml").write_text(TARGETS.format(url=server_url))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    environ.update(
        {
            "ROTATOR_REDIS_URL": redis_url,
            "ROTATOR_KEY_PREFIX": key_prefix,
            "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
            "ROTATOR_AUDIT_KEY": "security-audit-key-0123456789abcdef0123",
            "ROTATOR_TARGETS_FILE": str(tmp_path / "rotator.yaml"),
            "ROTATOR_STATE_DIR": str(tmp_path / "state"),
            "ROTATOR_INSECURE_HOSTS": hostport,  # plain http for this peer only (issue 10.5)
            "ROTATOR_MAX_ATTEMPTS": "1",
            "HOSTILE_CLIENT_ID": "client",
            "HOSTILE_CLIENT_SECRET": "not-a-real-secret",
            **env,
        }
    )
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "rotator", "run", "--once", "--max-wait", "0", "--json"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    took = time.monotonic() - started
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        (job_id,) = client.zrange(f"{key_prefix}jobs:index", 0, -1)
        job = client.hgetall(f"{key_prefix}job:{job_id}")
    finally:
        client.close()
    return took, job


@pytest.mark.integration
@pytest.mark.parametrize(
    ("http_timeout", "lease_ttl"),
    # A call deadline must be shorter than the lease (settings refuse otherwise); with a 3 s
    # lease the attempt's own deadline (lease minus its margin) is the tighter bound.
    [("2", "300"), ("2.9", "3")],
    ids=["call-deadline", "lease-deadline"],
)
def test_trickling_peer_cannot_hold_an_attempt(
    tmp_path: Path, redis_url: str, key_prefix: str, http_timeout: str, lease_ttl: str
) -> None:
    # Given a peer that answers 4 bytes a second (each read returns well within the timeout)
    with hostile_server("trickle", max_seconds=60) as server:
        # When a rotation's first call (the token mint) meets it
        took, job = run_once(
            tmp_path,
            redis_url,
            key_prefix,
            server.url,
            server.hostport,
            ROTATOR_HTTP_TIMEOUT=http_timeout,
            ROTATOR_LEASE_TTL=lease_ttl,
        )
        assert server.requests >= 1 and server.trickled > 0
    # Then the call ends at its total deadline (2 s) or, sooner, before the lease (3 s) runs
    # out, not after the peer's minute; the job records why (process start-up included).
    assert job["last_error_class"] == "CallDeadlineExceeded", job
    assert took < 25, f"run --once took {took:.1f}s"


@pytest.mark.integration
def test_gzip_bomb_is_refused_by_the_worker_path(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    # Given a peer whose 51 KB gzip answer inflates to 52 MB
    with hostile_server("gzip-bomb") as server:
        # When a rotation calls it
        _took, job = run_once(tmp_path, redis_url, key_prefix, server.url, server.hostport)
    # Then reading stopped at the cap, with an error that says so
    assert job["last_error_class"] == "ResponseTooLarge", job
    assert "larger than 1048576 bytes" in job["last_error"]


def test_gzip_bomb_never_inflates_in_memory() -> None:
    # Given the bomb server and the HTTP client every adapter uses
    assert len(gzip_bomb()) < 60_000
    context = ProviderContext(timeout=10)
    target = TargetSpec("t", "adobe", "http://127.0.0.1", "r", {}, {})

    async def call(url: str) -> None:
        client = context.client(target)
        try:
            await send(client, "adobe", "GET", url)
        finally:
            await context.aclose()

    with hostile_server("gzip-bomb") as server:
        # When one call reads its answer, with allocations traced
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLarge):
                asyncio.run(call(server.url))
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # Then the peak stays a small fraction of the 52 MB it decodes to (measured: 5.4 MB, most
    # of it the TLS context)
    assert peak < BOMB_DECODED / 10, f"peak {peak / 1e6:.1f} MB"


def test_oversized_plain_body_is_refused() -> None:
    # A peer that declares nothing and streams more than the cap is cut off, too.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps({"x": "y" * 2_000_000}).encode())

    context = ProviderContext(transport=httpx.MockTransport(handler))
    target = TargetSpec("t", "adobe", "https://example.test", "r", {}, {})

    async def call() -> None:
        try:
            await send(context.client(target), "adobe", "POST", "https://example.test/x")
        finally:
            await context.aclose()

    with pytest.raises(ResponseTooLarge) as caught:
        asyncio.run(call())
    assert caught.value.maybe_applied  # a POST that got an answer may have been applied
