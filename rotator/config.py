"""Settings (environment, prefix ``ROTATOR_``) and the targets file.

Every validation error names the file and the field: ``rotator.yaml: targets.crm.schedule: ...``
for the targets file, ``environment: ROTATOR_MASTER_KEY: ...`` for settings. A targets file with
errors is rejected whole, listing every error, so a half-valid file never half-applies.
"""

from __future__ import annotations

import json
import os
import re
import secrets as pysecrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from croniter import croniter
from cryptography.fernet import Fernet
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from rotator import filerefs, safeyaml
from rotator.errors import ConfigError, ConfigIssue

# The remote sources' options (vault, aws-secrets-manager) live with those sources.
from rotator.sources.specs import AwsSecretsSpec, VaultSourceSpec
from rotator.suggest import did_you_mean
from rotator.urlpolicy import UrlPolicy, parse_allowed_hosts, parse_insecure_hosts

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ROTATOR_", env_file=".env", extra="ignore", validate_default=True
    )

    # URLs may carry a password: kept out of repr like the keys.
    redis_url: str | None = Field(
        default=None,
        repr=False,
        description="State store. Unset: an embedded Redis under state_dir.",
    )
    broker_url: str | None = Field(
        default=None,
        repr=False,
        description="Celery broker (redis:// or amqp://). Unset: the Redis URL.",
    )
    targets_file: Path = Field(default=Path("rotator.yaml"))
    # SecretStr: repr(), str() and model_dump() of the settings never show key material.
    master_key: SecretStr | None = Field(
        default=None,
        description="Fernet keys, comma-separated, newest first. Required with redis_url.",
    )
    audit_key: SecretStr | None = Field(
        default=None,
        description="Key for audit hash chain and secret fingerprints. Required with redis_url.",
    )
    key_prefix: str = Field(
        default="rotator:",
        pattern=r"^[A-Za-z0-9:_.-]{1,64}$",
        description="Prefix of every Redis key: 1-64 of A-Z a-z 0-9 : _ . -",
    )
    credentials_dir: Path | None = Field(
        default=None,
        description="The only directory file: references and file secrets are read from. "
        "Unset: the targets file's folder.",
    )
    insecure_hosts: str = Field(
        default="",
        description="host:port (or host:*) list that may be called over plain http "
        "(the local sandbox); allowed for every provider.",
    )
    allowed_hosts: str = Field(
        default="",
        description="provider=host-pattern list added to the providers' default host "
        "allow-lists (e.g. ciphertrust=kms.example.com).",
    )
    state_dir: Path = Path(".rotator")
    queue: str = "rotator"
    dispatch_interval: float = Field(default=5.0, gt=0)
    dispatch_batch: int = Field(default=2000, gt=0)
    lease_ttl: float = Field(
        default=30.0,
        gt=0,
        description="Seconds after a worker's death before another may take its target over; "
        "a running attempt renews its lease every third of this.",
    )
    # Retry and brownout (README "Retries and provider brownouts"): transient failures retry
    # for a time budget; the attempt count is only a safety cap sized so the budget binds
    # (200 attempts at delays capped at retry_max_delay take far longer than 6 h).
    max_attempts: int = Field(default=200, ge=1)
    retry_budget: float = Field(default=6 * 3600.0, gt=0)
    # A scheduled target whose job failed or was dead-lettered comes due again this soon.
    failure_retry_interval: float = Field(default=3600.0, gt=0)
    # Per provider host: open when >= breaker_failure_ratio of >= breaker_min_calls calls in a
    # breaker_window fail transiently; then one probe per breaker_probe_interval.
    breaker_enabled: bool = True
    breaker_window: float = Field(default=60.0, gt=0)
    breaker_min_calls: int = Field(default=10, ge=1)
    breaker_failure_ratio: float = Field(default=1.0, gt=0, le=1)
    breaker_probe_interval: float = Field(default=30.0, gt=0)

    @field_validator(
        "retry_budget",
        "failure_retry_interval",
        "breaker_window",
        "breaker_probe_interval",
        "verify_limit",
        mode="before",
    )
    @classmethod
    def _seconds_or_interval(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() and not value.strip()[-1].isdigit():
            return parse_interval(value.strip())
        return value

    retry_base_delay: float = Field(default=2.0, gt=0)
    retry_max_delay: float = Field(default=600.0, gt=0)
    # How long a job whose update applied, or may have, keeps verifying before it ends
    # `unverified` (seconds, or an interval such as 24h); the attempt budget does not end it.
    verify_limit: float = Field(default=24 * 3600.0, gt=0)

    http_timeout: float = Field(default=15.0, gt=0)
    worker_concurrency: int = Field(default=64, ge=1)
    max_in_flight: int = Field(default=128, ge=1, description="Rotations in flight per process.")
    audit_jsonl: Path | None = None
    audit_stdout: bool = False
    audit_retention: str = Field(
        default="90d", description="Age after which `rotator audit archive` moves events out"
    )
    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="unset: JSON unless stderr is a TTY")
    metrics_port: int | None = Field(default=None, ge=1, le=65535, description="/metrics, /readyz")
    # Bounded work (README "Bounded work"): caps on what a slow or hostile peer can hold.
    http_max_response_bytes: int = Field(default=1024 * 1024, ge=1024)
    redis_socket_timeout: float = Field(default=30.0, gt=0)
    redis_health_check_interval: float = Field(default=15.0, ge=0)
    job_retention: str = Field(default="30d", description="Age after which ended jobs go")
    secret_versions_kept: int = Field(default=10, ge=1)
    housekeeping_interval: str = Field(default="10m")
    audit_archive_interval: str = Field(default="", description="'' = no scheduled archive")
    audit_archive_dir: Path | None = None

    @field_validator(
        "job_retention", "housekeeping_interval", "audit_retention", "audit_archive_interval"
    )
    @classmethod
    def _interval_text(cls, value: str, info: ValidationInfo) -> str:
        # Only the scheduled archive may be left empty (no scheduled archive).
        if value or info.field_name != "audit_archive_interval":
            parse_interval(value)
        return value

    @field_validator("http_timeout")
    @classmethod
    def _write_fits_in_lease(cls, value: float, info: ValidationInfo) -> float:
        # A remote write is sent only while the lease covers its whole deadline, so a deadline
        # as long as the lease would refuse every write.
        lease_ttl = info.data.get("lease_ttl")
        if lease_ttl is not None and value >= lease_ttl:
            raise ValueError(
                f"must be shorter than ROTATOR_LEASE_TTL ({lease_ttl:g}s): a remote write is "
                "sent only while the target's lease covers its whole deadline"
            )
        return value

    @field_validator("insecure_hosts")
    @classmethod
    def _insecure_hosts(cls, value: str) -> str:
        parse_insecure_hosts(value)
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: str) -> str:
        from rotator.providers import provider_names

        parse_allowed_hosts(value, provider_names())
        return value

    @field_validator("master_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        for index, key in enumerate(k.strip() for k in value.get_secret_value().split(",")):
            try:
                Fernet(key.encode())
            except (ValueError, TypeError):
                # Never echo the value: it is key material.
                raise ValueError(
                    f"key #{index + 1} is not a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        return value

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    def master_keys(self) -> list[str]:
        if self.master_key:
            keys = self.master_key.get_secret_value().split(",")
            return [k.strip() for k in keys if k.strip()]
        return [self._local_keys()["master_key"]]

    def audit_key_bytes(self) -> bytes:
        if self.audit_key:
            return self.audit_key.get_secret_value().encode()
        return self._local_keys()["audit_key"].encode()

    def url_policy(self) -> UrlPolicy:
        return UrlPolicy.from_settings(self.insecure_hosts, self.allowed_hosts)

    def credentials_root(self, targets_file: Path) -> Path:
        return self.credentials_dir or targets_file.parent

    def _local_keys(self) -> dict[str, str]:
        """Zero-setup mode only: keys generated once into state_dir (mode 0600)."""
        if not self.embedded:
            missing = "ROTATOR_MASTER_KEY" if not self.master_key else "ROTATOR_AUDIT_KEY"
            raise ConfigError(
                [
                    ConfigIssue(
                        "environment",
                        missing,
                        "required when ROTATOR_REDIS_URL is set (keys must be shared by "
                        "every worker)",
                    )
                ]
            )
        return load_or_create_local_keys(self.state_dir)

    def validate_runtime(self) -> None:
        """Checks that need more than one field; raises ConfigError naming the variables."""
        issues = []
        if not self.embedded:
            for name, value in (
                ("ROTATOR_MASTER_KEY", self.master_key),
                ("ROTATOR_AUDIT_KEY", self.audit_key),
            ):
                if not value:
                    issues.append(
                        ConfigIssue("environment", name, "required when ROTATOR_REDIS_URL is set")
                    )
        if issues:
            raise ConfigError(issues)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(
            [
                ConfigIssue(
                    "environment",
                    "ROTATOR_" + ".".join(str(p) for p in err["loc"]).upper(),
                    err["msg"],
                )
                for err in exc.errors()
            ]
        ) from None


def load_or_create_local_keys(state_dir: Path) -> dict[str, str]:
    path = state_dir / "keys.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    state_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "master_key": Fernet.generate_key().decode(),
        "audit_key": pysecrets.token_urlsafe(32),
    }
    # O_EXCL: two processes starting at once must agree on one key file.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing: dict[str, str] = json.loads(path.read_text())
        return existing
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    return data


# ---------------------------------------------------------------------------------------------
# Targets file
# ---------------------------------------------------------------------------------------------

_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_REF = re.compile(r"^(env|file):(.+)$")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"


def parse_interval(text: str) -> float:
    match = _INTERVAL.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an interval like 30s, 15m, 12h, 30d, 2w")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


_UNIX_SECONDS = re.compile(r"^\d+(\.\d+)?$")


def parse_point_in_time(text: str, now: float) -> float:
    """``24h``/``90d`` (that long before ``now``), ``now``, unix seconds, or an ISO 8601 time
    (UTC when it names no zone). ValueError for anything else: the CLI and the HTTP API word it
    in their own way."""
    value = text.strip()
    if value == "now":
        return now
    if _UNIX_SECONDS.match(value):
        return float(value)
    try:
        return now - parse_interval(value)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


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

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("credentials")
    @classmethod
    def _references_only(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for key, ref in value.items():
            if not isinstance(ref, str) or not _REF.match(ref):
                # The value may be a pasted secret: name the key, never echo the value.
                raise ValueError(
                    f"credential {key!r} must be a reference 'env:NAME' or 'file:PATH', "
                    "never an inline value"
                )
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if _INTERVAL.match(value):
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
        if _INTERVAL.match(self.schedule):
            return Schedule(every=parse_interval(self.schedule), jitter=jitter)
        return Schedule(cron=self.schedule, jitter=jitter)


Name = Annotated[str, Field(pattern=_NAME)]


class TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    secrets: dict[Name, SecretSpec] = Field(default_factory=dict)
    targets: dict[Name, TargetSpecModel] = Field(default_factory=dict)


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


def _loc(parts: Sequence[int | str]) -> str:
    return ".".join(str(p) for p in parts if p not in ("function-after",)) or "(top level)"


def load_targets(
    path: Path, known_providers: Sequence[str], settings: Settings | None = None
) -> TargetsConfig:
    """Load and validate a targets file; every problem is reported at once.

    ``settings`` carries the operator's policy (URL allow-lists, credentials directory);
    without it the policy comes from the environment, so no caller can skip it.
    """
    label = str(path)
    if settings is None:
        settings = load_settings()
    raw, mtime = safeyaml.load_file(path, label)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue(label, "(top level)", "must be a mapping")])

    issues: list[ConfigIssue] = []
    model: TargetsFile | None = None
    try:
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
    return TargetsConfig(path, model, mtime, credentials_dir)


