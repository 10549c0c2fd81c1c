"""Issue 12, items 5-9, through the CLI as an operator meets it (a real subprocess each time):
field-checked secret versions, no surprise first rotation, whole ids and unique prefixes,
the operator's reason text, and commands that fail and end cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from rotator.audit import AuditEvent
from rotator.store.keys import Keys
from tests.security.audit_helpers import cli, emit, make_env

pytestmark = pytest.mark.integration

TARGETS = """
secrets:
  s1: {source: store}
  s2: {source: store}
  groups: {source: store}
targets:
  t1:
    provider: adobe
    base_url: "https://a.example"
    resource_id: r1
    secret: s1
    options: {org_id: "ORG@AdobeOrg"}
  weekly:
    provider: adobe
    base_url: "https://a.example"
    resource_id: r2
    secret: s2
    schedule: "0 3 * * 1"
    options: {org_id: "ORG@AdobeOrg"}
  robots:
    provider: uipath
    base_url: "https://u.example/org/identity_"
    resource_id: r3
    secret: groups
    schedule: 30d
    options: {partition_global_id: p1}
"""


@pytest.fixture
def env(tmp_path: Path, redis_url: str, key_prefix: str) -> dict[str, str]:
    env = make_env(tmp_path, redis_url, key_prefix)
    (tmp_path / "rotator.yaml").write_text(TARGETS)
    env["ROTATOR_ALLOWED_HOSTS"] = "adobe=a.example,uipath=u.example"
    env["COLUMNS"] = "80"
    return env


def put(
    env: dict[str, str], name: str, value: object, *flags: str
) -> subprocess.CompletedProcess[str]:
    return cli(env, "secrets", "put", name, *flags, stdin=json.dumps(value))


# -- 5. never lose a field ------------------------------------------------------------------


def test_secrets_put_refuses_a_value_that_drops_fields_and_shows_only_names(
    env: dict[str, str],
) -> None:
    assert put(env, "s1", {"username": "svc", "password": "pw-secret-1"}).returncode == 0
    refused = put(env, "s1", {"x": 1})
    assert refused.returncode == 2, refused.stderr
    text = " ".join((refused.stdout + refused.stderr).split())
    assert "-password -username +x" in text and "--allow-field-change" in text
    assert "pw-secret-1" not in text and "svc" not in text
    listed = redis.Redis.from_url(env["ROTATOR_REDIS_URL"])
    versions = listed.hlen(f"{env['ROTATOR_KEY_PREFIX']}secret:s1:versions")
    assert versions == 1  # nothing stored
    allowed = put(env, "s1", {"x": 1}, "--allow-field-change")
    assert allowed.returncode == 0, allowed.stderr
    assert "fields changed: -password -username +x" in allowed.stdout
    same = put(env, "s1", {"x": 2})  # same names: no diff to confirm
    assert same.returncode == 0 and "fields changed" not in same.stdout


def test_secrets_put_checks_the_fields_the_provider_needs(env: dict[str, str]) -> None:
    refused = put(env, "groups", {"x": 1})
    assert refused.returncode == 2
    text = " ".join(refused.stderr.split())
    assert "target robots (uipath) needs field(s) ['groupIds']" in text
    assert "cannot use field(s) ['x']" in text
    assert put(env, "groups", {"groupIds": ["g1"]}).returncode == 0


# -- 6. no surprise first rotation ------------------------------------------------------------


def test_a_new_cron_target_first_runs_at_its_next_slot_and_status_says_when(
    env: dict[str, str],
) -> None:
    assert put(env, "s2", {"username": "svc", "password": "pw"}).returncode == 0
    assert put(env, "groups", {"groupIds": ["g1"]}).returncode == 0
    before = cli(env, "status", "--json")
    rows = {r["target"]: r for r in json.loads(before.stdout)}
    weekly, robots = rows["weekly"], rows["robots"]
    assert weekly["first_run"] and weekly["next_due"] > time.time()
    assert time.gmtime(weekly["next_due"]).tm_wday == 0  # Monday 03:00 UTC
    assert time.gmtime(weekly["next_due"]).tm_hour == 3
    # interval target, default first_rotation: scheduled = one interval from now
    assert robots["next_due"] > time.time() + 29 * 86400
    assert "(first)" in cli(env, "status").stdout

    ran = cli(env, "run", "--once")
    assert ran.returncode == 0, ran.stderr
    jobs = json.loads(cli(env, "jobs", "--json").stdout)
    assert jobs == []  # nothing rotated by surprise


# -- 7, 8, 9. ids, reasons, errors, zones ---------------------------------------------------


def test_ids_are_whole_at_80_columns_and_unique_prefixes_resolve(env: dict[str, str]) -> None:
    assert put(env, "s1", {"username": "svc", "password": "pw"}).returncode == 0
    queued = cli(env, "enqueue", "t1", "--reason", "leak drill")
    job_id = queued.stdout.strip()
    assert len(job_id) == 32, queued.stderr

    listing = cli(env, "jobs")
    assert listing.returncode == 0
    assert "…" not in listing.stdout
    assert all(len(line) <= 80 for line in listing.stdout.splitlines())
    lines = listing.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if job_id[:16] in line)
    assert job_id[16:] in lines[at + 1]  # folded into two even halves, never cut
    # 8. the operator's text where they look
    assert "on-demand: leak drill" in cli(env, "jobs", COLUMNS="200").stdout
    shown = cli(env, "job", job_id[:8])
    assert shown.returncode == 0, shown.stderr
    assert job_id in shown.stdout and "on-demand: leak drill" in shown.stdout
    assert cli(env, "audit", "show", job_id[:10]).returncode == 0

    # an ambiguous prefix lists its candidates
    client = redis.Redis.from_url(env["ROTATOR_REDIS_URL"])
    keys = Keys(env["ROTATOR_KEY_PREFIX"])
    index = keys.job_index
    twins = ["abcdef01" + "0" * 24, "abcdef01" + "1" * 24]
    client.zadd(index, dict.fromkeys(twins, time.time()))
    ambiguous = cli(env, "job", "abcdef01")
    assert ambiguous.returncode == 2
    assert all(t in ambiguous.stderr for t in twins) and "ambiguous" in ambiguous.stderr


def test_status_shows_the_job_in_flight_and_times_carry_a_zone(env: dict[str, str]) -> None:
    assert put(env, "s1", {"username": "svc", "password": "pw"}).returncode == 0
    assert cli(env, "enqueue", "t1").returncode == 0
    rows = {r["target"]: r for r in json.loads(cli(env, "status", "--json").stdout)}
    assert rows["t1"]["state"] == "queued" and rows["t1"]["active_job"]
    assert "queued" in cli(env, "status").stdout
    listing = cli(env, "jobs").stdout
    assert "Z" in listing and time.strftime("%Y-%m-%d", time.gmtime()) in listing


def test_errors_name_the_problem_with_the_right_exit_codes(env: dict[str, str]) -> None:
    missing = cli(env, "job", "does-not-exist")
    assert missing.returncode == 1 and "no such job" in missing.stderr
    absent = cli(env, "job", "0" * 32)
    assert absent.returncode == 1 and "no such job" in absent.stderr
    assert "malformed" not in absent.stderr
    bogus = cli(env, "jobs", "--state", "bogus")
    assert bogus.returncode == 2
    text = " ".join(bogus.stderr.split())
    assert "valid states" in text and "retrying" in text


def test_audit_export_into_a_closed_pipe_ends_cleanly(env: dict[str, str]) -> None:
    emit(env, [AuditEvent("job.enqueued", target=f"t{i}", detail="x" * 200) for i in range(600)])
    result = subprocess.run(
        [
            "bash",
            "-c",
            f'{sys.executable} -m rotator audit export | head -1; echo "rc=${{PIPESTATUS[0]}}" >&2',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert len(result.stdout.splitlines()) == 1
    assert "rc=0" in result.stderr, result.stderr
    assert "Broken pipe" not in result.stderr and "cannot write" not in result.stderr
