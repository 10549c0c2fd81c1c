"""The targets file (settings are ``rotator.settings``).

Every validation error names the file and the field: ``rotator.yaml: targets.crm.schedule: ...``
(settings errors name the variable instead: see ``rotator.settings``). A targets file with
errors is rejected whole, listing every error, so a half-valid file never half-applies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rotator import filerefs, safeyaml
from rotator.errors import ConfigError, ConfigIssue
from rotator.notify.model import NotifySection, TargetNotify, notify_issues

# Settings and time parsing live in their own modules; importers of rotator.config keep working.
from rotator.settings import Settings as Settings
from rotator.settings import load_or_create_local_keys as load_or_create_local_keys
from rotator.settings import load_settings as load_settings

# The remote sources' options (vault, aws-secrets-manager) live with those sources.
from rotator.sources.specs import AwsSecretsSpec, VaultSourceSpec, references_only
from rotator.suggest import did_you_mean
from rotator.timeparse import is_interval
from rotator.timeparse import parse_interval as parse_interval
from rotator.timeparse import parse_point_in_time as parse_point_in_time
from rotator.urlpolicy import UrlPolicy

# ---------------------------------------------------------------------------------------------
# Targets file
# ---------------------------------------------------------------------------------------------


# While a targets file is validated: equal parts of its models, shared (see ``_share_parts``).
_SHARING: ContextVar[dict[Any, Any] | None] = ContextVar("rotator_config_sharing", default=None)


def _share_parts(model: BaseModel, mappings: Sequence[str] = ()) -> None:
    """Point a freshly validated frozen model at shared copies of parts equal across many
    targets: its set of explicitly given field names (728 bytes each, 44% of a target model)
    and its small text mappings (credentials, options). 100,000 targets: about 160 MB of
    models become about 60 MB. Nothing mutates these: the models are frozen, and pydantic
    copies the field set before changing one (``model_copy``)."""
    memo = _SHARING.get()
    if memo is None:
        return
    fields_set = model.__pydantic_fields_set__
    shared_set = memo.setdefault(("fields", frozenset(fields_set)), fields_set)
    object.__setattr__(model, "__pydantic_fields_set__", shared_set)
    values = model.__dict__
    for name in mappings:
        value = values[name]
        try:
            key = (name, tuple(value.items()))
            shared = memo.setdefault(key, value)
        except TypeError:  # an unhashable option value: this mapping stays its own
            continue
        values[name] = shared


_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"


class Schedule(BaseModel):
    """An interval (``30d``) or a five-field cron expression, plus jitter."""

    model_config = ConfigDict(frozen=True)
    every: float | None = None
    cron: str | None = None
    jitter: float = 0.0

    def next_after(self, now: float, rng_value: float) -> float:
        """Next due time after ``now``; ``rng_value`` in [0, 1) spreads it by the jitter."""
        if self.every is not None:
            base = now + self.every
        else:
            assert self.cron is not None
            start = datetime.fromtimestamp(now, tz=UTC)
            base = croniter(self.cron, start).get_next(float)
        return base + self.jitter * rng_value


SecretSourceKind = Literal["file", "env", "generate", "store", "vault", "aws-secrets-manager"]


class SecretSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    source: SecretSourceKind
    path: str | None = Field(default=None, description="file: a JSON object of fields")
    var: str | None = Field(
        default=None, description="env: variable holding a JSON object (or a raw value)"
    )
    field: str = Field(default="password", description="env raw value / generate: field name")
    fields: list[str] = Field(
        default_factory=list, description="generate: several fields, each its own random value"
    )
    length: int = Field(default=32, ge=8, le=4096)
    alphabet: str = Field(
        default="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~",
        min_length=10,
    )
    static: Mapping[str, Any] = Field(
        default_factory=dict,
        description="generate: non-secret fields sent alongside (e.g. username)",
    )
    vault: VaultSourceSpec | None = Field(default=None, description="vault: where and how")
    aws_secrets_manager: AwsSecretsSpec | None = Field(
        default=None, description="aws-secrets-manager: where and how"
    )
    allow_field_change: bool = Field(
        default=False,
        description="accept a new value that drops a field the previous version had (a "
        "rotation would remove it from the target)",
    )

    @model_validator(mode="after")
    def _shared(self) -> SecretSpec:
        _share_parts(self)
        return self

    @model_validator(mode="after")
    def _source_fields(self) -> SecretSpec:
        if self.source == "file" and not self.path:
            raise ValueError("source 'file' needs 'path'")
        if self.source == "env" and not self.var:
            raise ValueError("source 'env' needs 'var'")
        for kind, options in (
            ("vault", self.vault),
            ("aws-secrets-manager", self.aws_secrets_manager),
        ):
            if (self.source == kind) != (options is not None):
                key = kind.replace("-", "_")
                raise ValueError(f"'{key}' options go with source '{kind}' (and it needs them)")
        return self


class TargetSpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    provider: str
    base_url: str
    resource_id: str = Field(min_length=1)
    secret: str
    credentials: Mapping[str, str] = Field(default_factory=dict)
    options: Mapping[str, Any] = Field(default_factory=dict)
    schedule: str | None = None
    jitter: str = "0s"
    ca_bundle: str | None = None
    enabled: bool = True
    # Incident mode (``rotator enqueue --secret``) rotates higher priorities first.
    priority: int = Field(default=0, description="Incident-mode order: higher first")
    # When an interval target added to the file first rotates (issue 12.6): ``scheduled`` (the
    # default: adding a target never writes to it by surprise) after one interval, ``now`` on
    # the next dispatch, ``adopt`` = read the live version and record it as current, no write.
    # Cron targets always come due at their next slot.
    first_rotation: Literal["now", "scheduled", "adopt"] = "scheduled"
    # Which webhooks hear about this target, and of which events (rotator.notify.model).
    notify: TargetNotify | None = None

    @model_validator(mode="after")
    def _shared(self) -> TargetSpecModel:
        _share_parts(self, ("credentials", "options"))
        return self

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("credentials")
    @classmethod
    def _references_only(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        return references_only(value)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if is_interval(value):
            return value
        if croniter.is_valid(value) and len(value.split()) == 5:
            return value
        raise ValueError(f"{value!r} is neither an interval (30d, 12h) nor a 5-field cron")

    @field_validator("jitter")
    @classmethod
    def _jitter(cls, value: str) -> str:
        parse_interval(value)
        return value

    @cached_property
    def parsed_schedule(self) -> Schedule | None:
        if self.schedule is None:
            return None
        jitter = parse_interval(self.jitter)
        if is_interval(self.schedule):
            return Schedule(every=parse_interval(self.schedule), jitter=jitter)
        return Schedule(cron=self.schedule, jitter=jitter)


Name = Annotated[str, Field(pattern=_NAME)]


class TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    secrets: dict[Name, SecretSpec] = Field(default_factory=dict)
    targets: dict[Name, TargetSpecModel] = Field(default_factory=dict)
    notify: NotifySection = Field(default_factory=NotifySection)


class TargetsConfig:
    """A validated targets file, plus where it came from and where its files may be read."""

    def __init__(
        self, path: Path, model: TargetsFile, mtime: float, credentials_dir: Path | None = None
    ) -> None:
        self.path = path
        self.model = model
        self.mtime = mtime
        self.credentials_dir = credentials_dir or path.parent

    @property
    def targets(self) -> dict[str, TargetSpecModel]:
        return self.model.targets

    @property
    def secrets(self) -> dict[str, SecretSpec]:
        return self.model.secrets

    @property
    def notify(self) -> NotifySection:
        return self.model.notify


def _loc(parts: Sequence[int | str]) -> str:
    return ".".join(str(p) for p in parts if p not in ("function-after",)) or "(top level)"


def load_targets(
    path: Path, known_providers: Sequence[str], settings: Settings | None = None
) -> TargetsConfig:
    """Load and validate a targets file; every problem is reported at once.

    ``settings`` carries the operator's policy (URL allow-lists, credentials directory);
    without it the policy comes from the environment, so no caller can skip it.
    """
    if settings is None:
        settings = load_settings()
    data, mtime = safeyaml.read_file(path, str(path))
    return validate_file(path, data, mtime, known_providers, settings)


def validate_file(
    path: Path, data: bytes, mtime: float, known_providers: Sequence[str], settings: Settings
) -> TargetsConfig:
    """``validate_targets``, a block of targets at a time where the file's shape allows
    (``rotator.config_blocks``, with no cache): the same config, or the same errors (a block
    with any problem sends the file to ``validate_targets``), without the whole file's
    parsed tree alive next to the models (100,000 targets: 185 MiB peak instead of 260)."""
    from rotator.config_blocks import load_blocks  # it builds on this module

    blocks = load_blocks(path, data, mtime, known_providers, settings, None)
    if blocks is not None:
        return blocks.config
    config, _raw = validate_targets(path, data, mtime, known_providers, settings)
    return config


def validate_targets(
    path: Path,
    data: bytes,
    mtime: float,
    known_providers: Sequence[str],
    settings: Settings,
) -> tuple[TargetsConfig, Mapping[str, Any]]:
    """Validate a targets file's bytes; returns the config and the parsed mapping."""
    label = str(path)
    raw = safeyaml.load_bytes(data, label)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue(label, "(top level)", "must be a mapping")])

    issues: list[ConfigIssue] = []
    model: TargetsFile | None = None
    try:
        with sharing_parts():
            model = TargetsFile.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            message = err["msg"].removeprefix("Value error, ")
            issues.append(ConfigIssue(label, _loc(err["loc"]), message))
    # Cross-references are checked on the raw data too, so one run lists every problem.
    issues.extend(_cross_check(label, raw, known_providers))
    credentials_dir = settings.credentials_root(path)
    if model is not None:
        issues.extend(_policy_check(label, model, settings.url_policy(), credentials_dir))
    if issues or model is None:
        raise ConfigError(issues)
    return TargetsConfig(path, model, mtime, credentials_dir), raw


