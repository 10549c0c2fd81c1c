"""Progress displays: only on a terminal, only after a moment, never on stdout."""

from __future__ import annotations

import io
import threading

import pytest
from rich.console import Console

from rotator.cli import progress


def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buffer = io.StringIO()
    monkeypatch.setattr(progress, "err", Console(file=buffer, force_terminal=True, width=100))
    monkeypatch.setattr(progress, "DELAY", 0.05)
    return buffer


def test_a_slow_command_on_a_terminal_shows_its_count(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = terminal(monkeypatch)
    sink = io.StringIO()
    with progress.activity("exporting", unit="lines") as counter:
        writer = progress.CountingWriter(sink, counter)
        writer.write("a\nb\n")
        threading.Event().wait(0.4)  # longer than DELAY: the display appears
        writer.write("c\n")
    assert sink.getvalue() == "a\nb\nc\n"  # the data itself is untouched
    assert "exporting" in buffer.getvalue() and "2 lines" in buffer.getvalue()


def test_a_quick_command_draws_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = terminal(monkeypatch)
    with progress.activity("verifying"):
        pass
    threading.Event().wait(0.1)  # the cancelled timer never fires
    assert buffer.getvalue() == ""


def test_json_and_pipes_draw_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = terminal(monkeypatch)
    with progress.activity("verifying", enabled=False):  # what --json passes
        threading.Event().wait(0.2)
    assert buffer.getvalue() == ""
    monkeypatch.setattr(progress, "err", Console(file=buffer, force_terminal=False))
    with progress.activity("verifying"):
        threading.Event().wait(0.2)
    assert buffer.getvalue() == ""
