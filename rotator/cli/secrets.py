"""``rotator secrets put``: push a version of a 'store' secret. The value is read from a file
or stdin, never from the command line, and only its version id and fingerprint are printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rotator import fields as field_rules
from rotator.audit import AuditEvent
from rotator.cli.common import JsonOpt, actor, fail, out, print_json, with_runtime
from rotator.fields import FieldDiff

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
    allow_field_change: Annotated[
        bool,
        typer.Option(
            "--allow-field-change",
            help="Store a value whose field names drop some of the previous version's",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Store a new version of a secret (encrypted). Prints its version id and fingerprint.

    The value must carry the fields its targets' providers need, and may not drop a field the
    previous version had unless --allow-field-change: a rotation sends what the value holds,
    so a dropped field can vanish from the live connection. Only field names are shown."""
    fields = _read_fields(from_file)

    async def body(runtime: Runtime) -> tuple[str, str, FieldDiff | None]:
        config = runtime.config.get()
        if name not in config.secrets:
            fail(f"no secret named {name!r} in {runtime.settings.targets_file}")
        found = field_rules.problems(fields, field_rules.targets_using(name, config))
        if found:
            fail(f"secret {name}: " + "; ".join(found))
        change = await _field_change(runtime, name, fields)
        if change is not None and change.removed and not allow_field_change:
            fail(
                f"secret {name}: the new value drops field(s) {list(change.removed)} that the "
                f"previous version had (fields {change.describe()}); a rotation would remove "
                "them from the target. Add them, or pass --allow-field-change if intended."
            )
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
        return version, fingerprint, change

    version, fingerprint, change = with_runtime(body)
    diff = change if change is not None and change.changed else None
    if as_json:
        shown = {"removed": list(diff.removed), "added": list(diff.added)} if diff else None
        print_json(
            {"secret": name, "version": version, "fingerprint": fingerprint, "field_change": shown}
        )
    else:
        out.print(f"{name} {version} fingerprint {fingerprint[:16]}", highlight=False)
        if diff is not None:
            out.print(f"fields changed: {diff.describe()}", highlight=False)


async def _field_change(runtime: Runtime, name: str, fields: dict[str, Any]) -> FieldDiff | None:
    """The field-name diff against the newest stored version; None when there is none."""
    latest = await runtime.store.latest_secret_version(name)
    if latest is None:
        return None
    previous = await runtime.store.load_secret_version(name, latest)
    return field_rules.diff(previous, fields)


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