def whole_file_issues(
    path: Path, model: TargetsFile, known_providers: Sequence[str], settings: Settings
) -> list[ConfigIssue]:
    """The checks ``validate_targets`` makes across a file whose targets each validated and
    passed the URL policy on their own (``rotator.config_blocks``): the cross-references, the
    notify section (with the URL policy) and the file references."""
    label = str(path)
    references = ((name, t.provider, t.secret) for name, t in model.targets.items())
    issues = _reference_issues(label, references, model.secrets, known_providers)
    issues.extend(
        _policy_check(
            label, model, settings.url_policy(), settings.credentials_root(path), target_urls=False
        )
    )
    return issues


def target_url_issues(
    label: str, targets: Mapping[str, TargetSpecModel], policy: UrlPolicy
) -> list[ConfigIssue]:
    """The URL policy's verdict on each target's URLs (part of ``validate_targets``)."""
    issues: list[ConfigIssue] = []
    for name, target in targets.items():
        for where, problem in policy.target_violations(
            target.provider, target.base_url, target.options
        ):
            issues.append(ConfigIssue(label, f"targets.{name}.{where}", problem))
    return issues


def file_reference_issues(path: Path, model: TargetsFile, settings: Settings) -> list[ConfigIssue]:
    """The checks of a validated file that depend on the filesystem, not on the file: where
    its ``file:`` credentials and file secrets point (``rotator.config_snapshot``)."""
    return _policy_check(str(path), model, None, settings.credentials_root(path))


