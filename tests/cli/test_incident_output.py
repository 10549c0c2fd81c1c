"""The human summary of incident mode: every job with its state and error, and what to run next."""

from __future__ import annotations

import pytest

from rotator.cli.incident import _print


def test_summary_names_every_job_and_the_postmortem_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _print(
        {
            "incident": "inc-0123456789ab",
            "selection": "secret=sfdc",
            "planned": [],
            "counts": {"done": 2, "failed": 1},
            "timed_out": False,
            "jobs": [
                {"target": "a", "job_id": "j1", "state": "completed", "last_error_class": None},
                {"target": "b", "job_id": "j2", "state": "verifying", "last_error_class": None},
                {"target": "c", "job_id": "j3", "state": "dead", "last_error_class": "AuthError"},
            ],
        }
    )
    text = capsys.readouterr().out
    assert "applied, verifying" in text and "AuthError" in text
    assert "incident inc-0123456789ab: done 2, failed 1" in text
    assert "rotator report --incident inc-0123456789ab" in text


def test_dry_run_lists_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    _print(
        {
            "dry_run": True,
            "selection": "secret=sfdc",
            "planned": [
                {
                    "target": "a",
                    "provider": "commercelayer",
                    "priority": 5,
                    "starts_in_seconds": 0.0,
                },
                {
                    "target": "b",
                    "provider": "commercelayer",
                    "priority": 0,
                    "starts_in_seconds": 10.5,
                },
            ],
        }
    )
    text = capsys.readouterr().out
    assert "dry run: would enqueue" in text and "10.5 s" in text
