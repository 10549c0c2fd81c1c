"""``python -m rotator.liveness [PID]``: the container's liveness check, offline and config-free.

Liveness must not depend on the targets file or the environment: a liveness probe that runs
``rotator config check`` turns one bad edit (or an unset variable) into every container being
restarted in a loop, while the worker itself was fine. Configuration belongs to readiness
(``rotator config check``, as the Kubernetes readinessProbe runs it). This asks one question:
is the main process (PID 1 in a container) a live rotator process, not a zombie or stopped?
Exit 0 when it is, 1 otherwise (one line on stderr saying why).
"""

from __future__ import annotations

import sys
from pathlib import Path

_DEAD_STATES = {"Z", "X", "x", "T", "t"}  # zombie, dead, stopped, traced


def problem(pid: int = 1, proc: Path = Path("/proc")) -> str | None:
    """Why process ``pid`` is not a live rotator process (None: it is)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        cmdline = (proc / str(pid) / "cmdline").read_bytes()
    except OSError as exc:
        return f"process {pid}: {exc.strerror}"
    # The state follows the command name, which is in parentheses and may itself hold ')'.
    state = stat.rpartition(")")[2].split()[0]
    if state in _DEAD_STATES:
        return f"process {pid} is in state {state}"
    if b"rotator" not in cmdline and b"celery" not in cmdline:
        return f"process {pid} is not rotator"
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    why = problem(int(args[0]) if args else 1)
    if why:
        print(f"unhealthy: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