@contextmanager
def sharing_parts() -> Iterator[None]:
    """Models validated inside share their equal parts (``_share_parts``)."""
    token = _SHARING.set({})
    try:
        yield
    finally:
        _SHARING.reset(token)


def _credential_vars(model: TargetsFile) -> dict[str, str]:
    """Every environment variable the file reads a secret from -> where (for the notify
    check: a webhook may not be keyed with one of them)."""
    found: dict[str, str] = {}
    for name, target in model.targets.items():
        for key, ref in target.credentials.items():
            kind, _, variable = ref.partition(":")
            if kind == "env":
                found.setdefault(variable, f"targets.{name}.credentials.{key}")
    for name, secret in model.secrets.items():
        if secret.source == "env" and secret.var:
            found.setdefault(secret.var, f"secrets.{name}.var")
        remote = secret.vault or secret.aws_secrets_manager
        refs = remote.credentials if remote is not None else {}
        if not isinstance(refs, Mapping):  # aws: "default-chain" reads no variable of ours
            continue
        for key, ref in refs.items():
            kind, _, variable = ref.partition(":")
            if kind == "env":
                found.setdefault(variable, f"secrets.{name}.credentials.{key}")
    return found


def _policy_check(
    label: str,
    model: TargetsFile,
    policy: UrlPolicy | None,
    credentials_dir: Path,
    *,
    target_urls: bool = True,
) -> list[ConfigIssue]:
    """The operator's limits on what a targets file may point at (rotator.urlpolicy,
    rotator.filerefs): every URL an adapter calls (unless ``policy`` is None: already
    checked; ``target_urls`` False: the targets' were) and every file it names."""
    issues: list[ConfigIssue] = []
    url_policy = policy if target_urls else None
    for name, target in model.targets.items():
        if url_policy is not None:
            issues.extend(target_url_issues(label, {name: target}, url_policy))
        for key, ref in target.credentials.items():
            kind, _, ref_path = ref.partition(":")
            file_problem = filerefs.inspect(ref_path, credentials_dir) if kind == "file" else None
            if file_problem:
                where = f"targets.{name}.credentials.{key}"
                issues.append(ConfigIssue(label, where, file_problem))
    routes = {name: target.notify for name, target in model.targets.items()}
    for where, problem in notify_issues(model.notify, routes, policy, _credential_vars(model)):
        issues.append(ConfigIssue(label, where, problem))
    for name, secret in model.secrets.items():
        if secret.source == "file" and secret.path:
            file_problem = filerefs.inspect(secret.path, credentials_dir)
            if file_problem:
                issues.append(ConfigIssue(label, f"secrets.{name}.path", file_problem))
    return issues