def _policy_check(
    label: str, model: TargetsFile, policy: UrlPolicy, credentials_dir: Path
) -> list[ConfigIssue]:
    """The operator's limits on what a targets file may point at (rotator.urlpolicy,
    rotator.filerefs): every URL an adapter calls and every file it names."""
    issues: list[ConfigIssue] = []
    for name, target in model.targets.items():
        for where, problem in policy.target_violations(
            target.provider, target.base_url, target.options
        ):
            issues.append(ConfigIssue(label, f"targets.{name}.{where}", problem))
        for key, ref in target.credentials.items():
            kind, _, ref_path = ref.partition(":")
            file_problem = filerefs.inspect(ref_path, credentials_dir) if kind == "file" else None
            if file_problem:
                where = f"targets.{name}.credentials.{key}"
                issues.append(ConfigIssue(label, where, file_problem))
    for name, secret in model.secrets.items():
        if secret.source == "file" and secret.path:
            file_problem = filerefs.inspect(secret.path, credentials_dir)
            if file_problem:
                issues.append(ConfigIssue(label, f"secrets.{name}.path", file_problem))
    return issues


def _cross_check(
    label: str, raw: Mapping[str, Any], known_providers: Sequence[str]
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    secrets = raw.get("secrets") if isinstance(raw.get("secrets"), dict) else {}
    targets = raw.get("targets") if isinstance(raw.get("targets"), dict) else {}
    assert isinstance(secrets, dict) and isinstance(targets, dict)
    for name, target in targets.items():
        if not isinstance(target, dict):
            continue
        provider = target.get("provider")
        if isinstance(provider, str) and provider not in known_providers:
            issues.append(
                ConfigIssue(
                    label,
                    f"targets.{name}.provider",
                    f"unknown provider {provider!r}{did_you_mean(provider, known_providers)} "
                    f"(known: {', '.join(known_providers)})",
                )
            )
        secret = target.get("secret")
        if isinstance(secret, str) and secret not in secrets:
            issues.append(
                ConfigIssue(label, f"targets.{name}.secret", f"no secret named {secret!r}")
            )
    return issues


def targets_json_schema() -> dict[str, Any]:
    return TargetsFile.model_json_schema()
