"""``rotator embedded status|stop``: the zero-setup Redis server under the state directory.

The server outlives the processes that start it (see ``rotator.embedded``), so stopping it is
an explicit step. Both commands look at ``ROTATOR_STATE_DIR`` whether or not
``ROTATOR_REDIS_URL`` is set: a server left from zero-setup mode can still be stopped.
"""

from __future__ import annotations

import typer

from rotator import embedded as server
from rotator.cli.common import JsonOpt, out, print_json, settings_or_exit

embedded_app = typer.Typer(
    help="The embedded Redis server used when ROTATOR_REDIS_URL is unset.", no_args_is_help=True
)


@embedded_app.command("status")
def embedded_status(as_json: JsonOpt = False) -> None:
    """Whether the embedded Redis server is running (exit 0) or not (exit 1)."""
    config = settings_or_exit()
    sock = server.socket_path(config.state_dir)
    up = server.running(config.state_dir)
    pid = server.server_pid(config.state_dir) if up else None
    if as_json:
        print_json({"running": up, "socket": str(sock), "pid": pid, "in_use": config.embedded})
    else:
        state = f"running (pid {pid or '?'})" if up else "not running"
        unused = "" if config.embedded else "; not used: ROTATOR_REDIS_URL is set"
        out.print(f"embedded Redis at {sock}: {state}{unused}", highlight=False)
    raise typer.Exit(0 if up else 1)


@embedded_app.command("stop")
def embedded_stop(as_json: JsonOpt = False) -> None:
    """Shut the embedded Redis server down, persisting its data; a no-op when none runs."""
    config = settings_or_exit()
    sock = server.socket_path(config.state_dir)
    stopped = server.stop(config.state_dir)
    if as_json:
        print_json({"stopped": stopped, "socket": str(sock)})
    else:
        out.print(
            f"embedded Redis at {sock}: " + ("stopped" if stopped else "was not running"),
            highlight=False,
        )
