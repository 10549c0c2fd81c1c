"""Incident benchmark: N targets across the five providers, all enqueued at once.

    python -m tools.bench --incident 10000 [--latency-ms 50] [--workers 1] [--concurrency 64]
                          [--embedded | --redis-url URL] [--worker-env KEY=VALUE ...]
                          [--json-out FILE] [--timeout S]

What runs: the provider sandbox in its own process with every provider's documented limits
enforced (only Commerce Layer documents any) and ``--latency-ms`` on every API call but token
grants; a Redis (see ``tools.bench``); ``python -m rotator worker`` process(es) with the
default settings (lease, retries, rate budgets); and, in this process, what an operator's
``rotator enqueue --all`` does: ``rotator.incident.select`` / ``spread`` / ``open_incident``
/ ``enqueue_all`` on a ``Runtime``, while ``rotator.dispatch`` messages go out every second as
beat sends them, so due jobs reach the workers through the dispatcher. Following the jobs is
done with two cheap Redis calls a second (jobs created, jobs due) instead of the CLI's
per-job polling, which at 10,000 jobs would compete with the workers for the CPU.

The targets: ``N`` spread round-robin over adobe, appflow, uipath, commercelayer and
ciphertrust (in-place), one sandbox resource each, each secret generated.

Printed once every job has ended (the incident's clock starts before ``incident.opened``):

* the total time, and per provider the time until its last job ended, with job states;
* per provider, the peak requests in any sliding 10 s and 60 s window as the *sandbox*
  counted them (``GET /_sandbox/stats``: every request that arrived, refused or not), next
  to the documented limit: Commerce Layer's per method class and endpoint
  (``rate_windows``), and for every provider all its requests together
  (``request_windows``, where no provider documents a limit);
* the 429s the sandbox answered (its own limits, and injected ones: none are injected here);
* for Commerce Layer, the limit-bound provider, the theoretical minimum: the earliest the
  last of its W PATCHes can be sent when every PATCH goes as early as the documented windows
  allow (50 per 10 s and 200 per 60 s, sliding; its 3 W reads at 250 per 10 s and 1000 per
  60 s bind later only if reads did), plus the sandbox latency of the calls that must come
  before the first PATCH (token, two reads) and after the last (the PATCH, the verifying
  read); and measured / theoretical (the issue's target is at most 1.10).

The run exits 1 when a documented limit was exceeded (any window's peak over its limit, or a
429 from the sandbox's own limits), 0 otherwise; timings are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from cryptography.fernet import Fernet
from rich.console import Console
from rich.table import Table

from rotator.sandbox import defaults as d
from rotator.urlpolicy import insecure_entry
from tools.bench import (
    RedisInfo,
    _read_audit,
    publisher,
    send_all,
    tree_cpu_seconds,
    wait_for_workers,
)
from tools.common import (
    Proc,
    SandboxProcess,
    delete_prefix,
    kombu_prefix_for,
    queue_for,
    sandbox_credentials,
)

console = Console(width=None if sys.stdout.isatty() else 132)

PROVIDERS: tuple[str, ...] = ("adobe", "appflow", "uipath", "commercelayer", "ciphertrust")
# One generated secret per provider: every target of a provider shares it (an incident).
SECRETS: Mapping[str, Mapping[str, Any]] = {
    "adobe": {
        "source": "generate",
        "field": "password",
        "length": 24,
        "static": {"username": "etl@example.com"},
    },
    "appflow": {"source": "generate", "field": "accessToken", "length": 40},
    "uipath": {
        "source": "generate",
        "field": "displayName",
        "length": 16,
        "static": {"groupIds": ["g-bench"]},
    },
    "commercelayer": {
        "source": "generate",
        "field": "reference",
        "length": 16,
        "static": {"role_id": "rolReadOnly1"},
    },
    "ciphertrust": {"source": "generate", "fields": ["client_secret", "password"], "length": 32},
}


@dataclass(frozen=True)
class Target:
    name: str
    provider: str
    resource_id: str

    @property
    def admin_path(self) -> str:
        kind = "connections" if self.provider == "ciphertrust" else "resources"  # in-place
        return f"/_sandbox/{self.provider}/{kind}/{self.resource_id}"

    def seed_body(self) -> dict[str, Any]:
        if self.provider == "adobe":
            params = {"username": "etl@example.com", "password": "initial"}
            return {
                "name": self.name,
                "auth": {"specName": "Basic Authentication", "params": params},
            }
        if self.provider == "appflow":
            return {
                "connectorType": "Salesforce",
                "connectorProfileProperties": {
                    "Salesforce": {"instanceUrl": "https://example.my.salesforce.com"}
                },
                "connectorProfileCredentials": {"Salesforce": {"accessToken": "initial"}},
            }
        if self.provider == "uipath":
            return {"displayName": self.name, "groupIds": ["g-initial"]}
        if self.provider == "commercelayer":
            return {"name": self.name}
        return {"name": self.resource_id, "client_id": "3MVG9-bench", "username": "cckm@x.test"}


def plan_targets(count: int) -> list[Target]:
    """``count`` targets, round-robin over the five providers."""
    out = []
    for i in range(count):
        provider = PROVIDERS[i % len(PROVIDERS)]
        n = i // len(PROVIDERS)
        out.append(Target(f"{provider}-{n:05d}", provider, f"inc{n:05d}{provider[:2]}"))
    return out


def target_block(target: Target, urls: Mapping[str, str]) -> dict[str, Any]:
    block: dict[str, Any] = {
        "provider": target.provider,
        "resource_id": target.resource_id,
        "secret": f"incident-{target.provider}",
    }
    if target.provider == "adobe":
        block |= {
            "base_url": urls["adobe"],
            "credentials": {
                "client_id": "env:BENCH_ADOBE_ID",
                "client_secret": "env:BENCH_ADOBE_SECRET",
            },
            "options": {
                "ims_url": urls["adobe_ims"],
                "org_id": d.ADOBE_ORG_ID,
                "updated_client": d.ADOBE_CLIENT_NAME,
            },
        }
    elif target.provider == "appflow":
        block |= {
            "base_url": urls["appflow"],
            "credentials": {
                "aws_access_key_id": "env:BENCH_AWS_ID",
                "aws_secret_access_key": "env:BENCH_AWS_SECRET",
            },
            "options": {"region": d.AWS_REGION},
        }
    elif target.provider == "uipath":
        block |= {
            "base_url": urls["uipath"],
            "credentials": {
                "client_id": "env:BENCH_UIPATH_ID",
                "client_secret": "env:BENCH_UIPATH_SECRET",
            },
            "options": {"partition_global_id": d.UIPATH_PARTITION_GLOBAL_ID},
        }
    elif target.provider == "commercelayer":
        block |= {
            "base_url": urls["commercelayer"],
            "credentials": {"client_id": "env:BENCH_CL_ID", "client_secret": "env:BENCH_CL_SECRET"},
            "options": {"auth_url": urls["commercelayer_auth"]},
        }
    else:
        block |= {
            "base_url": urls["ciphertrust"],
            "credentials": {"username": "env:BENCH_CT_USER", "password": "env:BENCH_CT_PASSWORD"},
            "options": {"strategy": "in-place"},
        }
    return block


def write_targets(path: Path, targets: Sequence[Target], sandbox_url: str) -> None:
    """The targets file, one flow mapping (JSON is YAML) per line: fast to write and read."""
    urls = d.base_urls(sandbox_url)
    lines = ["# Written by tools.bench_incident", "secrets:"]
    lines += [f"  incident-{p}: {json.dumps(spec)}" for p, spec in SECRETS.items()]
    lines.append("targets:")
    lines += [f"  {t.name}: {json.dumps(target_block(t, urls))}" for t in targets]
    path.write_text("\n".join(lines) + "\n")


def seed(sandbox_url: str, targets: Sequence[Target]) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as client:
            limit = asyncio.Semaphore(16)

            async def put(target: Target) -> None:
                async with limit:
                    response = await client.put(target.admin_path, json=target.seed_body())
                    response.raise_for_status()

            await asyncio.gather(*(put(t) for t in targets))

    asyncio.run(run())


def update_times(sandbox_url: str, targets: Sequence[Target]) -> list[float]:
    """When the sandbox applied each API update to these targets' resources (their history)."""

    async def run() -> list[float]:
        async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as client:
            limit = asyncio.Semaphore(16)

            async def get(target: Target) -> list[float]:
                async with limit:
                    response = await client.get(target.admin_path)
                    response.raise_for_status()
                    history = response.json()["history"]
                    return [float(h["at"]) for h in history if h["by"] == "api"]

            found = await asyncio.gather(*(get(t) for t in targets))
            return [at for times in found for at in times]

    return asyncio.run(run())


