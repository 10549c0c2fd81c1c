"""``vault``: the next secret from a Vault / OpenBao KV version 2 engine (extra ``rotator[vault]``).

A pin reads ``<mount>/data/<path>`` once (the newest version, or ``vault.version`` when the
targets file fixes one), keeps the selected fields, and stores them as a rotator version. The
job journals that version before any remote call, and every later attempt of the job (a retry
after a lost response, a takeover after a crash) loads the stored value: a KV write between
attempts cannot change what a job applies. The KV version read is the pin's ``origin``
(``vault secret/apps/sfdc version 3``), written to the job journal and the ``secret.loaded``
audit event, so rotator version ``v7`` can always be traced to the KV version it came from.
Reading the same KV version again yields the same rotator version (values are deduplicated).

Auth: ``token`` (``credentials.token``) or ``approle`` (``credentials.role_id`` and
``secret_id``, login at ``auth_mount``; the login token is revoked after the read). References
resolve at every pin. hvac is synchronous (requests): it runs in a thread, with a timeout,
without following redirects, and its session is closed after each pin.

Errors: refused / missing / malformed answers are ``SecretSourceError`` (the job fails: retrying
cannot fix a policy or a path); an unreachable, sealed or overloaded server is transient
(``TransportError`` / ``ProviderUnavailable`` with provider ``vault``), retried with backoff.
Messages carry the mount, path, version and HTTP status, never a token or a value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotator.errors import ProviderUnavailable, SecretSourceError, TransportError
from rotator.sources.base import Pinned, SourceContext, store_value
from rotator.sources.remote import check_url, credential, import_extra, local_path, select
from rotator.sources.specs import VaultSourceSpec

if TYPE_CHECKING:
    from rotator.config import SecretSpec

PROVIDER = "vault"
_TRANSIENT_STATUS = {429, 500, 502, 503}
# hvac raises one class per status (VaultError.from_status) and keeps no status on it.
_STATUS = {
    "InvalidRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "InvalidPath": 404,
    "PreconditionFailed": 412,
    "RateLimitExceeded": 429,
    "InternalServerError": 500,
    "VaultNotInitialized": 501,
    "BadGateway": 502,
    "VaultDown": 503,
}


@dataclass(frozen=True)
class KvRead:
    version: int
    data: dict[str, Any] = field(repr=False)


class VaultSource:
    async def pin(self, name: str, spec: SecretSpec, ctx: SourceContext) -> Pinned:
        options = spec.vault
        assert options is not None  # the settings model requires it for this source
        check_url(name, "vault.address", options.address, ctx.env)
        creds = {
            key: credential(name, key, ref, ctx.base_dir, ctx.env)
            for key, ref in options.credentials.items()
        }
        read = await asyncio.to_thread(read_kv, name, options, creds, ctx.base_dir)
        where = f"{options.mount}/{options.path} version {read.version}"
        fields = select(name, f"vault {where}", read.data, options.fields)
        version, fingerprint = await store_value(name, spec, ctx, fields)
        return Pinned(version, fingerprint, fields, origin=f"vault {where}")


def read_kv(
    name: str, options: VaultSourceSpec, creds: Mapping[str, str], base_dir: Path
) -> KvRead:
    """One KV v2 read (blocking): log in if AppRole, read, revoke the login token."""
    hvac = import_extra("hvac", "vault")
    client = hvac.Client(
        url=options.address,
        namespace=options.namespace,
        verify=local_path(options.ca_bundle, base_dir) or True,
        timeout=options.timeout,
        allow_redirects=False,  # a redirect could carry the token to another host
    )
    try:
        response = _read(client, options, creds)
    except Exception as exc:
        translated = _translate(name, options, exc)
        if translated is exc:
            raise
        raise translated from None
    finally:
        client.adapter.close()
    return _parse(name, options, response)


def _read(client: Any, options: VaultSourceSpec, creds: Mapping[str, str]) -> Any:
    if options.auth == "token":
        client.token = creds["token"]
        return _read_version(client, options)
    client.auth.approle.login(
        role_id=creds["role_id"], secret_id=creds["secret_id"], mount_point=options.auth_mount
    )
    try:
        return _read_version(client, options)
    finally:
        _revoke(client)


def _read_version(client: Any, options: VaultSourceSpec) -> Any:
    return client.secrets.kv.v2.read_secret_version(
        path=options.path,
        mount_point=options.mount,
        version=options.version,
        raise_on_deleted_version=True,
    )


def _parse(name: str, options: VaultSourceSpec, response: Any) -> KvRead:
    body = response.get("data") if isinstance(response, dict) else None
    data = body.get("data") if isinstance(body, dict) else None
    metadata = body.get("metadata") if isinstance(body, dict) else None
    version = metadata.get("version") if isinstance(metadata, dict) else None
    if not isinstance(data, dict) or not isinstance(version, int):
        # A KV v1 mount, or not Vault at all: the shape only, never the body.
        raise SecretSourceError(
            f"secret {name}: {options.mount}/{options.path} is not a KV version 2 secret"
        )
    return KvRead(version, data)


def _revoke(client: Any) -> None:
    """Best effort: an AppRole login token not revoked still expires with its TTL."""
    try:
        client.auth.token.revoke_self()
    except Exception:  # noqa: S110 - the read succeeded; the token's TTL bounds the leftover
        pass


def _translate(name: str, options: VaultSourceSpec, exc: Exception) -> Exception:
    """hvac and requests exceptions -> rotator's tree; messages without tokens or values."""
    where = f"secret {name}: vault {options.mount}/{options.path}"
    if options.version is not None:
        where += f" version {options.version}"
    # requests comes with hvac; both are imported only when a vault source runs.
    requests_exceptions = import_extra("requests.exceptions", "vault")
    hvac_exceptions = import_extra("hvac.exceptions", "vault")
    if isinstance(exc, requests_exceptions.SSLError):
        return SecretSourceError(f"{where}: TLS verification failed")
    if isinstance(exc, requests_exceptions.RequestException):
        return TransportError(f"{where}: no answer ({type(exc).__name__})", provider=PROVIDER)
    if not isinstance(exc, hvac_exceptions.VaultError):
        return exc
    status = next((_STATUS[c.__name__] for c in type(exc).__mro__ if c.__name__ in _STATUS), 0)
    if status in _TRANSIENT_STATUS:
        return ProviderUnavailable(f"{where}: unavailable", provider=PROVIDER, status=status)
    reason = {
        401: "refused the credentials",
        403: "permission denied (token or policy)",
        404: "not found (or that version is deleted)",
    }.get(status, type(exc).__name__)
    return SecretSourceError(f"{where}: {reason}" + (f" (HTTP {status})" if status else ""))


__all__ = ["KvRead", "VaultSource", "read_kv"]
