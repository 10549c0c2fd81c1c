"""`rotator plan` through the real CLI against the sandbox for all five providers.

Each test proves the plan never writes: the sandbox's per-resource history and update counters,
and every Redis key under the test's prefix, are the same after the plan as before it.
"""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from rotator.demo import DemoTarget, write_targets
from tests.plan.conftest import World

pytestmark = pytest.mark.integration

ROBOT_ACCESS = {"displayName": "ETL robot", "groupIds": ["g-etl", "g-shared"]}


def push_robot_access(world: World) -> str:
    """The demo's 'store' secret, pushed as an operator would (this write precedes the plan)."""
    path = world.tmp / "robot-access.json"
    path.write_text(json.dumps(ROBOT_ACCESS))
    result = world.rotator("secrets", "put", "robot-access", "--from-file", str(path), "--json")
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["version"])


def test_plan_of_five_providers_is_ready_and_writes_nothing(world: World) -> None:
    # Given the demo's five targets, seeded in the sandbox, and the robot's access pushed
    write_targets(world.targets_file, world.targets)
    stored = push_robot_access(world)
    sandbox_before, redis_before = world.sandbox_state(), world.redis_state()

    # When the operator plans every target
    started = time.time()
    code, plan = world.plan_json()

    # Then every target is ready, with what a rotation would do
    assert code == 0, plan
    assert plan["ok"] is True and plan["state"] == "read"
    by_name = {t["target"]: t for t in plan["targets"]}
    assert sorted(by_name) == sorted(t.name for t in world.targets)
    for entry in by_name.values():
        assert entry["ok"] and entry["problems"] == [], entry
        assert entry["authenticated"] is True
        assert entry["resource_version"], entry
        assert entry["changes"], entry
        assert entry["due_note"] == "at the next sync, within jitter"
        assert started - 5 <= entry["next_due"] <= time.time() + 5
    adobe = by_name["adobe-salesforce"]
    assert adobe["new_status"] == "generated" and adobe["differs"] is True
    assert adobe["changes"] == ["auth.params.password", "auth.params.username", "description"]
    robot = by_name["uipath-robot"]
    assert (robot["new_source"], robot["new_status"], robot["new_version"]) == (
        "store",
        "stored",
        stored,
    )
    assert robot["changes"] == ["groupIds"] and robot["differs"] is True
    assert by_name["appflow-salesforce"]["changes"] == [
        "connectorProfileCredentials.Salesforce.accessToken"
    ]
    assert by_name["commercelayer-integration"]["changes"] == [
        "reference",
        "role",
        "metadata.rotator",
        "metadata.rotator_digest",
    ]
    assert "organization.connection" in by_name["ciphertrust-sfdc-org"]["changes"]

    # And nothing was written: not in the sandbox, not in Redis
    assert world.sandbox_state() == sandbox_before
    assert all(count == 0 for count in sandbox_before["updates"].values())
    assert world.redis_state() == redis_before

    # The human form says the same, one line per target
    result = world.rotator("plan")
    assert result.returncode == 0, result.stderr
    heads = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert sum(line.startswith("✓") for line in heads) == 5
    assert "5 targets: 5 ready, 0 would fail" in result.stdout
    assert world.redis_state() == redis_before


def broken_targets(world: World) -> list[DemoTarget]:
    adobe, appflow, uipath, cl, ctm = world.targets

    def variant(base: DemoTarget, name: str, **changes: object) -> DemoTarget:
        return dataclasses.replace(base, name=name, secret_name=f"s-{name}", **changes)  # type: ignore[arg-type]

    world.env["WRONG_SECRET"] = "not-the-client-secret"
    no_partition = {"scope": "PM.RobotAccount"}
    no_org = {k: v for k, v in adobe.options.items() if k != "org_id"}
    return [
        variant(adobe, "good-adobe"),
        variant(
            adobe,
            "bad-credential",
            credentials={"client_id": "DEMO_ADOBE_CLIENT_ID", "client_secret": "WRONG_SECRET"},
        ),
        variant(cl, "missing-resource", resource_id="apiCredGone"),
        variant(uipath, "missing-option", options=no_partition, secret_source="{source: store}"),
        variant(adobe, "missing-org", options=no_org),
        variant(
            appflow,
            "unset-credential",
            credentials={
                "aws_access_key_id": "DEMO_AWS_ACCESS_KEY_ID",
                "aws_secret_access_key": "PLAN_TEST_UNSET_VARIABLE",
            },
        ),
        variant(ctm, "missing-org-in-ctm", resource_id="org-nope"),
    ]


