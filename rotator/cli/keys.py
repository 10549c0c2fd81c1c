"""``rotator keys rotate`` and ``rotator keys rotate-audit``: key rotation, audited.

``rotate`` re-encrypts every stored secret version (found by scanning the store, not from the
targets file) under the first ``ROTATOR_MASTER_KEY``; it records its progress, so a run that is
interrupted resumes where it stopped, and it moves the master key's check value last.
``rotate-audit`` moves the audit chain to the first ``ROTATOR_AUDIT_KEY``: an
``audit.key_rotated`` event chained with the current key names the new key's epoch, so events
chained before still verify while the old key stays listed after the new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from rotator.audit import AuditEvent
from rotator.cli.common import actor, fail, out, with_runtime
from rotator.cli.progress import activity

if TYPE_CHECKING:
    from rotator.runtime import Runtime

keys_app = typer.Typer(help="Master-key and audit-key maintenance.", no_args_is_help=True)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret version under the first ROTATOR_MASTER_KEY.

    Put the new key first and keep the old ones listed until this has run on the store.
    Interrupted? Run it again: finished secrets are skipped."""

    async def body(runtime: Runtime) -> tuple[int, int]:
        from rotator.store.keyring import KeyStore

        store = KeyStore(runtime.redis, runtime.keys, runtime.vault)
        names = await store.stored_secrets()
        done = await store.reseal_done()
        who = actor()
        await runtime.audit.emit(
            AuditEvent(
                "keys.master_rotation_started",
                actor=who,
                detail=f"{len(names)} stored secret(s), {len(done & set(names))} already done",
            )
        )
        total = 0
        for name in names:
            if name in done:
                continue
            total += await runtime.store.reseal_versions(name)
            await store.mark_resealed(name)
        await store.finish_reseal()
        await runtime.audit.emit(
            AuditEvent(
                "keys.master_rotated",
                actor=who,
                outcome="success",
                detail=f"{total} version(s) of {len(names)} secret(s) re-encrypted",
            )
        )
        return total, len(names)

    with activity("re-encrypting secret versions"):
        count, secrets = with_runtime(body, needs_targets=False)
    out.print(
        f"re-encrypted {count} versions of {secrets} stored secrets under the newest master key",
        highlight=False,
    )


@keys_app.command("rotate-audit")
def keys_rotate_audit() -> None:
    """Move the audit chain to the first ROTATOR_AUDIT_KEY (list the current key after it).

    Then restart every process with the same list; keep retired keys listed while events they
    chained are still to be verified (live or archived)."""

    async def body(runtime: Runtime) -> tuple[int, int]:
        from rotator.store.keyring import KeyStore

        try:
            stored = await runtime.audit.rotate_key(actor())
        except ValueError as exc:
            fail(str(exc))
        # Fingerprints are keyed by the audit key: rebuild each secret's index under the new one.
        store = KeyStore(runtime.redis, runtime.keys, runtime.vault)
        versions = sum([await store.refingerprint(n) for n in await store.stored_secrets()])
        return stored.seq, versions

    seq, versions = with_runtime(body, needs_targets=False, rotating_audit=True)
    out.print(
        f"audit chain moved to the newest key at seq {seq}; {versions} fingerprint(s) rebuilt",
        highlight=False,
    )
