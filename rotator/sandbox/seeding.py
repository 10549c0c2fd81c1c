"""Seeding the sandbox from an operator's own targets file (``rotator sandbox --targets``).

A newcomer's file names resource ids and ``env:`` references the sandbox knows nothing about;
guessed credentials get ``invalid_client``. This module turns the file into (a) one sandbox
resource per target, created through the same ``/_sandbox`` admin API the demo uses, and (b)
the environment the file's references expect: the sandbox's public management credentials
(``rotator.sandbox.defaults``) under the variable names the file chose, plus the
``ROTATOR_INSECURE_HOSTS`` entry that lets rotator call the sandbox over plain http.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

import httpx

from rotator.config import TargetsConfig, TargetSpecModel
from rotator.sandbox import defaults as d
from rotator.urlpolicy import insecure_entry

#: The management credential each adapter field is seeded with (sandbox-only, public values).
CREDENTIALS: dict[str, dict[str, str]] = {
    "adobe": {"client_id": d.ADOBE_CLIENT_ID, "client_secret": d.ADOBE_CLIENT_SECRET},
    "appflow": {
        "aws_access_key_id": d.AWS_ACCESS_KEY_ID,
        "aws_secret_access_key": d.AWS_SECRET_ACCESS_KEY,
    },
    "uipath": {"client_id": d.UIPATH_CLIENT_ID, "client_secret": d.UIPATH_CLIENT_SECRET},
    "commercelayer": {
        "client_id": d.COMMERCELAYER_CLIENT_ID,
        "client_secret": d.COMMERCELAYER_CLIENT_SECRET,
    },
    "ciphertrust": {"username": d.CIPHERTRUST_USERNAME, "password": d.CIPHERTRUST_PASSWORD},
}

#: Options whose value must match what the sandbox was seeded with.
EXPECTED_OPTIONS: dict[str, dict[str, str]] = {
    "adobe": {"org_id": d.ADOBE_ORG_ID, "sandbox_name": d.ADOBE_SANDBOX_NAME},
    "uipath": {"partition_global_id": d.UIPATH_PARTITION_GLOBAL_ID},
    "appflow": {"region": d.AWS_REGION},
}

#: The CipherTrust connection a seeded blue-green organization points at.
CIPHERTRUST_CONNECTION = "sfdc-conn"


@dataclass
class SeedReport:
    """What seeding did and what the operator must export, for the banner or an env file."""

    seeded: list[str] = field(default_factory=list)  # "target -> /_sandbox/... path"
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def env_lines(self) -> list[str]:
        """``KEY=value`` lines, shell-quoted, that ``set -a; . FILE`` and docker's
        ``--env-file`` both read (values here never need quoting beyond shlex's)."""
        return [f"{key}={shlex.quote(value)}" for key, value in self.env.items()]


def _resource_body(name: str, spec: TargetSpecModel) -> dict[str, Any]:
    """A plausible resource of the target's kind; each provider's admin API fills the rest."""
    if spec.provider == "adobe":
        params = {"username": "etl@example.com", "password": "initial"}
        return {"name": name, "auth": {"specName": "Basic Authentication", "params": params}}
    if spec.provider == "appflow":
        return {
            "connectorType": str(spec.options.get("connector_type") or "Salesforce"),
            "connectorProfileProperties": {
                "Salesforce": {"instanceUrl": "https://example.my.salesforce.com"}
            },
        }
    if spec.provider == "uipath":
        return {"displayName": name, "groupIds": []}
    if spec.provider == "ciphertrust" and spec.options.get("strategy") == "blue-green":
        return {"name": name, "connection": CIPHERTRUST_CONNECTION}
    return {"name": name}


def seed_path(spec: TargetSpecModel) -> str:
    """Where the admin API keeps the target's resource. CipherTrust's in-place strategy rotates
    a connection; every other kind is a provider 'resource'."""
    kind = "resources"
    if spec.provider == "ciphertrust" and spec.options.get("strategy", "in-place") == "in-place":
        kind = "connections"
    return f"/_sandbox/{spec.provider}/{kind}/{spec.resource_id}"


def _reference_env(name: str, spec: TargetSpecModel, report: SeedReport) -> None:
    known = CREDENTIALS.get(spec.provider, {})
    for key, ref in spec.credentials.items():
        kind, _, where = ref.partition(":")
        value = known.get(key)
        if value is None:
            report.notes.append(f"{name}: credential {key!r} is not one the sandbox knows")
        elif kind == "env":
            report.env[where] = value
        else:
            shown = f"SANDBOX_{spec.provider.upper()}_{key.upper()}"
            report.notes.append(
                f"{name}: credential {key!r} is read from file {where}: write the sandbox "
                f"value there (the env file shows it as {shown})"
            )
            report.env[shown] = value


def _option_notes(name: str, spec: TargetSpecModel, url: str, report: SeedReport) -> None:
    if not spec.base_url.startswith(url):
        report.notes.append(
            f"{name}: base_url {spec.base_url} is not this sandbox ({url}); "
            f"use {d.base_urls(url).get(spec.provider, url)}"
        )
    for option, expected in EXPECTED_OPTIONS.get(spec.provider, {}).items():
        if option in spec.options and str(spec.options[option]) != expected:
            report.notes.append(f"{name}: option {option!r} must be {expected!r} in the sandbox")


def seed_targets(admin: httpx.Client, config: TargetsConfig, url: str) -> SeedReport:
    """Create one sandbox resource per target in ``config`` and collect the env it expects."""
    report = SeedReport()
    report.env["ROTATOR_TARGETS_FILE"] = str(config.path.resolve())
    report.env["ROTATOR_INSECURE_HOSTS"] = insecure_entry(url)
    if any(t.provider == "ciphertrust" for t in config.targets.values()):
        body = {"name": CIPHERTRUST_CONNECTION, "client_id": "3MVG9-sandbox"}
        admin.put(
            f"/_sandbox/ciphertrust/connections/{CIPHERTRUST_CONNECTION}", json=body
        ).raise_for_status()
    for name, spec in config.targets.items():
        path = seed_path(spec)
        admin.put(path, json=_resource_body(name, spec)).raise_for_status()
        report.seeded.append(f"{name} -> {path}")
        _reference_env(name, spec, report)
        _option_notes(name, spec, url, report)
    return report


__all__ = ["CREDENTIALS", "SeedReport", "seed_path", "seed_targets"]
