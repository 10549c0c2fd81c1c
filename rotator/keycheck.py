"""Key check values: every process proves it holds the store's keys before writing anything.

A process started with another audit key would append links nobody can verify and store second
version ids for values already stored (fingerprints differ); one with another master key turns
every rotation into retries and dead letters. So ``{p}keys:check`` (``rotator.store.keys``)
holds a check value per key, written by the first process (trust on first use):

=============  =================================================================================
field          value
=============  =================================================================================
master         a Fernet token of a constant, under the newest master key (re-sealed by
               ``rotator keys rotate``); a process must open it with one of its master keys
audit_kid      the kid (a MAC of a constant, ``rotator.audit.keyring``) of the audit key the
               chain is written with; a process's newest audit key must be that one (the append
               script enforces it too, per batch)
audit_epoch    how many audit keys the chain has had; ``audit:{n}`` is the kid of epoch n
=============  =================================================================================

``check_keys`` raises ``ConfigError`` naming the variable that does not match. Worker and beat
run it before they start, the CLI before any command that writes.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from rotator.audit.keyring import AuditKeyring
from rotator.config import Settings
from rotator.crypto import MIN_AUDIT_KEY_BYTES, Vault
from rotator.errors import ConfigError, ConfigIssue
from rotator.store.keys import Keys


def _issue(variable: str, message: str) -> ConfigError:
    return ConfigError([ConfigIssue("environment", variable, message)])


async def check_keys(
    redis: aioredis.Redis, keys: Keys, settings: Settings, *, rotating_audit: bool = False
) -> None:
    """Refuse (``ConfigError``) unless this process's keys are the store's.

    ``rotating_audit``: the newest audit key may be new (``rotator keys rotate-audit`` moves the
    chain to it); the key in use must then be listed after it."""
    keyring = AuditKeyring.parse(settings.audit_key_bytes())
    if keyring.too_short():
        raise _issue(
            "ROTATOR_AUDIT_KEY", f"every audit key must be at least {MIN_AUDIT_KEY_BYTES} bytes"
        )
    vault = Vault(settings.master_keys(), keyring.keys[0])
    raw = await redis.hgetall(keys.key_check)
    check = {_text(k): _text(v) for k, v in raw.items()}
    master = check.get("master")
    if master is None:
        await redis.hsetnx(keys.key_check, "master", vault.master_check())
    elif not vault.opens_check(master.encode()):
        raise _issue(
            "ROTATOR_MASTER_KEY",
            "does not match the master key this store's secrets are sealed with (no listed "
            "key opens the stored check value); nothing was written",
        )
    current = check.get("audit_kid")
    if current is None:
        # The first process names epoch 1 (the append script would do the same on first use).
        await redis.hsetnx(keys.key_check, "audit_kid", keyring.kid)
        await redis.hsetnx(keys.key_check, "audit_epoch", "1")
        await redis.hsetnx(keys.key_check, "audit:1", keyring.kid)
        return
    if current == keyring.kid:
        return
    epoch = check.get("audit_epoch", "?")
    if rotating_audit and keyring.chain(current) is not None:
        return
    if keyring.chain(current) is not None:
        message = (
            f"the newest key is not in use yet (the chain is on epoch {epoch}, a key listed "
            "later): run `rotator keys rotate-audit` first"
        )
    else:
        message = (
            f"does not match the audit key in use (epoch {epoch}): events chained with it "
            "could never verify; nothing was written"
        )
    raise _issue("ROTATOR_AUDIT_KEY", message)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
