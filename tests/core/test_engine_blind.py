"""Providers that cannot show whose change is live (AppFlow): decide from evidence, not guesses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rotator.engine import Outcome
from rotator.errors import RateLimited, TransportError
from tests.core.conftest import CANARY, Harness
from tests.core.fakes import BlindReplayProvider


@pytest.fixture
def blind(harness: Harness) -> Iterator[tuple[Harness, BlindReplayProvider]]:
    provider = BlindReplayProvider(harness.remote)
    harness.engine.providers = lambda name: provider
    yield harness, provider


def events(h: Harness, job_id: str) -> list[str]:
    return [e["event"] for e in h.audit_events() if e["job_id"] == job_id]


def test_lost_response_is_replayed_not_mistaken_for_a_conflict(
    blind: tuple[Harness, BlindReplayProvider],
) -> None:
    h, provider = blind
    provider.apply_then.append(TransportError("read timeout", maybe_applied=True))
    job_id = h.enqueue()

    assert h.run(h.engine.process(job_id)) is Outcome.RETRY
    assert h.run(h.engine.process(job_id)) is Outcome.COMPLETED
    assert h.remote.applies == 1  # the resend replayed the first result
    assert "update.replaced_foreign_change" not in events(h, job_id)
    assert h.remote.secret["password"] == CANARY


def test_refused_update_then_foreign_edit_is_a_conflict(
    blind: tuple[Harness, BlindReplayProvider],
) -> None:
    h, provider = blind
    provider.lose_before_apply.append(RateLimited("slow down", status=429, retry_after=0))
    job_id = h.enqueue()
    assert h.run(h.engine.process(job_id)) is Outcome.RETRY
    h.remote.oob_edit()

    assert h.run(h.engine.process(job_id)) is Outcome.CONFLICT
    assert h.remote.secret == {"password": "someone-else"}


def test_ambiguous_loss_then_foreign_edit_is_overwritten_and_audited(
    blind: tuple[Harness, BlindReplayProvider],
) -> None:
    h, provider = blind
    # The request timed out before the provider applied it; then someone edits by hand.
    provider.lose_before_apply.append(TransportError("read timeout", maybe_applied=True))
    job_id = h.enqueue()
    assert h.run(h.engine.process(job_id)) is Outcome.RETRY
    h.remote.oob_edit()

    assert h.run(h.engine.process(job_id)) is Outcome.COMPLETED
    assert h.remote.secret["password"] == CANARY
    assert "update.replaced_foreign_change" in events(h, job_id)
    state = h.run(h.store.target_state("crm"))
    assert state["current"] == "v000000000001"  # rotator tracks what is live


class Killed(BaseException):
    pass


def test_a_kill_during_a_later_update_outweighs_an_earlier_refusal(
    blind: tuple[Harness, BlindReplayProvider],
) -> None:
    # Found by the chaos experiment: attempt 1 is refused (429, nothing applied); attempt 2's
    # update lands but its worker is killed before recording anything. Attempt 3 must not take
    # attempt 1's refusal as evidence about attempt 2 and call our own update a conflict.
    h, provider = blind
    provider.lose_before_apply.append(RateLimited("slow down", status=429, retry_after=0))
    job_id = h.enqueue()
    assert h.run(h.engine.process(job_id)) is Outcome.RETRY
    provider.apply_then.append(Killed())  # type: ignore[arg-type]
    try:
        h.run(h.engine.process(job_id))
    except Killed:
        pass
    h.expire_lease()

    assert h.run(h.engine.process(job_id)) is Outcome.COMPLETED
    assert h.remote.applies == 1
    assert "update.replaced_foreign_change" not in events(h, job_id)
