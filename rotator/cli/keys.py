"""``rotator keys rotate``: re-encrypt the stored secret versions under a new master key."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from rotator.cli.common import out, with_runtime

if TYPE_CHECKING:
    from rotator.runtime import Runtime

keys_app = typer.Typer(help="Master-key maintenance.", no_args_is_help=True)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret version under the first ROTATOR_MASTER_KEY.

    Put the new key first and keep the old ones listed until this has run on the store."""

    async def body(runtime: Runtime) -> int:
        total = 0
        for name in runtime.config.get().secrets:
            total += await runtime.store.reseal_versions(name)
        return total

    count = with_runtime(body)
    out.print(f"re-encrypted {count} secret versions under the newest master key")
