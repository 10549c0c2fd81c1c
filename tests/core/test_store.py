"""The store's own contract: script files, KEYS-only key access, terminal states from JobState,
the create-job race, and the read models the runtime and the report use."""

from __future__ import annotations

import re
from importlib import resources

import fakeredis
import pytest

from rotator.models import TERMINAL_STATES, JobState, Reason
from rotator.store import scripts
from rotator.store.jobs import TERMINAL_ARG
from rotator.store.keys import Keys
from rotator.store.views import StoreReader

from .conftest import Harness

LUA = resources.files("rotator.store").joinpath("lua")
STORE_SCRIPTS = sorted(
    p.name.removesuffix(".lua")
    for p in LUA.iterdir()
    if p.name.endswith(".lua") and not p.name.startswith("audit_")
)


@pytest.mark.parametrize("name", STORE_SCRIPTS)
def test_every_script_documents_its_keys_and_argv(name: str) -> None:
    header = LUA.joinpath(f"{name}.lua").read_text("utf-8").split("\n")
    comments = "\n".join(line for line in header if line.startswith("--"))
    used = set(re.findall(r"KEYS\[(\d+)\]", scripts.load(name)))
    assert "KEYS[" in comments and "ARGV[" in comments
    for index in used:
        assert f"KEYS[{index}]" in comments or "include: fence_check" in "\n".join(header)


@pytest.mark.parametrize("name", STORE_SCRIPTS)
def test_no_script_builds_a_key_or_lists_job_states(name: str) -> None:
    body = "\n".join(
        line for line in scripts.load(name).splitlines() if not line.lstrip().startswith("--")
    )
    # Every key comes in as KEYS: no prefix, no "job:" concatenated in a script.
    assert "prefix" not in body and "':" not in body.replace("':'", "")
    for state in TERMINAL_STATES:
        assert f"'{state}'" not in body


def test_fenced_scripts_start_with_the_lease_check() -> None:
    check = scripts.load("fence_check")
    for name in ("renew", "record", "stage", "finish", "reschedule"):
        assert check in scripts.load(name)
        assert not any(line.startswith("-- include:") for line in scripts.load(name).splitlines())


def test_terminal_states_come_from_jobstate() -> None:
    assert set(TERMINAL_ARG.split(",")) == {str(s) for s in JobState if s.terminal}


def test_create_job_dedupes_through_the_active_job(harness: Harness) -> None:
    # Given a queued job for crm
    first, created = harness.run(harness.store.create_job("crm", Reason.ON_DEMAND, "t"))
    assert created
    # When another is requested, the live one comes back
    again, created = harness.run(harness.store.create_job("crm", Reason.ON_DEMAND, "t"))
    assert (again, created) == (first, False)
    # When the live one ends in a terminal state, a new one is created
    harness.run(harness.redis.hset(harness.store.keys.job(first), "state", "failed"))
    fresh, created = harness.run(harness.store.create_job("crm", Reason.ON_DEMAND, "t"))
    assert created and fresh != first


def test_create_retries_when_the_active_job_changes_under_it(harness: Harness) -> None:
    keys = harness.store.keys
    # Given crm's active key points at a running job the caller did not expect
    harness.run(harness.redis.set(keys.active("crm"), "other"))
    harness.run(harness.redis.hset(keys.job("other"), mapping={"state": "running"}))
    results = harness.run(harness.store.create_scheduled_jobs(["crm", "solo"]))
    # Then crm returns that job (found on the retry) and solo gets a new one
    assert results[0] == ("crm", "other", False)
    assert results[1][0] == "solo" and results[1][2] is True


def test_soonest_due(harness: Harness) -> None:
    assert harness.run(harness.store.soonest_due()) is None
    harness.run(harness.redis.zadd(harness.store.keys.due, {"a": 50.0, "b": 20.0}))
    assert harness.run(harness.store.soonest_due()) == 20.0


def test_store_reader_targets_with_schedule() -> None:
    server = fakeredis.FakeServer()
    keys = Keys("r:")
    client = fakeredis.FakeRedis(server=server)
    client.hset(keys.target("a"), mapping={"current": "v1", "rotated_at": "5"})
    client.zadd(keys.schedule, {"a": 12.5})
    views = StoreReader(client, keys).target_states_with_schedule(["a", "b"])
    assert views["a"].state == {"current": "v1", "rotated_at": "5"}
    assert views["a"].next_due == 12.5
    assert views["b"].state == {} and views["b"].next_due is None
