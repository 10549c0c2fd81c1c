"""Issue 10.2: a forged ``audit_owed`` field in a job hash is refused and reported, never
chained with the real key (end to end: the worker pass of ``rotator run --once``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis

from rotator.audit import AuditEvent
from rotator.audit.keyring import AuditKeyring
from rotator.audit.owed import open_owed, seal_owed

from .audit_helpers import AUDIT_KEY, cli, make_env


def test_a_forged_owed_event_is_refused_not_chained(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    env = make_env(tmp_path, redis_url, key_prefix)
    # Given a real job (enqueued by an operator)
    queued = cli(env, "enqueue", "t1", "--json")
    assert queued.returncode == 0, queued.stderr
    job_id = json.loads(queued.stdout)["job_id"]
    # When an attacker with Redis write access ends it with a forged terminal event
    forged = AuditEvent(
        "job.completed",
        job_id=job_id,
        target="t1",
        actor="cli:alice",
        outcome="success",
        secret_version="v000000000042",
        time=time.time() - 86400,
    )
    r = redis.Redis.from_url(redis_url)
    r.hset(
        f"{key_prefix}job:{job_id}",
        mapping={"state": "completed", "audit_owed": json.dumps(forged.to_dict())},
    )
    r.zadd(f"{key_prefix}jobs:due", {job_id: time.time() - 1})
    # Then the worker pass refuses it, reports it, and chains nothing the attacker wrote
    ran = cli(env, "run", "--once", "--max-wait", "0")
    assert "forged owed audit event refused" in ran.stderr, ran.stderr
    story = json.loads(cli(env, "audit", "show", job_id, "--json").stdout)["events"]
    names = [e["event"] for e in story]
    assert "audit.forgery_refused" in names and "job.completed" not in names
    assert not r.hexists(f"{key_prefix}job:{job_id}", "audit_owed")
    assert cli(env, "audit", "verify", "--no-checkpoint").returncode == 0


def test_owed_records_are_bound_to_their_job_and_key() -> None:
    keyring = AuditKeyring([AUDIT_KEY.encode()])
    event = AuditEvent("job.completed", job_id="j1", outcome="success", time=1.0)
    sealed = seal_owed(keyring, event)
    assert open_owed(keyring, "j1", sealed) == event
    assert open_owed(keyring, "j2", sealed) is None  # copied to another job
    assert open_owed(AuditKeyring([b"k" * 40]), "j1", sealed) is None  # another key
    tampered = json.loads(sealed)
    tampered["event"]["outcome"] = "failed"
    assert open_owed(keyring, "j1", json.dumps(tampered)) is None
