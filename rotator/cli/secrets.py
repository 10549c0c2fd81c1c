"""``rotator secrets put``: push a version of a 'store' secret. The value is read from a file
or stdin, never from the command line, and only its version id and fingerprint are printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rotator.audit import AuditEvent
from rotator.cli.common import JsonOpt, actor, fail, out, print_json, with_runtime

if TYPE_CHECKING:
    from rotator.runtime import Runtime

secrets_app = typer.Typer(help="Push secret versions for 'store' sources.", no_args_is_help=True)


@secrets_app.command("put")
def secrets_put(
    name: str,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file", metavar="FILE", help="JSON object of fields; '-' or unset: stdin"
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Store a new version of a secret (encrypted). Prints its version id and fingerprint."""
    fields = _read_fields(from_file)

    async def body(runtime: Runtime) -> tuple[str, str]:
        if name not in runtime.config.get().secrets:
            fail(f"no secret named {name!r} in {runtime.settings.targets_file}")
        version, fingerprint = await runtime.store.put_secret_version(name, fields)
        # Who pushed which version is part of the record (version id and fingerprint only).
        await runtime.audit.emit(
            AuditEvent(
                "secret.stored",
                actor=actor(),
                secret_version=version,
                fingerprint=fingerprint,
                detail=f"secret {name} pushed with `rotator secrets put`",
            )
        )
        return version, fingerprint

    version, fingerprint = with_runtime(body)
    if as_json:
        print_json({"secret": name, "version": version, "fingerprint": fingerprint})
    else:
        out.print(f"{name} {version} fingerprint {fingerprint[:16]}", highlight=False)


def _read_fields(from_file: Path | None) -> dict[str, Any]:
    """The JSON object of fields from ``from_file`` ('-' or None: stdin); bad input exits 2."""
    if from_file is None or str(from_file) == "-":
        raw = sys.stdin.read()
        origin = "stdin"
    else:
        try:
            raw = from_file.read_text()
        except OSError as exc:
            fail(f"cannot read {from_file}: {exc.strerror}")
        origin = str(from_file)
    try:
        fields = json.loads(raw)
    except json.JSONDecodeError as exc:
        fail(f"{origin} is not valid JSON (line {exc.lineno})")
    if not isinstance(fields, dict) or not fields:
        fail(f"{origin} must hold a non-empty JSON object of fields")
    return fields
