"""What ``rotator config check`` checks beyond the file's own schema.

A file can be well formed and still fail every rotation: an ``env:`` credential whose variable
is unset, a secret file that is missing, ``strategy: inplace``, no ``org_id``. Each check here
finds one of those without a network call and without printing a value:

* **provider fields**: the credentials and options each adapter needs (:data:`PROVIDER_FIELDS`,
  the names the adapters ``require``), the values an enumerated option accepts, unknown option
  names (with "did you mean"), then the adapter's own ``check_options``;
* **references**: every ``env:`` variable is set, every ``file:`` is readable under the
  credentials-directory rules, and its permissions are sane (see :func:`permission_problem`);
* **webhook signing keys**: every ``notify.webhooks.*.secret_env`` variable is set, and
  each ``url: env:NAME``'s variable;
* **secret sources**: ``file`` and ``env`` sources are read and parsed (values discarded);
  ``vault`` / ``aws-secrets-manager`` need the network and a version store, so ``rotator plan``
  reads them (``--offline`` says so instead of pretending).

Problems are ``errors`` (exit 1) or ``warnings`` (printed, exit 0).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from rotator import filerefs
from rotator.config import TargetsConfig, TargetSpecModel
from rotator.errors import ConfigIssue, SecretSourceError
from rotator.providers import option_problems
from rotator.resolve import resolve_reference
from rotator.sources.base import SourceContext
from rotator.suggest import did_you_mean


@dataclass(frozen=True)
class ProviderFields:
    """What a target of one provider must and may set (names only)."""

    credentials: tuple[str, ...]
    required_options: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""

    def describe(self) -> str:
        """One line: what the provider needs."""
        parts = [f"credentials {', '.join(self.credentials) or '(see note)'}"]
        if self.required_options:
            parts.append(f"options {', '.join(self.required_options)}")
        text = "needs " + "; ".join(parts)
        optional = [o for o in self.options if o not in self.required_options]
        if optional:
            text += f" (optional: {', '.join(optional)})"
        return text + (f"; {self.note}" if self.note else "")


def _ciphertrust_strategies() -> tuple[str, ...]:
    # The adapter's own constants: the valid values cannot drift from what it dispatches on.
    from rotator.providers.ciphertrust.api import BLUE_GREEN, IN_PLACE

    return (IN_PLACE, BLUE_GREEN)


PROVIDER_FIELDS: dict[str, ProviderFields] = {
    "adobe": ProviderFields(
        credentials=("client_id", "client_secret"),
        required_options=("org_id",),
        options=(
            "org_id",
            "sandbox_name",
            "ims_url",
            "scope",
            "api_key",
            "updated_client",
            "static_params",
        ),
    ),
    "appflow": ProviderFields(
        credentials=(),
        required_options=("region",),
        options=("region", "credentials", "connector_type"),
        note="credentials aws_access_key_id, aws_secret_access_key or option "
        "'credentials: default-chain'",
    ),
    "uipath": ProviderFields(
        credentials=("client_id", "client_secret"),
        required_options=("partition_global_id",),
        options=("partition_global_id", "partitionGlobalId", "token_url", "scope"),
    ),
    "commercelayer": ProviderFields(
        credentials=("client_id", "client_secret"),
        options=("auth_url", "scope"),
    ),
    "ciphertrust": ProviderFields(
        credentials=("username", "password"),
        options=(
            "strategy",
            "domain",
            "grace_period_seconds",
            "name_prefix",
            "retire_foreign_connections",
            "static_fields",
        ),
        choices={"strategy": _ciphertrust_strategies()},
    ),
}


@dataclass
class CheckResult:
    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _missing_option(fields: ProviderFields, options: Mapping[str, Any], option: str) -> bool:
    if option == "partition_global_id":  # the adapter also takes UiPath's own spelling
        return not (options.get(option) or options.get("partitionGlobalId"))
    return not options.get(option)


def provider_field_problems(
    spec: TargetSpecModel,
) -> tuple[list[str], list[str]]:
    """(errors, warnings) about a target's credentials and options, names only."""
    fields = PROVIDER_FIELDS.get(spec.provider)
    if fields is None:
        return [], []
    errors: list[str] = []
    needs = f"{spec.provider} {fields.describe()}"
    for key in fields.credentials:
        if key not in spec.credentials:
            errors.append(f"credential {key!r} is required ({needs})")
    for option in fields.required_options:
        if _missing_option(fields, spec.options, option):
            errors.append(f"option {option!r} is required ({needs})")
    for option, valid in fields.choices.items():
        value = spec.options.get(option)
        if value is not None and value not in valid:
            errors.append(
                f"option {option!r} must be one of {', '.join(map(repr, valid))}, "
                f"not {value!r}{did_you_mean(str(value), valid)}"
            )
    warnings = [
        f"unknown option {name!r} (ignored by {spec.provider}){did_you_mean(name, fields.options)}"
        for name in spec.options
        if name not in fields.options
    ]
    for problem in option_problems(spec.provider, spec.options, spec.credentials):
        if problem not in errors:
            errors.append(problem)
    return errors, warnings


