"""The ``rotator`` command line. It never prints a secret value: versions and fingerprints only.

One module per group of commands, mounted here so this file reads as the whole surface::

    common.py         consoles, fail(), time and outcome rendering, JSON output, the Runtime
    config.py         rotator config check|schema
    secrets.py        rotator secrets put
    keys.py           rotator keys rotate
    jobs.py           rotator enqueue|jobs|job|status
    plan.py           rotator plan (preflight and dry run; writes nothing)
    processes.py      rotator worker|beat|run --once
    sandbox.py        rotator sandbox|demo (the optional extra rotator[sandbox], imported lazily)
    embedded.py       rotator embedded status|stop
    audit.py          rotator audit list|show|verify|export|archive|replay-spool
    audit_filters.py  the audit filter options, declared once for list and export
    report.py         rotator report
    api.py            rotator api (the optional extra rotator[api], imported lazily)

Exit codes: 0 ok; 1 the command's check failed (invalid targets, a job failed, the audit
chain does not verify, ...); 2 usage or configuration error, or Redis unreachable.
"""

from __future__ import annotations

import typer

from rotator.cli import api, jobs, plan, processes, sandbox
from rotator.cli.audit import audit_app
from rotator.cli.config import config_app
from rotator.cli.embedded import embedded_app
from rotator.cli.keys import keys_app
from rotator.cli.report import report_command
from rotator.cli.secrets import secrets_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="rotator",
    help="Crash-safe credential rotation on Celery + Redis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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


def main() -> None:
    app()
