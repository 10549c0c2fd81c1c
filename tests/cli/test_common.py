"""The shared rendering: one time format in its three spellings, one outcome colour map, and
failure messages printed as text."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from rotator.cli.common import fail, styled, utc_time

T = 1_704_067_200.25  # 2024-01-01 00:00:00.250 UTC


def test_utc_time() -> None:
    # Every printed time carries its zone (issue 12.9).
    assert utc_time(T) == "2024-01-01 00:00:00Z"  # jobs and status tables
    assert utc_time(str(T)) == "2024-01-01 00:00:00Z"  # fields as stored in Redis
    assert utc_time(T, zone="Z") == "2024-01-01 00:00:00Z"  # report
    assert utc_time(T, millis=True, zone="Z") == "2024-01-01 00:00:00.250Z"  # audit events
    assert utc_time(None) == utc_time("") == "-"


@pytest.mark.parametrize(
    ("value", "text", "style"),
    [
        ("completed", "completed", "green"),
        ("success", "success", "green"),
        ("noop", "noop", "cyan"),
        ("retrying", "retrying", "yellow"),
        ("conflict", "conflict", "yellow"),
        ("dead", "dead", "red"),
        ("queued", "queued", ""),
        ("-", "-", ""),
        (None, "", ""),
        ("[/bold]\x1b[2J", "[/bold]", ""),  # text from Redis: literal, no control characters
    ],
)
def test_styled(value: str | None, text: str, style: str) -> None:
    shown = styled(value)
    assert (shown.plain, str(shown.style)) == (text, style)


def test_fail_prints_text_not_markup() -> None:
    app = typer.Typer()

    @app.command()
    def boom() -> None:
        fail("[uipath] option 'x' is not configured; pip install 'rotator[sandbox]'", 3)

    result = CliRunner().invoke(app, [], env={"COLUMNS": "300"})
    assert result.exit_code == 3
    assert result.stderr == (
        "error: [uipath] option 'x' is not configured; pip install 'rotator[sandbox]'\n"
    )
