"""The engine hands failed, dead and conflicted endings to its notifier, and a failing
notifier never changes how a rotation ends."""

from __future__ import annotations

import asyncio
import json

import pytest

from rotator import endings
from rotator.errors import BadRequest, TransportError
from rotator.models import JobState, Outcome, new_job_id
from rotator.notify.events import EventKind, Notice
from tests.core.conftest import CANARY, Harness


class Recorder:
    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def notify(self, notice: Notice) -> bool:
        self.notices.append(notice)
        return True


class Broken:
    async def notify(self, notice: Notice) -> bool:
        raise ConnectionError("redis went away")


class Hanging:
    async def notify(self, notice: Notice) -> bool:
        await asyncio.sleep(3600)
        return True


def test_a_failed_rotation_is_notified_with_ids_and_no_value(harness: Harness) -> None:
    recorder = Recorder()
    harness.engine.options.notifier = recorder
    harness.provider.apply_faults.append(
        BadRequest(f"value '{CANARY}' at 'password' failed to satisfy constraint", status=400)
    )
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.FAILED

    (notice,) = recorder.notices
    assert notice.kind is EventKind.FAILED
    assert (notice.subject, notice.job_id, notice.target) == (job_id, job_id, "crm")
    assert notice.provider == "fake" and notice.error_class == "BadRequest"
    assert notice.secret_version == "v000000000001" and notice.fingerprint
    assert CANARY not in json.dumps(notice.to_dict())
    assert "[redacted]" in (notice.detail or "")


def test_a_conflict_and_a_dead_letter_are_notified_and_retries_are_not(harness: Harness) -> None:
    recorder = Recorder()
    harness.engine.options.notifier = recorder
    harness.provider.apply_faults.append(TransportError("reset", status=0, maybe_applied=False))
    job_id = harness.enqueue()
    assert harness.run(harness.engine.process(job_id)) is Outcome.RETRY
    assert recorder.notices == []
    harness.remote.oob_edit()
    assert harness.run(harness.engine.process(job_id)) is Outcome.CONFLICT

    harness.provider.read_faults.extend([TransportError("down", status=0)] * 3)
    dead = harness.enqueue()
    for _ in range(3):
        harness.run(harness.engine.process(dead))

    kinds = [(n.kind, n.job_id) for n in recorder.notices]
    assert kinds == [(EventKind.CONFLICT, job_id), (EventKind.DEAD, dead)]
    conflict = recorder.notices[0]
    assert conflict.remote_version_after and conflict.remote_version_before


def test_a_quarantined_job_is_notified(harness: Harness) -> None:
    recorder = Recorder()
    harness.engine.options.notifier = recorder
    bad = new_job_id()  # a well-formed id whose record is not
    harness.run(harness.redis.hset(harness.store.keys.job(bad), mapping={"state": "??"}))

    assert harness.run(harness.engine.process(bad)) is Outcome.QUARANTINED

    (notice,) = recorder.notices
    assert (notice.kind, notice.subject, notice.job_id) == (EventKind.QUARANTINED, bad, bad)
    assert notice.detail


@pytest.mark.parametrize("notifier", [Broken(), Hanging()], ids=["raises", "hangs"])
def test_a_failing_notifier_never_changes_the_ending(
    harness: Harness, notifier: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endings, "NOTIFY_TIMEOUT", 0.05)
    harness.engine.options.notifier = notifier  # type: ignore[assignment]
    harness.provider.apply_faults.append(BadRequest("invalid", status=400))
    job_id = harness.enqueue()

    assert harness.run(harness.engine.process(job_id)) is Outcome.FAILED

    job = harness.run(harness.store.load_job(job_id))
    assert job.state is JobState.FAILED
    assert [e["event"] for e in harness.audit_events()][-1] == "job.failed"
