"""The ``rotator`` command line. It never prints a secret value: versions and fingerprints only.

One module per group of commands, mounted here so this file reads as the whole surface::

    common.py         consoles, fail(), time and outcome rendering, JSON output, the Runtime
    config.py         rotator config check|schema
    secrets.py        rotator secrets put
    keys.py           rotator keys rotate
    jobs.py           rotator enqueue|jobs|job|status
    incident.py       enqueue --wait and incident mode (enqueue --secret/--provider/--all)
    plan.py           rotator plan (preflight and dry run; writes nothing)
    processes.py      rotator worker|beat|run --once
    sandbox.py        rotator sandbox|demo (the optional extra rotator[sandbox], imported lazily)
    embedded.py       rotator embedded status|stop
    audit.py          rotator audit list|show|export|archive|replay-spool
    audit_integrity.py  rotator audit verify|checkpoint (chain, anchors, signed checkpoints)
    audit_filters.py  the audit filter options, declared once for list and export
    report.py         rotator report
    api.py            rotator api (the optional extra rotator[api], imported lazily)
    exporter.py       rotator exporter (Prometheus gauges read from Redis)
    notify.py         rotator notify test (a sample to every configured webhook)

Exit codes: 0 ok; 1 the command's check failed (invalid targets, a job failed, the audit
chain does not verify, ...); 2 usage or configuration error, or Redis unreachable.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rotator.cli import api, exporter, jobs, plan, processes, sandbox
from rotator.cli.audit import audit_app
from rotator.cli.config import config_app
from rotator.cli.embedded import embedded_app
from rotator.cli.keys import keys_app
from rotator.cli.notify import notify_app
from rotator.cli.report import report_command
from rotator.cli.secrets import secrets_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="rotator",
    help="Crash-safe credential rotation on Celery + Redis.",
    no_args_is_help=True,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from rotator import __version__

        typer.echo(f"rotator {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Crash-safe credential rotation on Celery + Redis."""


app.add_typer(config_app, name="config")
app.add_typer(secrets_app, name="secrets")
app.add_typer(keys_app, name="keys")

app.command("enqueue")(jobs.enqueue)
app.command("jobs")(jobs.jobs)
app.command("job")(jobs.job)
app.command("status")(jobs.status)
app.command("plan")(plan.plan)
app.command("worker", context_settings=processes.PASSTHROUGH)(processes.worker)
app.command("beat", context_settings=processes.PASSTHROUGH)(processes.beat)
app.command("run")(processes.run_once)
app.command("sandbox")(sandbox.sandbox)
app.command("demo")(sandbox.demo)
app.add_typer(embedded_app, name="embedded")
app.add_typer(audit_app, name="audit")
app.command("report")(report_command)
app.command("api")(api.api)
app.command("exporter")(exporter.exporter)
app.add_typer(notify_app, name="notify")


def command() -> Any:
    """The click command tree with rotator's help conventions applied to every parameter.

    typer 0.29 labels every parameter by its Python type (``<bool>`` for a flag, ``<str>`` for
    an argument), which says nothing to an operator: flags get no label, an argument is named
    by its metavar (its name in capitals unless it sets one). Options declare their own
    metavar and help; ``tests/cli/test_help.py`` holds every command to that.
    """
    root = typer.main.get_command(app)
    _tidy(root)
    return root


def _tidy(node: Any) -> None:
    for param in node.params:
        if param.param_type_name == "option" and param.is_flag and param.metavar is None:
            param.metavar = ""
        elif param.param_type_name == "argument":
            param.metavar = param.metavar or (param.name or "value").upper()
            # The rich help's type column would repeat the type; the name says it already.
            param.display_type_rich = lambda ctx: ""
    make_help_option = node.get_help_option

    def help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)  # built afresh for every --help: label it here
        if option is not None:
            option.metavar = ""
        return option

    node.get_help_option = help_option
    for child in getattr(node, "commands", {}).values():
        _tidy(child)


def main() -> None:
    command()(prog_name="rotator")
