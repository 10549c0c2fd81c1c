"""``rotator notify test``: send a sample notification to the configured webhooks.

The sample goes straight to each webhook (no queue, no retry), signed like every delivery, and
the result is printed per webhook: its name, format and HTTP status or the reason it failed.
Webhook URLs are never printed (a Slack webhook URL is a credential), nor the signing keys.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rotator.cli.common import JsonOpt, fail, out, plain, print_json, settings_or_exit
from rotator.errors import ConfigError

notify_app = typer.Typer(help="Webhook notifications.", no_args_is_help=True)

SAMPLE_DETAIL = "a sample notification from `rotator notify test`; nothing was rotated"


@notify_app.command("test")
def notify_test(
    target: Annotated[
        str | None,
        typer.Option("--target", "-t", metavar="NAME", help="Only the webhooks NAME routes to"),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", metavar="FILE", help="Targets file")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a sample notification to every configured webhook (or those of one target) and
    print the result per webhook; exit 1 if any delivery failed."""
    from rotator.config import load_targets
    from rotator.notify import formats
    from rotator.notify.deliver import WebhookClient
    from rotator.notify.events import EventKind, Notice
    from rotator.providers import provider_names
    from rotator.suggest import did_you_mean

    settings = settings_or_exit()
    try:
        config = load_targets(file or settings.targets_file, provider_names(), settings)
    except ConfigError as exc:
        fail(str(exc))
    section = config.notify
    spec = None
    if target is not None:
        spec = config.targets.get(target)
        if spec is None:
            fail(f"no target named {target!r}{did_you_mean(target, config.targets)}")
    hooks = section.route(EventKind.TEST, spec.notify if spec else None)
    if not hooks:
        fail("no webhooks configured" + (f" for target {target}" if target else ""))
    notice = Notice(
        kind=EventKind.TEST,
        subject="test",
        target=target,
        provider=spec.provider if spec else None,
        outcome="test",
        detail=SAMPLE_DETAIL,
    )
    record: dict[str, Any] = {**notice.to_dict(), "id": "test"}
    sender = WebhookClient(settings.url_policy(), timeout=settings.notify_timeout)

    async def send_all() -> list[dict[str, Any]]:
        try:
            results = []
            for name in hooks:
                hook = section.webhooks[name]
                delivery = f"test.{name}"
                body = formats.body(record, delivery, hook.format)
                sent = await sender.post(hook, body, delivery, str(EventKind.TEST))
                results.append(
                    {
                        "webhook": name,
                        "format": hook.format,
                        "ok": sent.ok,
                        "status": sent.status,
                        "error": sent.error,
                    }
                )
            return results
        finally:
            await sender.aclose()

    results = asyncio.run(send_all())
    if as_json:
        print_json(results)
    else:
        table = Table("webhook", "format", "result", box=None, pad_edge=False)
        for row in results:
            result = f"delivered (HTTP {row['status']})" if row["ok"] else f"failed: {row['error']}"
            table.add_row(plain(row["webhook"]), row["format"], plain(result, _style(row["ok"])))
        out.print(table)
    if not all(row["ok"] for row in results):
        raise typer.Exit(1)


def _style(ok: bool) -> str:
    return "green" if ok else "red"
