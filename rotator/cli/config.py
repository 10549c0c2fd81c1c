"""``rotator config check|schema``: validate and describe the targets file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from rotator.cli.common import err, out, print_json
from rotator.config import load_settings, load_targets, targets_json_schema
from rotator.errors import ConfigError, ConfigIssue
from rotator.providers import option_problems, provider_names

config_app = typer.Typer(help="Validate and describe the targets file.", no_args_is_help=True)


@config_app.command("check")
def config_check(
    file: Annotated[
        Path | None, typer.Option("--file", "-f", metavar="FILE", help="Targets file")
    ] = None,
) -> None:
    """Validate settings and the targets file; exit 1 listing every error."""
    try:
        settings = load_settings()
        settings.validate_runtime()
        path = file or settings.targets_file
        config = load_targets(path, provider_names(), settings)
        problems = [
            ConfigIssue(str(path), f"targets.{name}.options", problem)
            for name, t in config.targets.items()
            for problem in option_problems(t.provider, t.options, t.credentials)
        ]
        if problems:
            raise ConfigError(problems)
    except ConfigError as exc:
        for issue in exc.issues:
            # One unwrapped line per issue (operators grep for the field), as plain Text: a key
            # in the file such as "[/bold]" must not be read as markup.
            err.print(Text.assemble(("✗", "red"), f" {issue}"), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    scheduled = sum(1 for t in config.targets.values() if t.schedule)
    out.print(
        f"[green]✓[/green] {path}: {len(config.secrets)} secrets, {len(config.targets)} targets "
        f"({scheduled} scheduled)",
        highlight=False,
    )


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the targets file."""
    print_json(targets_json_schema(), indent=2)