# ---------------------------------------------------------------------------------------------
# The limit-bound minimum
# ---------------------------------------------------------------------------------------------


def earliest_last_send(count: int, windows: Sequence[tuple[float, int]]) -> float:
    """When the last of ``count`` requests can go at the earliest, every request sent as soon
    as each sliding window (seconds, limit) has room, the first at 0."""
    times: list[float] = []
    for k in range(count):
        at = 0.0
        for span, limit in windows:
            if k >= limit:
                at = max(at, times[k - limit] + span)
        times.append(at)
    return times[-1] if times else 0.0


def commercelayer_minimum(rotations: int, latency_s: float) -> dict[str, float]:
    """The theoretical minimum time for ``rotations`` Commerce Layer rotations (docstring)."""
    from rotator.plan.budget import COSTS, LIMITED

    limits, costs = LIMITED["commercelayer"], COSTS["commercelayer"]
    bounds = {
        kind: earliest_last_send(rotations * cost, limits[kind]) for kind, cost in costs.items()
    }
    # token + 2 reads before the first PATCH, the PATCH and the verifying read after the last
    overhead = 5 * latency_s if rotations else 0.0
    return {
        **{f"{k}_bound_s": v for k, v in bounds.items()},
        "overhead_s": overhead,
        "minimum_s": max(bounds.values(), default=0.0) + overhead,
    }


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class IncidentOptions:
    targets: int
    latency_ms: int
    workers: int
    concurrency: int
    worker_env: dict[str, str]
    timeout: float | None