def test_each_broken_target_gets_one_clear_line_and_nothing_is_written(world: World) -> None:
    # Given one good target and six broken ones, each broken a different way
    write_targets(world.targets_file, broken_targets(world))
    sandbox_before, redis_before = world.sandbox_state(), world.redis_state()

    # When planned
    result = world.rotator("plan")
    code, plan = world.plan_json()

    # Then the plan fails, one line per broken target naming the target and the reason
    assert result.returncode == 1 and code == 1
    lines = result.stdout.splitlines()
    broken = {line.split()[1]: line for line in lines if line.startswith("✗")}
    assert sorted(broken) == sorted(
        [
            "bad-credential",
            "missing-resource",
            "missing-option",
            "missing-org",
            "unset-credential",
            "missing-org-in-ctm",
        ]
    ), result.stdout
    assert any(line.startswith("✓ good-adobe") for line in lines)
    assert "auth: cannot authenticate" in broken["bad-credential"]
    assert "not found: resource 'apiCredGone'" in broken["missing-resource"]
    assert (
        "option: [uipath] option 'partition_global_id' is not configured"
        in broken["missing-option"]
    )
    assert "option 'org_id' is not configured" in broken["missing-org"]
    assert (
        "credential: credential 'aws_secret_access_key': environment variable "
        "PLAN_TEST_UNSET_VARIABLE is not set" in broken["unset-credential"]
    )
    assert "not found" in broken["missing-org-in-ctm"]
    assert "7 targets: 1 ready, 6 would fail" in result.stdout
    kinds = {t["target"]: [p["kind"] for p in t["problems"]] for t in plan["targets"]}
    assert kinds["bad-credential"] == ["auth"]
    assert kinds["missing-resource"] == ["not_found"]
    assert kinds["missing-option"] == ["source", "option"]  # and no stored version to send
    assert kinds["unset-credential"] == ["credential"]
    # The wrong secret is never echoed
    assert "not-the-client-secret" not in result.stdout + result.stderr

    # And nothing was written
    assert world.sandbox_state() == sandbox_before
    assert world.redis_state() == redis_before


def test_plan_for_named_targets_and_unknown_name(world: World) -> None:
    write_targets(world.targets_file, world.targets)
    code, plan = world.plan_json("adobe-salesforce", "appflow-salesforce")
    assert code == 0
    assert [t["target"] for t in plan["targets"]] == ["adobe-salesforce", "appflow-salesforce"]
    result = world.rotator("plan", "adobe-salesforc")
    assert result.returncode == 2
    assert "no target named 'adobe-salesforc'" in result.stderr


def commercelayer_fleet(world: World, count: int, jitter: str) -> str:
    """``count`` targets on one Commerce Layer host, all on one schedule."""
    cl = world.targets[3]
    blocks = "".join(
        f"  cl-{i:03d}:\n"
        f"    provider: commercelayer\n"
        f"    base_url: {cl.base_url}\n"
        f"    resource_id: {cl.resource_id}\n"
        f"    secret: cl\n"
        f"    schedule: 1h\n"
        f"    first_rotation: now\n"
        f"    jitter: {jitter}\n"
        f"    credentials: {{client_id: env:DEMO_CL_CLIENT_ID, client_secret: env:DEMO_CL_CLIENT_SECRET}}\n"
        f"    options: {{auth_url: {cl.options['auth_url']}}}\n"
        for i in range(count)
    )
    return f"secrets:\n  cl: {cl.secret_source}\ntargets:\n{blocks}"


