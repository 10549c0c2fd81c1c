"""``rotator jobs --quarantined``: quarantined job records and broker envelopes, via the CLI.

The envelope records are the ones ``rotator.broker`` writes; the bytes kept of an envelope are
shown only with ``--raw`` (they are whatever someone pushed onto the queue).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography.fernet import Fernet

from rotator.broker import quarantine_record
from rotator.store.keys import Keys

pytestmark = pytest.mark.integration

HOSTILE = b"\x00\xffnot-json-" + b"Q" * 2000


@pytest.fixture
def env(tmp_path: Path, redis_url: str, key_prefix: str) -> Iterator[dict[str, str]]:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(key_prefix)
    client.lpush(keys.broker_quarantine, quarantine_record(HOSTILE, "envelope is not UTF-8", "q1"))
    client.lpush(
        keys.broker_quarantine,
        quarantine_record(b"[1, 2]", "envelope is a JSON list, not an object", "q1"),
    )
    client.hset(
        keys.quarantine, "job-bad", json.dumps({"reason": "missing field 'target'", "at": 1.0})
    )
    client.close()
    base = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    yield {
        **base,
        "ROTATOR_REDIS_URL": redis_url,
        "ROTATOR_KEY_PREFIX": key_prefix,
        "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
        "ROTATOR_AUDIT_KEY": "cli-test-audit-key-at-least-32-bytes",
        "ROTATOR_STATE_DIR": str(tmp_path / "state"),
        "ROTATOR_TARGETS_FILE": str(tmp_path / "none.yaml"),
        "COLUMNS": "300",
    }


def rotator(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "rotator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_json_lists_jobs_and_envelopes_without_the_bytes(env: dict[str, str]) -> None:
    listing: dict[str, Any] = json.loads(rotator(env, "jobs", "--quarantined", "--json"))

    assert list(listing["jobs"]) == ["job-bad"]
    newest, hostile = listing["envelopes"]
    assert newest["reason"] == "envelope is a JSON list, not an object"
    assert {k: hostile[k] for k in ("reason", "queue", "size", "truncated")} == {
        "reason": "envelope is not UTF-8",
        "queue": "q1",
        "size": len(HOSTILE),
        "truncated": True,
    }
    assert isinstance(hostile["at"], float)
    assert "raw_b64" not in hostile


def test_raw_shows_the_kept_bytes(env: dict[str, str]) -> None:
    listing = json.loads(rotator(env, "jobs", "--quarantined", "--raw", "--json"))

    kept = base64.b64decode(listing["envelopes"][1]["raw_b64"])
    assert kept == HOSTILE[:1024]


def test_table_shows_reason_size_time_and_queue(env: dict[str, str]) -> None:
    table = rotator(env, "jobs", "--quarantined")

    assert "quarantined broker envelopes" in table and "quarantined jobs" in table
    assert "job-bad" in table and "missing field 'target'" in table
    assert "envelope is not UTF-8" in table and f"{len(HOSTILE)} B (truncated)" in table
    assert "q1" in table
    assert "QQQQ" not in table and base64.b64encode(HOSTILE[:30]).decode() not in table