@dataclass
class ProviderResult:
    targets: int
    states: dict[str, int]
    done_s: float  # incident start -> the provider's last job's last event
    enqueued_s: float  # incident start -> the provider's last job enqueued
    first_start_s: float  # incident start -> the provider's first job started
    requests: int
    tokens_minted: int
    peaks: dict[str, float | int] = field(default_factory=dict)  # "10s"/"60s" -> all requests


@dataclass
class IncidentResult:
    targets: int
    latency_ms: int
    workers: int
    total_s: float
    enqueue_s: float  # incident start -> the last job enqueued (the spread included)
    states: dict[str, int]
    providers: dict[str, ProviderResult]
    limited_windows: list[dict[str, Any]]  # every documented window: peak vs limit
    responses_429: int
    faults_injected: dict[str, int]
    worker_cpu_s: float
    commercelayer: dict[str, float]
    within_limits: bool


def _env(
    redis_url: str,
    prefix: str,
    targets_file: Path,
    workdir: Path,
    sandbox_url: str,
    opts: IncidentOptions,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env.update(
        {
            "ROTATOR_REDIS_URL": redis_url,
            "ROTATOR_KEY_PREFIX": prefix,
            "ROTATOR_QUEUE": queue_for(prefix),
            "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
            "ROTATOR_AUDIT_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
            "ROTATOR_TARGETS_FILE": str(targets_file),
            "ROTATOR_STATE_DIR": str(workdir / "state"),
            "ROTATOR_INSECURE_HOSTS": insecure_entry(sandbox_url),
            "ROTATOR_LOG_LEVEL": "WARNING",
            "ROTATOR_WORKER_CONCURRENCY": str(opts.concurrency),
            "ROTATOR_DISPATCH_INTERVAL": "1",
        }
    )
    env.update(sandbox_credentials("BENCH"))
    env.update(opts.worker_env)
    return env


def run_incident(opts: IncidentOptions, rinfo: RedisInfo, workdir: Path) -> IncidentResult:
    from rotator.config import load_settings
    from rotator.runtime import ConfigHolder, Runtime

    targets = plan_targets(opts.targets)
    per_provider = Counter(t.provider for t in targets)
    latency = opts.latency_ms / 1000
    minimum = commercelayer_minimum(per_provider["commercelayer"], latency)
    timeout = opts.timeout or max(300.0, 2 * minimum["minimum_s"] + opts.targets / 20)
    sandbox = SandboxProcess(workdir)
    prefix = f"rotator-bench-inc:{uuid.uuid4().hex[:10]}:"
    sync_client = rinfo.client()
    workers: list[Proc] = []
    try:
        sandbox.start()
        console.print(f"seeding {len(targets)} resources over {len(PROVIDERS)} providers")
        seed(sandbox.url, targets)
        if opts.latency_ms > 0:
            rule = {"provider": "*", "kind": "latency", "ms": opts.latency_ms}
            sandbox.admin.put("/_sandbox/faults", json={"rules": [rule]}).raise_for_status()
        targets_file = workdir / "incident.yaml"
        write_targets(targets_file, targets, sandbox.url)
        env = _env(rinfo.url, prefix, targets_file, workdir, sandbox.url, opts)
        queue = env["ROTATOR_QUEUE"]
        app = publisher(rinfo.broker_url, kombu_prefix_for(prefix))
        workers = [
            Proc(
                f"incident-worker-{i}",
                [sys.executable, "-m", "rotator", "worker", "--concurrency", str(opts.concurrency)]
                + ["--loglevel", "WARNING"],
                env,
                workdir,
            ).start()
            for i in range(opts.workers)
        ]
        wait_for_workers(app, opts.workers, workers)
        settings = load_settings(
            **{
                k.removeprefix("ROTATOR_").lower(): v
                for k, v in env.items()
                if k.startswith("ROTATOR_")
            }
        )
        cpu0 = sum(tree_cpu_seconds(w.pid) for w in workers)
        spread = ", ".join(f"{p} {n}" for p, n in per_provider.items())
        console.print(
            f"incident: {len(targets)} targets ({spread}), "
            f"{opts.workers} worker(s), sandbox latency {opts.latency_ms} ms; Commerce Layer "
            f"minimum {minimum['minimum_s']:.1f} s"
        )

        async def main() -> tuple[float, float, dict[str, str], dict[str, str]]:
            from rotator import incident as inc

            runtime = Runtime(settings, ConfigHolder(settings))
            try:
                specs = runtime.config.get().targets
                started = time.time()
                names = inc.select(specs, everything=True)
                planned = inc.spread(specs, names, started)
                incident = await inc.open_incident(
                    runtime, planned, operator="bench", selection="all targets", note="bench"
                )
                enqueuing = asyncio.create_task(inc.enqueue_all(runtime, incident, "bench"))
                enqueued_at = await _follow(
                    runtime, app, queue, workers, enqueuing, started, timeout
                )
                providers = {p.target: p.provider for p in planned}
                return started, enqueued_at, dict(incident.jobs), providers
            finally:
                await runtime.aclose()

        started, enqueued_at, jobs, providers = asyncio.run(main())
        worker_cpu = sum(tree_cpu_seconds(w.pid) for w in workers) - cpu0
        stats: dict[str, Any] = sandbox.admin.get("/_sandbox/stats").json()
        patched = update_times(sandbox.url, [t for t in targets if t.provider == "commercelayer"])
        if patched:
            minimum["first_patch_s"] = min(patched) - started
            minimum["last_patch_s"] = max(patched) - started
        return asyncio.run(
            _result(
                opts, settings, started, enqueued_at, jobs, providers, stats, worker_cpu, minimum
            )
        )
    finally:
        for proc in workers:
            proc.stop(timeout=20)
        sandbox.close(timeout=20)
        with contextlib.suppress(redis.RedisError):
            delete_prefix(sync_client, prefix)
        sync_client.close()


async def _follow(
    runtime: Any,
    app: Any,
    queue: str,
    workers: Sequence[Proc],
    enqueuing: asyncio.Task[None],
    started: float,
    within: float,
) -> float:
    """Send ``rotator.dispatch`` every second (beat's job) until the enqueue spread is over and
    no job is due or running; returns when the last job was enqueued."""
    keys = runtime.keys
    deadline = time.monotonic() + within
    enqueued_at = 0.0
    last_dispatch = last_print = 0.0
    while time.monotonic() < deadline:
        for proc in workers:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        if enqueuing.done():
            enqueuing.result()  # an enqueue that failed fails the run
            if not enqueued_at:
                enqueued_at = time.time()
            if await runtime.redis.zcard(keys.due) == 0:
                return enqueued_at
        now = time.monotonic()
        if now - last_dispatch >= 1.0:
            last_dispatch = now
            await asyncio.to_thread(send_all, app, "rotator.dispatch", queue, [[]])
        if now - last_print >= 30.0:
            last_print = now
            created = await runtime.redis.zcard(keys.job_index)
            due = await runtime.redis.zcard(keys.due)
            console.print(
                f"  {time.time() - started:6.0f} s: {created} jobs enqueued, {due} due or running",
                highlight=False,
            )
        await asyncio.sleep(0.2)
    enqueuing.cancel()
    raise RuntimeError(
        f"timed out after {within:.0f}s\n" + "\n".join(w.tail(2000) for w in workers)
    )


async def _result(
    opts: IncidentOptions,
    settings: Any,
    started: float,
    enqueued_at: float,
    jobs: Mapping[str, str],
    providers: Mapping[str, str],
    stats: Mapping[str, Any],
    worker_cpu: float,
    minimum: dict[str, float],
) -> IncidentResult:
    import redis.asyncio as aioredis

    from rotator.store.keys import Keys

    await asyncio.sleep(0.5)  # a job's last audit event is written just after it leaves the due set
    client = aioredis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.key_prefix)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for job_id in jobs.values():
                pipe.hget(keys.job(job_id), "state")
            raw = await pipe.execute()
        spans = await _read_audit(client, keys.audit, started - 1, set(jobs.values()))
    finally:
        await client.aclose()
    state_of = {t: (s or b"?").decode() for t, s in zip(jobs, raw, strict=True)}
    by_provider: dict[str, list[str]] = defaultdict(list)
    for target, provider in providers.items():
        by_provider[provider].append(target)
    windows_all = stats.get("request_windows", {})
    out: dict[str, ProviderResult] = {}
    for provider in PROVIDERS:
        names = by_provider.get(provider, [])
        own = [spans[jobs[t]] for t in names if t in jobs and jobs[t] in spans]
        ends = [span.last for span in own]
        enqueued = [span.enqueued for span in own if span.enqueued is not None]
        starts = [span.started for span in own if span.started is not None]
        seen = windows_all.get(provider, {"windows": []})
        out[provider] = ProviderResult(
            targets=len(names),
            states=dict(Counter(state_of.get(t, "not enqueued") for t in names)),
            done_s=(max(ends) - started) if ends else float("nan"),
            enqueued_s=(max(enqueued) - started) if enqueued else float("nan"),
            first_start_s=(min(starts) - started) if starts else float("nan"),
            requests=int(stats["requests"].get(provider, 0)),
            tokens_minted=int(stats["tokens_minted"].get(provider, 0)),
            peaks={f"{w['seconds']:g}s": w["peak"] for w in seen["windows"]},
        )
    limited_windows = [
        {
            "provider": provider,
            "endpoint": name,
            "requests": v["requests"],
            "limited": v["limited"],
            **w,
        }
        for provider, endpoints in stats.get("rate_windows", {}).items()
        for name, v in endpoints.items()
        for w in v["windows"]
    ]
    own_429 = sum(
        v["limited"]
        for endpoints in stats.get("rate_windows", {}).values()
        for v in endpoints.values()
    )
    injected = dict(stats.get("faults_injected", {}))
    within = own_429 == 0 and all(w["peak"] <= w["limit"] for w in limited_windows)
    ends_all = [s.last for s in spans.values()]
    cl_done = out["commercelayer"].done_s
    commercelayer = dict(minimum)
    if out["commercelayer"].targets:
        commercelayer["measured_s"] = cl_done
        if minimum["minimum_s"] > 0:
            commercelayer["ratio"] = cl_done / minimum["minimum_s"]
    return IncidentResult(
        targets=len(providers),
        latency_ms=opts.latency_ms,
        workers=opts.workers,
        total_s=(max(ends_all) - started) if ends_all else float("nan"),
        enqueue_s=enqueued_at - started,
        states=dict(Counter(state_of.values())),
        providers=out,
        limited_windows=limited_windows,
        responses_429=own_429 + int(injected.get("rate_limit", 0)),
        faults_injected=injected,
        worker_cpu_s=worker_cpu,
        commercelayer=commercelayer,
        within_limits=within,
    )


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def print_incident(result: IncidentResult) -> None:
    states = ", ".join(f"{k} {v}" for k, v in sorted(result.states.items()))
    console.print(
        f"incident of {result.targets} targets: every job ended in {result.total_s:.1f} s "
        f"({states}); the last job was enqueued at {result.enqueue_s:.1f} s; "
        f"worker CPU {result.worker_cpu_s:.1f} s",
        highlight=False,
    )
    table = Table(
        title=f"per provider ({result.workers} worker(s), sandbox latency {result.latency_ms} ms)"
    )
    for column in (
        "provider",
        "targets",
        "first start (s)",
        "all enqueued (s)",
        "done after (s)",
        "states",
        "requests",
        "tokens",
        "peak / 10 s",
        "peak / 60 s",
        "documented limit",
    ):
        table.add_column(column, justify="left" if column in ("provider", "states") else "right")
    for provider, p in result.providers.items():
        documented = "see below" if provider == "commercelayer" else "none documented"
        table.add_row(
            provider,
            str(p.targets),
            f"{p.first_start_s:.1f}",
            f"{p.enqueued_s:.1f}",
            f"{p.done_s:.1f}",
            ", ".join(f"{k} {v}" for k, v in sorted(p.states.items())),
            str(p.requests),
            str(p.tokens_minted),
            str(p.peaks.get("10s", "-")),
            str(p.peaks.get("60s", "-")),
            documented,
        )
    console.print(table)
    limits = Table(title="documented limits: peak in any sliding window, as the sandbox counted")
    for column in ("provider", "endpoint", "window (s)", "peak", "limit", "429s", "ok"):
        limits.add_column(column, justify="left" if column in ("provider", "endpoint") else "right")
    for w in result.limited_windows:
        limits.add_row(
            w["provider"],
            w["endpoint"],
            f"{w['seconds']:g}",
            str(w["peak"]),
            str(w["limit"]),
            str(w["limited"]),
            "yes" if w["peak"] <= w["limit"] and not w["limited"] else "NO",
        )
    console.print(limits)
    verdict = (
        "no documented limit exceeded"
        if result.within_limits
        else "A DOCUMENTED LIMIT WAS EXCEEDED"
    )
    console.print(
        f"{verdict}; 429s answered: {result.responses_429} "
        f"(faults injected: {result.faults_injected or 'latency only'})",
        highlight=False,
    )
    cl = result.commercelayer
    if "ratio" in cl:
        console.print(
            f"Commerce Layer: {result.providers['commercelayer'].targets} rotations; minimum "
            f"{cl['minimum_s']:.1f} s (writes {cl['write_bound_s']:.1f} s, reads "
            f"{cl['read_bound_s']:.1f} s under the documented windows, + {cl['overhead_s']:.2f} s "
            f"of latency); measured {cl['measured_s']:.1f} s; measured / minimum "
            f"{cl['ratio']:.3f} (target <= 1.10)",
            highlight=False,
        )
    if "last_patch_s" in cl:
        console.print(
            f"Commerce Layer PATCHes applied from {cl['first_patch_s']:.1f} s to "
            f"{cl['last_patch_s']:.1f} s (the documented windows allow the last at "
            f"{cl['write_bound_s']:.1f} s)",
            highlight=False,
        )


def incident_main(
    opts: IncidentOptions, rinfo: RedisInfo, workdir: Path, json_out: Path | None
) -> int:
    result = run_incident(opts, rinfo, workdir)
    print_incident(result)
    if json_out is not None:
        json_out.write_text(json.dumps({"incident": asdict(result)}, indent=2, default=str) + "\n")
    return 0 if result.within_limits else 1
