"""Which fields an update would change, per provider, computed from the live ``RemoteState``
and the new value's field names: never a value, and never an adapter call beyond ``read``.

Each preview applies the adapter's own rules to the new value where the adapter has them
(Commerce Layer's updatable attributes, UiPath's ``groupIds``, AppFlow's credential key), so
a value that ``apply`` would reject is reported here first. Where the live state is readable
(UiPath: the "secret" is the desired access), the preview also says whether anything differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rotator.errors import BadRequest
from rotator.providers.base import RemoteState, TargetSpec
from rotator.providers.commercelayer import DIGEST_KEY, MARKER_KEY, ROLE_FIELD, UPDATABLE
from rotator.providers.uipath import desired_groups


@dataclass(frozen=True)
class NewValue:
    """The value a rotation would send: its field names for the plan, the value itself only
    to apply the adapters' structural rules (never shown)."""

    names: tuple[str, ...]
    fields: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass
class Changes:
    fields: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the update would be rejected: why
    # Whether the live state differs from the new value, where the API lets us compare the
    # two directly (None: see the marker instead).
    differs: bool | None = None


Preview = Callable[[TargetSpec, RemoteState, NewValue], Changes]


def adobe(target: TargetSpec, live: RemoteState, new: NewValue) -> Changes:
    static = target.options.get("static_params") or {}
    names = sorted(set(static) | set(new.names))
    return Changes([f"auth.params.{k}" for k in names] + ["description"])


def appflow(target: TargetSpec, live: RemoteState, new: NewValue) -> Changes:
    connector = target.options.get("connector_type") or live.summary.get("connectorType")
    if not connector:
        return Changes(problems=["connector type unknown: set option 'connector_type'"])
    from rotator.providers.appflow import credential_key  # botocore: only when planning AppFlow

    key = credential_key(str(connector))
    return Changes([f"connectorProfileCredentials.{key}.{k}" for k in sorted(new.names)])


def uipath(target: TargetSpec, live: RemoteState, new: NewValue) -> Changes:
    if new.fields is None:
        return Changes(sorted(new.names))
    try:
        groups = desired_groups(new.fields)
    except BadRequest as exc:
        return Changes(problems=[str(exc.args[0])])
    display = new.fields.get("displayName") or live.summary.get("displayName")
    live_groups = {str(g).lower() for g in live.summary.get("groupIds") or []}
    changed = []
    if {g.lower() for g in groups} != live_groups:
        changed.append("groupIds")
    if display != live.summary.get("displayName"):
        changed.append("displayName")
    return Changes(changed, differs=bool(changed))


def commercelayer(target: TargetSpec, live: RemoteState, new: NewValue) -> Changes:
    unknown = sorted(set(new.names) - UPDATABLE - {ROLE_FIELD})
    if unknown:
        return Changes(
            problems=[
                f"secret fields {unknown} cannot be updated on api_credentials "
                f"(updatable: {sorted(UPDATABLE | {ROLE_FIELD})})"
            ]
        )
    metadata = (new.fields or {}).get("metadata") or {}
    if not isinstance(metadata, dict):
        return Changes(problems=["secret field 'metadata' must be an object"])
    names = sorted(k for k in new.names if k in UPDATABLE and k != "metadata")
    names += [f"metadata.{k}" for k in sorted(metadata)]
    if ROLE_FIELD in new.names:
        names.append("role")
    return Changes(names + [f"metadata.{MARKER_KEY}", f"metadata.{DIGEST_KEY}"])


def ciphertrust(target: TargetSpec, live: RemoteState, new: NewValue) -> Changes:
    if live.summary.get("strategy") == "blue-green":
        names = [f"new connection.{k}" for k in sorted(new.names)]
        return Changes([*names, "new connection.meta.rotator", "organization.connection"])
    return Changes([f"connection.{k}" for k in sorted(new.names)] + ["connection.meta.rotator"])


PREVIEWS: Mapping[str, Preview] = {
    "adobe": adobe,
    "appflow": appflow,
    "uipath": uipath,
    "commercelayer": commercelayer,
    "ciphertrust": ciphertrust,
}

# Providers whose API shows neither the secret nor a marker: only rotator's own record of the
# current version says what is live.
BLIND = frozenset({"appflow"})


def preview(target: TargetSpec, live: RemoteState, new: NewValue) -> Changes:
    fn = PREVIEWS.get(target.provider)
    return fn(target, live, new) if fn else Changes(sorted(new.names))


__all__ = ["BLIND", "PREVIEWS", "Changes", "NewValue", "preview"]