def _cross_check(
    label: str, raw: Mapping[str, Any], known_providers: Sequence[str]
) -> list[ConfigIssue]:
    secrets = raw.get("secrets") if isinstance(raw.get("secrets"), dict) else {}
    targets = raw.get("targets") if isinstance(raw.get("targets"), dict) else {}
    assert isinstance(secrets, dict) and isinstance(targets, dict)
    references = (
        (name, target.get("provider"), target.get("secret"))
        for name, target in targets.items()
        if isinstance(target, dict)
    )
    return _reference_issues(label, references, secrets, known_providers)


def _reference_issues(
    label: str,
    references: Iterable[tuple[Any, Any, Any]],
    secrets: Mapping[Any, Any],
    known_providers: Sequence[str],
) -> list[ConfigIssue]:
    """Each target's provider is known and its secret is defined: (name, provider, secret)."""
    issues: list[ConfigIssue] = []
    for name, provider, secret in references:
        if isinstance(provider, str) and provider not in known_providers:
            issues.append(
                ConfigIssue(
                    label,
                    f"targets.{name}.provider",
                    f"unknown provider {provider!r}{did_you_mean(provider, known_providers)} "
                    f"(known: {', '.join(known_providers)})",
                )
            )
        if isinstance(secret, str) and secret not in secrets:
            issues.append(
                ConfigIssue(label, f"targets.{name}.secret", f"no secret named {secret!r}")
            )
    return issues


def targets_json_schema() -> dict[str, Any]:
    return TargetsFile.model_json_schema()