def test_rate_budget_exceeded_by_a_burst_and_fine_when_spread(world: World) -> None:
    # Given 51 Commerce Layer targets that all come due at once: 51 PATCHes within 10 s
    # against a documented write limit of 50 per 10 s
    world.targets_file.write_text(commercelayer_fleet(world, 51, "0s"))
    sandbox_before, redis_before = world.sandbox_state(), world.redis_state()

    result = world.rotator("plan")
    assert result.returncode == 1, result.stderr
    broken = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert len(broken) == 51
    assert (
        "rate budget: rate budget exceeded: 51 write requests (51 rotations) due within "
        in (broken[0])
    )
    assert "documented limit 50 per 10 s" in broken[0]

    # When the same fleet is spread over ten minutes of jitter, the budget holds
    world.targets_file.write_text(commercelayer_fleet(world, 51, "10m"))
    code, plan = world.plan_json()
    assert code == 0, [t["problems"] for t in plan["targets"] if t["problems"]]

    # And fifty at once fit exactly
    world.targets_file.write_text(commercelayer_fleet(world, 50, "0s"))
    code, _ = world.plan_json()
    assert code == 0
    assert world.sandbox_state() == sandbox_before
    assert world.redis_state() == redis_before


def test_would_differ_by_marker_and_by_record_after_a_rotation(world: World) -> None:
    # Given an Adobe and an AppFlow target whose next value comes from one file
    adobe, appflow = world.targets[0], world.targets[1]
    value = world.tmp / "next.json"
    value.write_text(json.dumps({"username": "etl@example.com", "password": "first-value-1"}))
    file_source = "{source: file, path: next.json}"
    write_targets(
        world.targets_file,
        [
            dataclasses.replace(adobe, secret_source=file_source),
            dataclasses.replace(appflow, secret_source=file_source),
        ],
    )
    code, plan = world.plan_json()
    assert code == 0
    first = {
        t["target"]: (t["new_status"], t["new_version"], t["differs"]) for t in plan["targets"]
    }
    # Adobe's connection carries no rotator marker yet; AppFlow hides credentials entirely
    assert first == {
        "adobe-salesforce": ("new", None, True),
        "appflow-salesforce": ("new", None, None),
    }

    # When rotator rotates both to that value
    rotated = world.rotator("run", "--once", "--max-wait", "30")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    redis_before = world.redis_state()

    # Then the plan sees it is live: by the marker (Adobe), by rotator's record (AppFlow)
    code, plan = world.plan_json()
    assert code == 0
    by_name = {t["target"]: t for t in plan["targets"]}
    for name, evidence in (("adobe-salesforce", "marker"), ("appflow-salesforce", "record")):
        entry = by_name[name]
        current = world.redis.hget(f"{world.prefix}target:{name}", "current")
        assert current, f"{name} was not rotated"
        assert (entry["new_status"], entry["new_version"]) == ("stored", current.decode()), entry
        assert (entry["live_version"], entry["live_evidence"]) == (current.decode(), evidence)
        assert entry["differs"] is False, entry
        assert entry["due_note"] == "scheduled"
        assert "a rotation would change nothing" in " ".join(entry["notes"])

    # And a changed file would differ, as a value not stored yet
    value.write_text(json.dumps({"username": "etl@example.com", "password": "second-value-2"}))
    code, plan = world.plan_json()
    assert code == 0
    for entry in plan["targets"]:
        assert (entry["new_status"], entry["differs"]) == ("new", True), entry
    assert world.redis_state() == redis_before


def test_zero_setup_plan_starts_no_redis_and_creates_no_keys(world: World) -> None:
    # Given zero-setup mode (no Redis URL) and a state dir that does not exist yet
    write_targets(world.targets_file, [t for t in world.targets if t.provider != "uipath"])
    state_dir = world.tmp / "fresh-state"
    for key in ("ROTATOR_REDIS_URL", "ROTATOR_MASTER_KEY", "ROTATOR_AUDIT_KEY"):
        world.env.pop(key)
    world.env["ROTATOR_STATE_DIR"] = str(state_dir)
    sandbox_before = world.sandbox_state()

    # When planned
    result = world.rotator("plan")

    # Then the plan runs without state: no embedded Redis started, no keys generated
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the embedded Redis is not running" in result.stderr
    assert "4 targets: 4 ready, 0 would fail" in result.stdout
    assert not state_dir.exists()
    assert world.sandbox_state() == sandbox_before