def permission_problem(path: Path) -> tuple[str, bool] | None:
    """(message, is_error) for a credential file others can reach: world access is an error
    (any local user reads or replaces the credential), group access a warning (a shared
    service group is sometimes deliberate). Owner-only (0600/0400) passes."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        return f"{path} is world-accessible (mode {stat.S_IMODE(mode):04o}); chmod 600 it", True
    if mode & (stat.S_IRGRP | stat.S_IWGRP):
        return f"{path} is group-accessible (mode {stat.S_IMODE(mode):04o}); chmod 600 it", False
    return None


def _file_permissions(label: str, where: str, ref: str, root: Path, result: CheckResult) -> None:
    try:
        real = filerefs.locate(ref, root)
    except filerefs.FileRefused:
        return  # the read already reported it
    problem = permission_problem(real)
    if problem is not None:
        message, is_error = problem
        (result.errors if is_error else result.warnings).append(ConfigIssue(label, where, message))


def _check_refs(
    config: TargetsConfig,
    prefix: str,
    refs: Mapping[str, str],
    env: Mapping[str, str] | None,
    result: CheckResult,
    env_seen: dict[str, str | None] | None = None,
) -> None:
    """Each ``env:`` / ``file:`` reference resolves (the value is read and dropped).
    ``env_seen``: ``env:`` references already resolved in this check -> their problem (100,000
    targets name the same few variables; ``file:`` ones are read each time)."""
    label = str(config.path)
    for key, ref in refs.items():
        where = f"{prefix}.{key}"
        if env_seen is not None and ref in env_seen:
            problem = env_seen[ref]
            if problem is not None:
                result.errors.append(ConfigIssue(label, where, problem))
            continue
        try:
            resolve_reference(ref, base_dir=config.credentials_dir, env=env)
            problem = None
        except (KeyError, ValueError) as exc:
            problem = str(exc.args[0])
        if env_seen is not None and ref.startswith("env:"):
            env_seen[ref] = problem
        if problem is not None:
            result.errors.append(ConfigIssue(label, where, problem))
            continue
        kind, _, path = ref.partition(":")
        if kind == "file":
            _file_permissions(label, where, path, config.credentials_dir, result)


def check_references(
    config: TargetsConfig, env: Mapping[str, str] | None, result: CheckResult
) -> None:
    """Every target credential reference resolves."""
    env_seen: dict[str, str | None] = {}
    for name, spec in config.targets.items():
        _check_refs(config, f"targets.{name}.credentials", spec.credentials, env, result, env_seen)


def check_sources(
    config: TargetsConfig, env: Mapping[str, str] | None, offline: bool, result: CheckResult
) -> None:
    """``file`` and ``env`` secrets are read and parsed; network sources are left to plan."""
    from rotator.sources.env import EnvSource
    from rotator.sources.file import FileSource

    label = str(config.path)
    # Reading a file or env secret touches no version store.
    ctx = SourceContext(versions=cast(Any, None), base_dir=config.credentials_dir, env=env)
    for name, spec in config.secrets.items():
        where = f"secrets.{name}"
        try:
            if spec.source == "file":
                FileSource().load(name, spec, ctx)
                assert spec.path is not None
                _file_permissions(label, where + ".path", spec.path, config.credentials_dir, result)
            elif spec.source == "env":
                EnvSource().load(name, spec, ctx)
            elif spec.source in ("vault", "aws-secrets-manager"):
                remote = spec.vault or spec.aws_secrets_manager
                key = spec.source.replace("-", "_")
                refs = getattr(remote, "credentials", None)  # AWS may say "default-chain"
                refs = dict(refs) if isinstance(refs, Mapping) else {}
                _check_refs(config, f"{where}.{key}.credentials", refs, env, result)
                why = "--offline" if offline else "it needs the network: 'rotator plan' reads it"
                result.skipped.append(f"{where} ({spec.source}) not read: {why}")
        except SecretSourceError as exc:
            result.errors.append(ConfigIssue(label, where, str(exc)))


def check_config(
    config: TargetsConfig, *, offline: bool = False, env: Mapping[str, str] | None = None
) -> CheckResult:
    """Everything above, for one loaded targets file."""
    result = CheckResult()
    label = str(config.path)
    # The verdict depends on the provider, options and credentials only, and equal options and
    # credentials are one shared object in a loaded file (rotator.config._share_parts): 100,000
    # targets take a few hundred distinct verdicts. Keyed by identity while ``config`` holds them.
    verdicts: dict[tuple[str, int, int], tuple[list[str], list[str]]] = {}
    for name, spec in config.targets.items():
        key = (spec.provider, id(spec.options), id(spec.credentials))
        found = verdicts.get(key)
        if found is None:
            found = verdicts[key] = provider_field_problems(spec)
        errors, warnings = found
        where = f"targets.{name}.options"
        result.errors += [
            ConfigIssue(
                label, f"targets.{name}.credentials" if e.startswith("credential") else where, e
            )
            for e in errors
        ]
        result.warnings += [ConfigIssue(label, where, w) for w in warnings]
    check_references(config, env, result)
    check_sources(config, env, offline, result)
    check_webhook_keys(config, env, result)
    return result


def check_webhook_keys(
    config: TargetsConfig, env: Mapping[str, str] | None, result: CheckResult
) -> None:
    """Every webhook's signing-key variable is set (unsigned deliveries are never sent), and
    its URL variable when the URL is an ``env:`` reference."""
    environ = os.environ if env is None else env
    for name, hook in config.notify.webhooks.items():
        for field_name, variable, what in (
            ("secret_env", hook.secret_env, "the signing key"),
            ("url", hook.url_env, "the webhook URL"),
        ):
            if variable and not environ.get(variable):
                result.errors.append(
                    ConfigIssue(
                        str(config.path),
                        f"notify.webhooks.{name}.{field_name}",
                        f"environment variable {variable} is not set ({what})",
                    )
                )


__all__ = ["PROVIDER_FIELDS", "CheckResult", "ProviderFields", "check_config", "permission_problem"]
