"""Which fields a secret's value must carry for the targets that use it.

A new secret version replaces what its targets receive, so a value that lacks a field the
provider needs (UiPath's ``groupIds``) or carries one it cannot send (a read-only Commerce Layer
attribute) would fail every rotation, and a value that silently drops a field the previous
version had (``username`` gone from a basic-auth pair) can wipe part of a live connection.
``rotator secrets put`` checks both before storing; the engine checks the provider rules when
it pins a version, so such a job fails permanently before any remote call.

The rules come from the adapters' own constants and documented contracts (their module
docstrings); providers whose fields depend on the live connection (Adobe ``auth.params``,
AppFlow connector credentials, CipherTrust connection settings) have no fixed set, and for
them the previous version's field names are the contract. Messages name fields, never values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rotator.errors import SecretFieldsInvalid

TargetFields = Mapping[str, tuple[str, Mapping[str, Any]]]  # target -> (provider, options)


@dataclass(frozen=True)
class FieldRule:
    required: frozenset[str] = frozenset()
    allowed: frozenset[str] | None = None  # None: any field name
    note: str = ""  # what the provider does with the fields, for messages and `config check`


def _commercelayer() -> FieldRule:
    # Imported lazily, like the provider registry: the CLI need not import httpx adapters.
    from rotator.providers.commercelayer import ROLE_FIELD, UPDATABLE

    return FieldRule(allowed=UPDATABLE | {ROLE_FIELD}, note="updatable api_credential attributes")


def rule_for(provider: str, options: Mapping[str, Any] | None = None) -> FieldRule:
    """The field rule of one provider (``options`` may widen it: Adobe ``static_params``)."""
    if provider == "uipath":
        return FieldRule(
            required=frozenset({"groupIds"}),
            allowed=frozenset({"groupIds", "displayName"}),
            note="the robot account's desired groups and name",
        )
    if provider == "commercelayer":
        return _commercelayer()
    return FieldRule(note="fields depend on the live connection; the previous version's are kept")


def problems(fields: Mapping[str, Any], targets: TargetFields) -> list[str]:
    """What is wrong with ``fields`` for each target (name -> (provider, options))."""
    found: list[str] = []
    names = set(fields)
    if not names:
        found.append("the value has no fields")
    for target, (provider, options) in sorted(targets.items()):
        rule = rule_for(provider, options)
        missing = sorted(rule.required - names)
        if missing:
            found.append(f"target {target} ({provider}) needs field(s) {missing}")
        if rule.allowed is not None:
            unknown = sorted(names - rule.allowed)
            if unknown:
                found.append(
                    f"target {target} ({provider}) cannot use field(s) {unknown}; "
                    f"it accepts {sorted(rule.allowed)}"
                )
    return found


def check(fields: Mapping[str, Any], targets: TargetFields) -> None:
    """Raise SecretFieldsInvalid naming every problem (field names only)."""
    found = problems(fields, targets)
    if found:
        raise SecretFieldsInvalid("; ".join(found))


@dataclass(frozen=True)
class FieldDiff:
    removed: tuple[str, ...]
    added: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.removed or self.added)

    def describe(self) -> str:
        parts = [f"-{name}" for name in self.removed] + [f"+{name}" for name in self.added]
        return " ".join(parts) or "(same field names)"


def diff(previous: Iterable[str], new: Iterable[str]) -> FieldDiff:
    """Field-name difference between two versions (names only: values never leave here)."""
    old, cur = set(previous), set(new)
    return FieldDiff(tuple(sorted(old - cur)), tuple(sorted(cur - old)))


def targets_using(secret: str, config: Any) -> TargetFields:
    """Every target of ``config`` (a TargetsConfig) that rotates ``secret``."""
    return {
        name: (spec.provider, spec.options)
        for name, spec in config.targets.items()
        if spec.secret == secret
    }
