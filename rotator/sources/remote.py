"""What the remote secret sources (``vault``, ``aws-secrets-manager``) share.

* ``check_url``: the one URL check a source makes before it calls a secret store: the
  providers' rule (``rotator.urlpolicy``) without a host allow-list. ``https://`` only and no
  user info; plain ``http://`` only for a ``host:port`` the operator lists in
  ``ROTATOR_INSECURE_HOSTS``, so a targets-file edit cannot send a Vault token or AWS keys to a
  plain-http listener.
* ``credential``: an ``env:``/``file:`` reference resolved at every pin (a rotated Vault token
  or AWS key is picked up without a restart), errors naming the key, never a value.
* ``select``: field selection (a list of keys, or ``{sent name: stored key}``).
* ``import_extra``: the lazy import of an optional client library, with the install hint.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from rotator.errors import SecretSourceError
from rotator.resolve import resolve_reference
from rotator.sources.specs import FieldSelection
from rotator.urlpolicy import INSECURE_ENV, UrlPolicy, parse_insecure_hosts


def url_problem(url: str, environ: Mapping[str, str]) -> str | None:
    """Why a source may not call ``url`` (None: it may), by the providers' own URL rule."""
    try:
        insecure = parse_insecure_hosts(environ.get(INSECURE_ENV, ""))
    except ValueError as exc:
        return f"cannot be checked: {INSECURE_ENV}: {exc}"
    return UrlPolicy(insecure).transport_violation(url)


def check_url(secret: str, what: str, url: str, environ: Mapping[str, str] | None) -> None:
    problem = url_problem(url, os.environ if environ is None else environ)
    if problem:
        raise SecretSourceError(f"secret {secret}: {what} {problem}")


def credential(
    secret: str, key: str, ref: str, base_dir: Path, environ: Mapping[str, str] | None
) -> str:
    try:
        value = resolve_reference(ref, base_dir=base_dir, env=environ)
    except KeyError as exc:
        raise SecretSourceError(f"secret {secret}: credential {key!r}: {exc.args[0]}") from None
    if not value:
        raise SecretSourceError(f"secret {secret}: credential {key!r} is empty")
    return value


def local_path(path: str | None, base_dir: Path) -> str | None:
    """A CA bundle path; relative paths resolve against the targets file's folder."""
    if path is None:
        return None
    return path if Path(path).is_absolute() else str(base_dir / path)


def select(
    secret: str, where: str, data: Mapping[str, Any], fields: FieldSelection
) -> dict[str, Any]:
    """The fields a target receives. Names keys that are missing, never values."""
    wanted = {name: name for name in fields} if isinstance(fields, list) else dict(fields)
    if not wanted:
        chosen = dict(data)
    else:
        missing = sorted(key for key in wanted.values() if key not in data)
        if missing:
            raise SecretSourceError(f"secret {secret}: {where} has no key {', '.join(missing)}")
        chosen = {name: data[key] for name, key in wanted.items()}
    if not chosen:
        raise SecretSourceError(f"secret {secret}: {where} holds no fields")
    return chosen


def import_extra(module: str, extra: str) -> ModuleType:
    """Import an optional client library; if it is missing, say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SecretSourceError(
            f"this secret source needs {module.split('.')[0]}: pip install 'rotator[{extra}]'"
        ) from None


__all__ = ["INSECURE_ENV", "check_url", "credential", "import_extra", "local_path", "select"]
