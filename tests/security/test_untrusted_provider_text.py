"""Attacks from a hostile provider endpoint: its error text must neither break nor drive the
operator's terminal, and nothing it echoes back of a secret may be stored, logged or shown.

The attacks run end to end: a real ``rotator run --once`` process rotates targets served by
``tests.security.hostile_adobe``; the operator's commands run as processes against the same Redis.
"""

from __future__ import annotations

import base64
import html
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.security import hostile_adobe as hostile

pytestmark = pytest.mark.integration


def fragments(value: str) -> set[str]:
    """Every 8-character run of ``value`` in the forms a peer might echo, lower-cased: the
    test's own idea of a leak, independent of rotator's redactor."""
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        html.escape(value),
        json.dumps(value)[1:-1],
        base64.b64encode(value.encode()).decode(),
    }
    return {f.lower()[i : i + 8] for f in forms for i in range(len(f) - 7)}


def leaks(text: str, *values: str) -> list[str]:
    low = text.lower()
    return sorted({g for v in values for g in fragments(v) if g in low})


def redis_dump(client: redis.Redis, prefix: str) -> dict[str, str]:
    """Every key under the prefix as text, except the encrypted secret versions."""
    dump = {}
    for raw_key in client.scan_iter(match=f"{prefix}*", count=500):
        key = raw_key.decode()
        if key.endswith(":versions"):
            continue  # the sealed secret values themselves, by design
        kind = client.type(raw_key).decode()
        if kind == "hash":
            value: object = client.hgetall(raw_key)
        elif kind == "stream":
            value = client.xrange(raw_key)
        elif kind == "list":
            value = client.lrange(raw_key, 0, -1)
        elif kind == "zset":
            value = client.zrange(raw_key, 0, -1)
        elif kind == "string":
            value = client.get(raw_key)
        else:
            value = client.smembers(raw_key)
        dump[key] = repr(value)
    return dump


@pytest.fixture
def rotation(tmp_path: Path, redis_url: str, key_prefix: str) -> Iterator[hostile.Rotation]:
    with hostile.serve() as (host, seen):
        run = hostile.setup(tmp_path, host, redis_url, key_prefix, sorted(hostile.ECHOES))
        run.env["SEEN_AUTHORIZATION"] = seen.get("authorization", "")
        yield run


def job_ids(rotation: hostile.Rotation) -> dict[str, str]:
    listed = rotation.cli("jobs", "--json")
    assert listed.returncode == 0, listed.stderr
    return {job["target"]: job["id"] for job in json.loads(listed.stdout)}


def test_markup_and_escapes_in_provider_errors_print_as_text(rotation: hostile.Rotation) -> None:
    # Given every target's update failed with an error full of markup and escape sequences
    ids = job_ids(rotation)
    assert len(ids) == len(hostile.ECHOES), rotation.result.stderr[-3000:]
    job = ids["exact"]

    # When the operator looks at the jobs and the audit trail
    for command in (["jobs"], ["job", job], ["audit", "list"], ["audit", "show", job]):
        shown = rotation.cli(*command)

        # Then every command works and shows the text literally, with no control sequence
        assert shown.returncode == 0, (command, shown.stderr[-2000:])
        assert "[/bold]" in shown.stdout, command
        for control in ("\x1b", "\x9b", "\u202e", "\x07"):
            assert control not in shown.stdout + shown.stderr, (command, control)


def test_secret_echoed_in_any_form_is_stored_logged_and_shown_nowhere(
    rotation: hostile.Rotation, redis_url: str
) -> None:
    # Given a provider that echoed the new password (exact, case-changed, truncated, URL-,
    # HTML-, JSON-, base64-encoded), its bearer token and the client secret in its errors
    secrets = [rotation.secret, rotation.client_secret]
    if rotation.env["SEEN_AUTHORIZATION"]:
        secrets.append(rotation.env["SEEN_AUTHORIZATION"].removeprefix("Bearer "))
    ids = job_ids(rotation)
    assert len(ids) == len(hostile.ECHOES), rotation.result.stderr[-3000:]

    # Then the worker's logs carry none of it
    logs = rotation.result.stdout + rotation.result.stderr
    assert "rotation ended without success" in logs
    assert leaks(logs, *secrets) == []

    # ... nor does any Redis key (job hashes, journals, the audit stream, its indexes)
    client = redis.Redis.from_url(redis_url)
    try:
        dump = redis_dump(client, rotation.prefix)
        jobs = {t: client.hgetall(f"{rotation.prefix}job:{i}") for t, i in ids.items()}
    finally:
        client.close()
    # Sealed tokens and the raw-digest fingerprint index are binary by design: any byte may
    # appear in them, and none is provider text.
    binary = (":fingerprints",)
    for key, value in dump.items():
        assert leaks(value, *secrets) == [], key
        if key.endswith(binary) or key.startswith(f"{rotation.prefix}token:"):
            continue
        assert "\\x1b" not in value, key  # provider text stored without control characters
    for target, job in jobs.items():
        assert job[b"state"] == b"failed", target
        assert job[b"last_error_class"] == b"BadRequest", target
        error = job[b"last_error"].decode()
        assert len(error) <= 500
        assert "[redacted]" in error or target == "code", (target, error)
    assert b"FLOW-400" in jobs["exact"][b"last_error"]  # an allowed code is kept
    assert rotation.secret[:20].encode() not in jobs["code"][b"last_error"]

    # ... nor does anything the operator's commands print
    for target in ("exact", "upper", "prefix", "base64", "token", "client-secret"):
        job = ids[target]
        for command in (["job", job], ["audit", "show", job]):
            shown = rotation.cli(*command)
            assert shown.returncode == 0, (command, shown.stderr[-2000:])
            assert leaks(shown.stdout + shown.stderr, *secrets) == [], (target, command)
    for command in (
        ["jobs"],
        ["jobs", "--json"],
        ["audit", "list", "-n", "500"],
        ["audit", "export"],
    ):
        shown = rotation.cli(*command)
        assert shown.returncode == 0, (command, shown.stderr[-2000:])
        assert leaks(shown.stdout + shown.stderr, *secrets) == [], command
