"""Progress for long commands: drawn on stderr, only on a terminal, only after a moment.

A command that finishes within ``DELAY`` seconds draws nothing, so quick runs and every pipe,
log file and ``--json`` caller see exactly the output they always did. The display goes to
stderr so ``rotator audit export > file`` (or to stdout) is never interleaved with it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from rotator.cli.common import err

DELAY = 1.0  # seconds before anything is drawn


class Activity:
    """What the display shows: a description and, when the work is countable, a count."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: int = 1) -> None:
        self._progress.advance(self._task, amount)


@contextmanager
def activity(description: str, *, enabled: bool = True, unit: str = "") -> Iterator[Activity]:
    """A spinner, ``description``, the count so far (when ``unit`` is given) and elapsed time."""
    columns: list[Any] = [SpinnerColumn(), TextColumn(description)]
    if unit:
        columns.append(TextColumn(f"{{task.completed:,.0f}} {unit}"))
    progress = Progress(*columns, TimeElapsedColumn(), console=err, transient=True)
    task = progress.add_task(description, total=None)
    lock = threading.Lock()
    finished = False

    def start() -> None:
        with lock:  # never start a display the command has already finished with
            if not finished:
                progress.start()

    timer = threading.Timer(DELAY, start) if enabled and err.is_terminal else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield Activity(progress, task)
    finally:
        if timer is not None:
            timer.cancel()
            with lock:
                finished = True
                progress.stop()


class CountingWriter:
    """A text handle that advances an Activity by one for every line written."""

    def __init__(self, handle: IO[str], counter: Activity) -> None:
        self._handle = handle
        self._counter = counter

    def write(self, text: str) -> int:
        lines = text.count("\n")
        if lines:
            self._counter.advance(lines)
        return self._handle.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


__all__ = ["DELAY", "Activity", "CountingWriter", "activity"]
