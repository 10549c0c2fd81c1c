"""Settings: the environment (prefix ``ROTATOR_``) or ``.env``, validated at start.

Every validation error names the variable: ``environment: ROTATOR_MASTER_KEY: ...``. The keys
are secret types, so no repr or log line shows them; URL allow-lists and the insecure hosts
come from here only (the targets file cannot widen them).
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rotator.connections import is_sentinel, parse_sentinel_url
from rotator.errors import ConfigError, ConfigIssue
from rotator.timeparse import parse_interval
from rotator.urlpolicy import UrlPolicy, parse_allowed_hosts, parse_insecure_hosts


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ROTATOR_", env_file=".env", extra="ignore", validate_default=True
    )

    # URLs may carry a password: kept out of repr like the keys.
    redis_url: str | None = Field(
        default=None,
        repr=False,
        description="State store (redis://, rediss://, unix://, or "
        "sentinel://host:26379,host2:26379/0?master=NAME). Unset: an embedded Redis under "
        "state_dir.",
    )
    broker_url: str | None = Field(
        default=None,
        repr=False,
        description="Celery broker (redis://, sentinel://... or amqp://). Unset: the Redis URL.",
    )
    # Replication (README "Redis high availability"): after each write crash safety rests on
    # (the pinned version, the intent before a remote write, a promotion) the store waits for
    # this many replicas to acknowledge it, at most redis_replica_timeout seconds. 0: no WAIT.
    redis_min_replicas: int = Field(default=0, ge=0, le=16)
    redis_replica_timeout: float = Field(default=2.0, gt=0, le=60)
    # RabbitMQ: declare rotator's queue as a quorum queue (replicated, confirmed publishes).
    broker_quorum: bool = Field(default=False)
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
    breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    breaker_probe_interval: float = Field(default=30.0, gt=0)

    @field_validator(
        "retry_budget",
        "failure_retry_interval",
        "breaker_window",
        "breaker_probe_interval",
        "verify_limit",
        "redis_startup_wait",
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
    # A worker or beat started while Redis restarts (a node reboot, a failover) waits this
    # long for it before refusing to start: one Redis blip must not become a crash loop.
    redis_startup_wait: float = Field(default=10.0, ge=0)
    redis_health_check_interval: float = Field(default=15.0, ge=0)
    job_retention: str = Field(default="30d", description="Age after which ended jobs go")
    secret_versions_kept: int = Field(default=10, ge=1)
    housekeeping_interval: str = Field(default="10m")
    audit_archive_interval: str = Field(default="", description="'' = no scheduled archive")
    audit_archive_dir: Path | None = None
    # Notifications (README "Notifications"): the queue's bound and each POST's deadline.
    notify_max_queued: int = Field(default=10_000, ge=1, description="Deliveries queued at most")
    notify_timeout: float = Field(default=5.0, gt=0, le=60, description="Seconds per webhook POST")

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

    @field_validator("redis_url", "broker_url")
    @classmethod
    def _sentinel_url(cls, value: str | None) -> str | None:
        # A Sentinel URL is parsed here so that a typo is reported at start, naming the field
        # (the message never repeats the URL: it may carry a password).
        if is_sentinel(value):
            assert value is not None
            try:
                parse_sentinel_url(value)
            except ValueError as exc:
                raise ValueError(f"invalid Sentinel URL: {exc}") from None
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
        if self.embedded and self.redis_min_replicas:
            issues.append(
                ConfigIssue(
                    "environment",
                    "ROTATOR_REDIS_MIN_REPLICAS",
                    "the embedded Redis has no replicas: every durable write would be refused "
                    "(set ROTATOR_REDIS_URL to a replicated Redis, or 0)",
                )
            )
        if self.broker_quorum and not (self.broker_url or "").startswith(("amqp", "pyamqp")):
            issues.append(
                ConfigIssue(
                    "environment",
                    "ROTATOR_BROKER_QUORUM",
                    "quorum queues are RabbitMQ's: set ROTATOR_BROKER_URL to an amqp:// URL",
                )
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
