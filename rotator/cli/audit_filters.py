"""The audit filter options (``--target``, ``--job``, ``--provider``, ``--event``,
``--outcome``, ``--actor``, ``--since``, ``--until``), declared once for every command that
filters audit events (``rotator audit list`` and ``rotator audit export``)."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from rotator.audit import AuditFilter
from rotator.cli.common import parse_time

# The options each filtered command gets, in this order, in place of its `where` parameter.
_FILTER_OPTIONS = tuple(
    inspect.Parameter(
        name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=annotation
    )
    for name, annotation in (
        (
            "target",
            Annotated[
                str | None, typer.Option("--target", "-t", metavar="NAME", help="Target name.")
            ],
        ),
        ("job", Annotated[str | None, typer.Option("--job", "-j", metavar="ID", help="Job id.")]),
        (
            "provider",
            Annotated[
                str | None, typer.Option("--provider", "-p", metavar="NAME", help="Provider name.")
            ],
        ),
        (
            "event",
            Annotated[
                list[str] | None,
                typer.Option("--event", "-e", metavar="EVENT", help="Event name (repeatable)."),
            ],
        ),
        (
            "outcome",
            Annotated[
                list[str] | None,
                typer.Option(
                    "--outcome",
                    "-o",
                    metavar="OUTCOME",
                    help="success|noop|retry|conflict|failed|dead (repeatable).",
                ),
            ],
        ),
        (
            "actor",
            Annotated[
                str | None,
                typer.Option(
                    "--actor",
                    "-a",
                    metavar="ACTOR",
                    help="Actor, e.g. schedule or cli:alice; globs ok.",
                ),
            ],
        ),
        (
            "since",
            Annotated[
                str | None,
                typer.Option(
                    "--since",
                    metavar="WHEN",
                    help="Only events at/after: 24h, 90d, ISO time, unix s.",
                ),
            ],
        ),
        (
            "until",
            Annotated[
                str | None,
                typer.Option("--until", metavar="WHEN", help="Only events at/before (same forms)."),
            ],
        ),
    )
)


def filtered(command: Callable[..., None]) -> Callable[..., None]:
    """Declare the audit filter options on ``command`` in place of its ``where`` parameter,
    which receives them as one :class:`AuditFilter`.

    typer reads a command's options from its signature, so the wrapper shows typer the
    command's own parameters with ``where`` swapped for the filter options.
    """
    signature = inspect.signature(command, eval_str=True)
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        parameters.extend(_FILTER_OPTIONS if parameter.name == "where" else (parameter,))

    @functools.wraps(command)
    def run(**options: Any) -> None:
        given = {p.name: options.pop(p.name) for p in _FILTER_OPTIONS}
        command(where=_audit_filter(**given), **options)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return run


def _audit_filter(
    target: str | None,
    job: str | None,
    provider: str | None,
    event: list[str] | None,
    outcome: list[str] | None,
    actor: str | None,
    since: str | None,
    until: str | None,
) -> AuditFilter:
    now = time.time()
    return AuditFilter(
        target=target,
        job_id=job,
        provider=provider,
        events=tuple(event or ()),
        outcomes=tuple(outcome or ()),
        actor=actor,
        since=parse_time(since, now) if since else None,
        until=parse_time(until, now) if until else None,
    )
