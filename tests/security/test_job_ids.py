"""Attack: a job id with a ':' in it names another key. ``<id>:journal`` in a Celery message
made the worker load that job's journal hash as a job, find it malformed, quarantine it and
delete it. Ids are refused unless they are exactly what rotator generates."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rotator import api
from rotator.errors import InvalidJobId
from rotator.models import is_job_id, new_job_id
from tests.core.conftest import Harness, harness  # noqa: F401 - fixtures used below
from tests.integration.conftest import System, sandbox, system  # noqa: F401
from tests.integration.test_worker_e2e import plant


@pytest.mark.integration
def test_forged_journal_id_in_a_message_leaves_the_journal_alone(system: System) -> None:  # noqa: F811
    # Given a job that ran to completion, with its journal
    plant(system)
    system.start("worker", "--concurrency", "1")
    system.start("beat")
    job_id = system.cli("enqueue", "adobe-sfdc")["job_id"]
    system.wait("job completed", lambda: system.job(job_id).get("state") == "completed")
    journal = system.journal(job_id)
    assert "intent" in journal and "applied" in journal

    # When a message names "<id>:journal" (anyone who can write the broker queue can send it)
    forged = f"{job_id}:journal"
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from rotator.tasks import rotate; rotate.apply_async(args=[[{forged!r}]])",
        ],
        env=system.env,
        check=True,
        timeout=60,
    )
    # ... followed by a real job, which the single worker thread takes after it
    later = system.cli("enqueue", "adobe-sfdc")["job_id"]
    system.wait("next job completed", lambda: system.job(later).get("state") == "completed")

    # Then the forged id was dropped: the journal is intact and nothing was quarantined
    assert system.journal(job_id) == journal
    assert system.redis.hlen(f"{system.prefix}jobs:quarantine") == 0
    logs = "\n".join(p.read_text() for p in system.logs)
    assert "malformed job ids dropped" in logs


def test_forged_ids_are_refused_where_they_enter(harness: Harness) -> None:  # noqa: F811
    # Given a real job with a journal
    job_id = harness.enqueue()
    harness.run(harness.engine.process(job_id))
    journal = harness.run(harness.store.journal(job_id))
    assert journal

    # When forged ids reach the store directly
    for forged in (f"{job_id}:journal", job_id.upper(), job_id[:-1], "", f"{job_id}\n"):
        assert not is_job_id(forged)
        with pytest.raises(InvalidJobId):
            harness.run(harness.store.load_job(forged))
        with pytest.raises(InvalidJobId):
            harness.run(harness.store.quarantine(forged, "forged"))

    # Then nothing was read as a job or deleted
    assert harness.run(harness.store.journal(job_id)) == journal
    assert harness.run(harness.store.quarantined()) == {}
    assert is_job_id(new_job_id())


def test_cli_and_api_refuse_forged_ids() -> None:
    forged = f"{new_job_id()}:journal"
    shown = subprocess.run(
        [sys.executable, "-m", "rotator", "job", forged],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 2 and "is not a job id" in shown.stderr
    with pytest.raises(InvalidJobId):
        api.job(forged)  # refused before any settings are loaded or Redis is reached
