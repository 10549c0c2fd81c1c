"""``rotator config check|schema``: validate and describe the targets file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from rotator.checks import PROVIDER_FIELDS, check_config
from rotator.cli.common import JsonOpt, err, out, print_json
from rotator.config import (
    Settings,
    TargetsConfig,
    load_settings,
    load_targets,
    targets_json_schema,
)
from rotator.errors import ConfigError
from rotator.providers import provider_names

config_app = typer.Typer(help="Validate and describe the targets file.", no_args_is_help=True)


def _print_issue(mark: str, style: str, issue: object) -> None:
    # One unwrapped line per issue (operators grep for the field), as plain Text: a key in the
    # file such as "[/bold]" must not be read as markup.
    err.print(Text.assemble((mark, style), f" {issue}"), highlight=False, soft_wrap=True)


def _load_for_check(path: Path, settings: Settings) -> TargetsConfig:
    """The targets file, validated as every worker validates it: through the snapshots and
    blocks shared in the configured Redis (``rotator.config_snapshot``), so an unchanged or
    slightly edited file of 100,000 targets is checked in about a second rather than five.
    Every check still runs; a snapshot is only the file's own validation, authenticated. With
    no Redis configured (the embedded one is not started for this) or Redis down: the file."""
    if settings.embedded:
        return load_targets(path, provider_names(), settings)
    from rotator.config_snapshot import SnapshotCache, load_targets_cached
    from rotator.connections import sync_redis
    from rotator.store.keys import Keys

    assert settings.redis_url is not None
    client = sync_redis(
        settings.redis_url,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_socket_timeout,
    )
    try:
        cache = SnapshotCache(client, Keys(settings.key_prefix), settings)
        return load_targets_cached(path, provider_names(), settings, cache)
    finally:
        client.close()


@config_app.command("check")
def config_check(
    file: Annotated[
        Path | None, typer.Option("--file", "-f", metavar="FILE", help="Targets file")
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Skip what needs the network (vault, AWS sources)")
    ] = False,
) -> None:
    """Validate settings, the targets file, every reference and secret source; exit 1 listing
    every error (warnings are printed and do not fail)."""
    try:
        settings = load_settings()
        settings.validate_runtime()
        path = file or settings.targets_file
        config = _load_for_check(path, settings)
        result = check_config(config, offline=offline)
        if result.errors:
            for issue in result.warnings:
                _print_issue("!", "yellow", issue)
            raise ConfigError(result.errors)
    except ConfigError as exc:
        for issue in exc.issues:
            _print_issue("✗", "red", issue)
        raise typer.Exit(1) from None
    for issue in result.warnings:
        _print_issue("!", "yellow", issue)
    for line in result.skipped:
        err.print(Text(f"- {line}"), highlight=False, soft_wrap=True)
    scheduled = sum(1 for t in config.targets.values() if t.schedule)
    out.print(
        f"[green]✓[/green] {path}: {len(config.secrets)} secrets, {len(config.targets)} targets "
        f"({scheduled} scheduled)",
        highlight=False,
    )


@config_app.command("providers")
def config_providers(as_json: JsonOpt = False) -> None:
    """The fields each provider needs: credentials, required and optional options."""
    rows = {
        name: {
            "credentials": list(f.credentials),
            "required_options": list(f.required_options),
            "options": list(f.options),
            "choices": {k: list(v) for k, v in f.choices.items()},
            "note": f.note,
        }
        for name, f in sorted(PROVIDER_FIELDS.items())
    }
    if as_json:
        print_json(rows, indent=2)
        return
    for name, fields in sorted(PROVIDER_FIELDS.items()):
        out.print(Text(f"{name}: {fields.describe()}"), soft_wrap=True)


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the targets file."""
    print_json(targets_json_schema(), indent=2)
