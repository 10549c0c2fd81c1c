"""Issue 12.6: ``first_rotation: adopt`` takes over a live target without writing to it."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import System

pytestmark = pytest.mark.integration


def test_adopt_records_the_live_version_and_writes_nothing(system: System) -> None:
    targets = system.tmp / "rotator.yaml"
    targets.write_text(
        targets.read_text().replace(
            "    secret: sfdc\n", "    secret: sfdc\n    schedule: 30d\n    first_rotation: adopt\n"
        )
    )
    (system.tmp / "sfdc.json").write_text(json.dumps({"username": "etl", "password": "new"}))
    before = system.admin.get("/_sandbox/adobe/resources/conn-it-1").json()

    ran = system.cli("run", "--once")
    assert ran is not None

    state = {
        k.decode(): v.decode()
        for k, v in system.redis.hgetall(f"{system.prefix}target:adobe-sfdc").items()
    }
    after = system.admin.get("/_sandbox/adobe/resources/conn-it-1").json()
    assert after == before  # nothing written: same params, same etag, no marker
    assert state["last_outcome"] == "adopted"
    assert state["remote_version"] == str(after["etag"])
    assert "current" not in state  # no secret version was stored or pinned
    assert not system.redis.exists(f"{system.prefix}secret:sfdc:versions")
    events = system.cli("audit", "list", "--event", "target.adopted")["events"]
    assert [(e["target"], e["outcome"]) for e in events] == [("adobe-sfdc", "adopted")]
    assert system.cli("jobs") == []
    status = {r["target"]: r for r in system.cli("status")}
    assert status["adobe-sfdc"]["state"] == "adopted"
