"""Rotation benchmark: rotator against a hand-written Celery task and an asyncio peer.

    python -m tools.bench [--rotations 2000] [--targets N] [--latency-ms 50] [--workers 1]
                            [--concurrency 64] [--baseline/--no-baseline] [--repeat 1]
                            [--asyncio-peer/--no-asyncio-peer] [--in-flight 32] [--incident N]
                            [--embedded | --redis-url URL] [--enqueue api|dispatch]
                            [--delivery-batch 32] [--worker-env KEY=VALUE ...]
                            [--profile DIR] [--json-out FILE] [--scheduled N]

What runs where: the provider sandbox in its own process (its CPU is never the worker's), a
Redis (the shared one at 127.0.0.1:6379 database 12 under a unique key prefix, or a private
embedded one with ``--embedded``), and ``python -m rotator worker`` process(es). The benchmark
seeds one Adobe connection per target, writes a targets file, warms the workers up (Celery
start, IMS token, HTTP connections) and then, per repeat:

* enqueues one on-demand rotation per target with ``Runtime.enqueue`` in this process and hands
  the job ids to Celery the way the dispatcher does (``--enqueue api``, the default), or marks
  every target due in the schedule and sends ``rotator.dispatch`` messages as beat would, so
  the worker creates the jobs itself (``--enqueue dispatch``);
* waits until every job has ended, and measures: throughput (first ``job.started`` to the last
  event of the last job in the audit stream), worker CPU per rotation (utime + stime of the
  worker process trees from ``/proc``), provider calls per rotation (sandbox stats), Redis
  commands and Redis CPU per rotation (private Redis only: ``INFO commandstats`` counts every
  client, and commands run inside Lua scripts too), sandbox CPU, peak RSS (VmHWM), latency.
  ``--profile DIR`` samples the workers with py-spy (if installed) and prints where their CPU
  goes; profiled repeats run slower, so take throughput from unprofiled ones.

The baseline (``tools.bench_baseline``: one Celery task per rotation, threads pool, one pooled
``httpx.Client``, cached token, GET + PATCH If-Match + GET) and the asyncio peer
(``tools.bench_asyncio``: the same rotation with no Celery, ``--in-flight`` 32 per process, one
pooled ``httpx.AsyncClient``, cached token, work fed on stdin) are measured the same way, and a
rich table prints the three side by side with rotator's ratio to each: next to the Celery task
it shows the framework's cost, next to the asyncio peer the cost of rotator's safety work
(journal, leases, audit, encryption). ``--no-baseline`` / ``--no-asyncio-peer`` skip a peer.
``--scheduled N`` instead loads N targets into the schedule set and times claims per batch at
several set sizes, full dispatch batches, and Redis memory per target. ``--incident N`` runs
the incident benchmark instead (``tools.bench_incident``).

Figures are printed, never asserted. Only this run's keys are deleted afterwards (SCAN +
UNLINK on its prefix), never a whole database; only processes this run started are stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from cryptography.fernet import Fernet
from rich.console import Console
from rich.table import Table

from rotator import celeryconfig, embedded
from rotator.dispatch import DELIVERY_BATCH
from rotator.sandbox import defaults
from rotator.urlpolicy import insecure_entry
from tools.common import (
    Proc,
    SandboxProcess,
    delete_prefix,
    kombu_prefix_for,
    queue_for,
    sandbox_credentials,
    with_tools_path,
)

console = Console(width=None if sys.stdout.isatty() else 132)

SHARED_REDIS = "redis://127.0.0.1:6379/12"
SECRET_NAME = "bench-login"  # noqa: S105 - a secret's name, not a value
# The worker environment gets every sandbox credential (tools.common.sandbox_credentials).
CLIENT_ID_VAR = "BENCH_ADOBE_ID"
CLIENT_SECRET_VAR = "BENCH_ADOBE_SECRET"  # noqa: S105 - an environment variable name
_CLK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields_ = _stat_fields(int(entry.name))
            if fields_ is not None:
                children[int(fields_[1])].append(int(entry.name))
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of a process and its live descendants (plus children it reaped)."""
    total = 0
    fields_ = _stat_fields(root)
    if fields_ is not None:
        total += sum(int(x) for x in fields_[11:15])  # utime stime cutime cstime
    for pid in _descendants(root):
        sub = _stat_fields(pid)
        if sub is not None:
            total += int(sub[11]) + int(sub[12])
    return total / _CLK


def tree_peak_rss_bytes(root: int) -> int:
    total = 0
    for pid in [root, *_descendants(root)]:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


# ---------------------------------------------------------------------------------------------
# Sandbox and Redis
# ---------------------------------------------------------------------------------------------


class Sandbox(SandboxProcess):
    """The sandbox with what the benchmark adds: Adobe latency, call counts, bulk seeding."""

    def set_latency(self, ms: int) -> None:
        if ms > 0:
            rule = {"provider": "adobe", "kind": "latency", "ms": ms}
            self.admin.put("/_sandbox/faults", json={"rules": [rule]}).raise_for_status()
        else:
            self.admin.delete("/_sandbox/faults").raise_for_status()

    def stats(self) -> dict[str, Any]:
        body: dict[str, Any] = self.admin.get("/_sandbox/stats").json()
        return body

    def seed(self, resource_ids: Sequence[str]) -> None:
        async def run() -> None:
            async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
                limit = asyncio.Semaphore(16)

                async def put(rid: str) -> None:
                    async with limit:
                        response = await client.put(
                            f"/_sandbox/adobe/resources/{rid}",
                            json={
                                "auth": {
                                    "specName": "Basic Authentication",
                                    "params": {"username": "etl@example.com", "password": "x"},
                                }
                            },
                        )
                        response.raise_for_status()

                await asyncio.gather(*(put(r) for r in resource_ids))

        asyncio.run(run())


@dataclass
class RedisInfo:
    url: str
    private: bool
    embedded_dir: Path | None = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    @property
    def broker_url(self) -> str:
        return embedded.broker_url_for(self.url)


def snapshot_redis(client: redis.Redis) -> tuple[dict[str, int], float]:
    """Per-command call counts and the server's CPU seconds (meaningful on a private Redis)."""
    stats: dict[str, Any] = client.info("commandstats")
    cpu: dict[str, Any] = client.info("cpu")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    return calls, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


# ---------------------------------------------------------------------------------------------
# Targets file
# ---------------------------------------------------------------------------------------------


def write_targets(
    path: Path,
    names: Sequence[str],
    sandbox_url: str,
    *,
    scheduled: Callable[[str], bool] = lambda _: False,
) -> None:
    urls = defaults.base_urls(sandbox_url)
    lines = [
        "# Written by tools.bench",
        "secrets:",
        f"  {SECRET_NAME}: {{source: generate, field: password, length: 24, "
        'static: {username: "etl@example.com"}}',
        "targets:",
    ]
    for name in names:
        lines.append(
            f"  {name}: {{provider: adobe, base_url: {urls['adobe']}, resource_id: {name}, "
            f"secret: {SECRET_NAME}, "
            + ("schedule: 30d, " if scheduled(name) else "")
            + f"credentials: {{client_id: 'env:{CLIENT_ID_VAR}', "
            f"client_secret: 'env:{CLIENT_SECRET_VAR}'}}, "
            f"options: {{ims_url: '{urls['adobe_ims']}', org_id: '{defaults.ADOBE_ORG_ID}', "
            f"updated_client: '{defaults.ADOBE_CLIENT_NAME}'}}}}"
        )
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    system: str
    repeat: int
    requested: int
    completed: int
    states: dict[str, int]
    window_s: float  # first rotation start -> last completion
    throughput: float  # completed / window
    wall_s: float  # first message sent -> everything ended (as polled)
    worker_cpu_s: float
    cpu_ms_per_rotation: float
    worker_cpu_util: float  # worker CPU seconds per wall second of the window
    peak_rss_mb: float
    provider_calls_per_rotation: float
    token_mints: int
    sandbox_cpu_ms_per_rotation: float
    latency_p50_ms: float
    latency_p95_ms: float
    redis_commands_per_rotation: float | None = None
    redis_scripts_per_rotation: float | None = None
    redis_cpu_ms_per_rotation: float | None = None
    redis_top: dict[str, float] = field(default_factory=dict)
    audit_events_per_rotation: float | None = None
    enqueue_s: float | None = None
    enqueue_cpu_ms_per_rotation: float | None = None  # this process, Runtime.enqueue path
    profile: dict[str, Any] | None = None


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Meter:
    """Before/after snapshots of everything but the run-specific records."""

    def __init__(
        self, worker_pids: Sequence[int], sandbox: Sandbox, rinfo: RedisInfo, rclient: redis.Redis
    ) -> None:
        self.worker_pids = list(worker_pids)
        self.sandbox = sandbox
        self.rinfo = rinfo
        self.rclient = rclient

    def snap(self) -> dict[str, Any]:
        stats = self.sandbox.stats()
        snap: dict[str, Any] = {
            "cpu": sum(tree_cpu_seconds(p) for p in self.worker_pids),
            "sandbox_cpu": tree_cpu_seconds(self.sandbox.proc.pid),
            "requests": int(stats["requests"]["adobe"]),
            "mints": int(stats["tokens_minted"]["adobe"]),
        }
        if self.rinfo.private:
            snap["redis_calls"], snap["redis_cpu"] = snapshot_redis(self.rclient)
        return snap

    def fill(self, before: Mapping[str, Any], after: Mapping[str, Any], n: int) -> dict[str, Any]:
        n = max(1, n)
        cpu = after["cpu"] - before["cpu"]
        out: dict[str, Any] = {
            "worker_cpu_s": cpu,
            "cpu_ms_per_rotation": cpu * 1000 / n,
            "peak_rss_mb": sum(tree_peak_rss_bytes(p) for p in self.worker_pids) / 2**20,
            "provider_calls_per_rotation": (after["requests"] - before["requests"]) / n,
            "token_mints": after["mints"] - before["mints"],
            "sandbox_cpu_ms_per_rotation": (after["sandbox_cpu"] - before["sandbox_cpu"])
            * 1000
            / n,
        }
        if self.rinfo.private:
            calls: Counter[str] = Counter(after["redis_calls"])
            calls.subtract(before["redis_calls"])
            for own in ("info",):  # the meter's own INFO calls
                calls.pop(own, None)
            total = sum(v for v in calls.values() if v > 0)
            scripts = sum(v for k, v in calls.items() if k.startswith("eval"))
            out["redis_commands_per_rotation"] = total / n
            out["redis_scripts_per_rotation"] = scripts / n
            out["redis_cpu_ms_per_rotation"] = (after["redis_cpu"] - before["redis_cpu"]) * 1000 / n
            out["redis_top"] = {k: round(v / n, 2) for k, v in calls.most_common(12) if v > 0}
        return out


class Profiler:
    """py-spy on the worker processes while a repeat runs (if py-spy is installed)."""

    def __init__(self, directory: Path | None, label: str, pids: Sequence[int]) -> None:
        self.outputs: list[Path] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        if directory is None:
            return
        exe = Path(sys.executable).with_name("py-spy")
        if not exe.exists():
            console.print("[yellow]py-spy not found next to the interpreter: no profile[/]")
            return
        directory.mkdir(parents=True, exist_ok=True)
        for index, pid in enumerate(pids):
            out = directory / f"{label}-{index}.txt"
            self.outputs.append(out)
            self._procs.append(
                subprocess.Popen(  # noqa: S603 - py-spy from our own virtualenv
                    [str(exe), "record", "--pid", str(pid), "--rate", "200", "--nonblocking"]
                    + ["--format", "raw", "--output", str(out)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(0.5)  # let py-spy attach before the measured work starts

    def stop(self) -> dict[str, Any] | None:
        if not self._procs:
            return None
        for proc in self._procs:
            proc.send_signal(signal.SIGINT)
        for proc in self._procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        return summarize_profile([p for p in self.outputs if p.exists()])


# Coarse buckets for "where does the CPU go", checked in order against each frame's file.
_BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("audit (rotator.audit/store.audit)", ("rotator/audit/", "rotator/store/audit.py")),
    ("store (rotator.store)", ("rotator/store/",)),
    (
        "engine (rotator.engine)",
        ("rotator/engine.py", "rotator/attempt.py", "rotator/retry.py", "rotator/resolve.py"),
    ),
    ("providers (rotator.providers)", ("rotator/providers/",)),
    ("crypto (cryptography/hmac)", ("cryptography/", "hmac.py", "rotator/crypto.py")),
    ("secret sources", ("rotator/sources/",)),
    ("config (pydantic/yaml)", ("rotator/config.py", "pydantic", "yaml/")),
    ("redis client", ("redis/",)),
    ("http client (httpx/httpcore/h11)", ("httpx/", "httpcore/", "h11/")),
    ("celery/kombu", ("celery/", "kombu/", "billiard/", "vine/", "amqp/")),
    ("structlog/logging", ("structlog/", "logging/")),
    ("json", ("json/",)),
    ("asyncio/ssl/socket", ("asyncio/", "selectors.py", "ssl.py", "socket.py")),
    ("threading/queue", ("threading.py", "queue.py", "concurrent/")),
)


def _bucket(frame: str) -> str | None:
    for name, needles in _BUCKETS:
        if any(n in frame for n in needles):
            return name
    return None


def summarize_profile(paths: Sequence[Path]) -> dict[str, Any]:
    """Self time per function, and the innermost bucket (library, or rotator module) per
    sample, from py-spy's collapsed stacks."""
    self_time: Counter[str] = Counter()
    leaf_bucket: Counter[str] = Counter()
    inclusive_bucket: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            frames = stack.split(";")
            self_time[frames[-1]] += count
            leaf = next((b for f in reversed(frames) if (b := _bucket(f)) is not None), "other")
            leaf_bucket[leaf] += count
            for name in {b for f in frames if (b := _bucket(f)) is not None}:
                inclusive_bucket[name] += count
    pct = 100.0 / max(1, total)
    return {
        "samples": total,
        "leaf_buckets_pct": {k: round(v * pct, 1) for k, v in leaf_bucket.most_common()},
        "inclusive_buckets_pct": {k: round(v * pct, 1) for k, v in inclusive_bucket.most_common()},
        "top_self_pct": {k: round(v * pct, 2) for k, v in self_time.most_common(25)},
    }


# ---------------------------------------------------------------------------------------------
# Celery publishing
# ---------------------------------------------------------------------------------------------


def publisher(broker_url: str, kombu_prefix: str) -> Any:
    """A Celery app that only publishes, configured like the workers' (celeryconfig)."""
    from celery import Celery

    app = Celery("rotator-bench", set_as_current=False)
    app.config_from_object(celeryconfig)
    options: dict[str, Any] = dict(celeryconfig.broker_transport_options)
    if broker_url.startswith(("redis", "rediss", "unix")):
        options["global_keyprefix"] = kombu_prefix
    app.conf.update(broker_url=broker_url, broker_transport_options=options)
    return app


def send_all(app: Any, name: str, queue: str, arg_lists: Sequence[list[Any]]) -> None:
    with app.producer_or_acquire() as producer:
        for args in arg_lists:
            app.send_task(name, args=args, queue=queue, producer=producer)


def wait_for_workers(app: Any, count: int, procs: Sequence[Proc], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        replies = app.control.ping(timeout=0.5) or []
        if len(replies) >= count:
            return
    raise RuntimeError("workers did not come up:\n" + "\n".join(p.tail(1500) for p in procs))


# ---------------------------------------------------------------------------------------------
# rotator
# ---------------------------------------------------------------------------------------------


@dataclass
class Options:
    rotations: int
    targets: int
    latency_ms: int
    workers: int
    concurrency: int
    baseline: bool
    asyncio_peer: bool
    in_flight: int
    repeat: int
    warmup: int
    enqueue: str
    delivery_batch: int
    worker_env: dict[str, str]
    profile: Path | None
    timeout: float


def rotator_env(
    rinfo: RedisInfo,
    prefix: str,
    targets_file: Path,
    state_dir: Path,
    opts: Options,
    sandbox_url: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env.update(
        {
            "ROTATOR_REDIS_URL": rinfo.url,
            "ROTATOR_KEY_PREFIX": prefix,
            "ROTATOR_QUEUE": queue_for(prefix),
            "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
            "ROTATOR_AUDIT_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
            "ROTATOR_TARGETS_FILE": str(targets_file),
            "ROTATOR_STATE_DIR": str(state_dir),
            "ROTATOR_INSECURE_HOSTS": insecure_entry(sandbox_url),
            "ROTATOR_LOG_LEVEL": "WARNING",
            "ROTATOR_WORKER_CONCURRENCY": str(opts.concurrency),
            "ROTATOR_DISPATCH_INTERVAL": "1",
            "ROTATOR_LEASE_TTL": "120",
        }
    )
    env.update(sandbox_credentials("BENCH"))
    env.update(opts.worker_env)
    return env


@dataclass
class JobSpan:
    started: float | None = None  # first job.started
    last: float = 0.0  # the job's last event (its terminal one once it ended)
    events: int = 0
    enqueued: float | None = None  # job.enqueued


async def _read_audit(
    client: Any, key: str, since: float, jobs: set[str] | None
) -> dict[str, JobSpan]:
    """Per job: when it first started and when its last event was written, from the audit
    stream entries stored since ``since`` (unix time). Event names other than ``job.started``
    are not relied on, so the figures survive renamed terminal events."""
    spans: dict[str, JobSpan] = defaultdict(JobSpan)
    start = f"{int(since * 1000)}-0"
    while True:
        batch = await client.xrange(key, min=start, max="+", count=5000)
        for _stream_id, fields_ in batch:
            data = json.loads(fields_[b"event"])
            job_id = data.get("job_id")
            if not job_id or (jobs is not None and job_id not in jobs):
                continue
            span, at = spans[job_id], float(data["time"])
            span.events += 1
            span.last = max(span.last, at)
            if data.get("event") == "job.started" and (span.started is None or at < span.started):
                span.started = at
            elif data.get("event") == "job.enqueued":
                span.enqueued = at
        if len(batch) < 5000:
            break
        ms, _, seq = batch[-1][0].decode().partition("-")
        start = f"{ms}-{int(seq) + 1}"
    return spans


class _RotatorDriver:
    """Feeds rotator's workers from this process the way the API and the dispatcher do."""

    def __init__(
        self, runtime: Any, app: Any, queue: str, workers: Sequence[Proc], opts: Options
    ) -> None:
        self.runtime = runtime
        self.app = app
        self.queue = queue
        self.workers = workers
        self.opts = opts
        self.keys = runtime.keys

    async def enqueue(self, targets: Sequence[str]) -> list[str]:
        # Fewer in flight than the Runtime's Redis pool holds: redis.asyncio raises
        # MaxConnectionsError instead of waiting for a free connection.
        limit = asyncio.Semaphore(48)

        async def one(target: str) -> str:
            async with limit:
                job_id, _ = await self.runtime.enqueue(target, actor="bench", note="bench")
                return str(job_id)

        return list(await asyncio.gather(*(one(t) for t in targets)))

    async def deliver(self, batch: int) -> int:
        lease_ttl = self.runtime.settings.lease_ttl
        ids = await self.runtime.store.claim_due_jobs(time.time(), 1_000_000, lease_ttl)
        send_all(
            self.app,
            "rotator.rotate",
            self.queue,
            [[ids[i : i + batch]] for i in range(0, len(ids), batch)],
        )
        return len(ids)

    def _check_workers(self) -> None:
        for proc in self.workers:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")

    async def wait_done(self, expected: int, since: float, dispatch: bool) -> float:
        """Wait until ``expected`` jobs were created since ``since`` and none is due or
        running; keep delivering retries (and, in dispatch mode, dispatching) like beat."""
        redis_ = self.runtime.redis
        deadline = time.monotonic() + self.opts.timeout
        last_tick = 0.0
        while time.monotonic() < deadline:
            self._check_workers()
            created = await redis_.zcount(self.keys.job_index, since, "+inf")
            due = await redis_.zcard(self.keys.due)
            if created >= expected and due == 0:
                return time.time()
            if time.monotonic() - last_tick >= 1.0:
                last_tick = time.monotonic()
                if dispatch:
                    send_all(self.app, "rotator.dispatch", self.queue, [[]])
                else:
                    await self.deliver(self.opts.delivery_batch)
            await asyncio.sleep(0.2)
        raise RuntimeError(
            f"timed out after {self.opts.timeout:.0f}s waiting for rotations\n"
            + "\n".join(w.tail(2000) for w in self.workers)
        )

    async def measure(self, repeat: int, names: Sequence[str], meter: Meter) -> RunResult:
        """One repeat: every target in ``names`` rotated once, measured."""
        opts, redis_ = self.opts, self.runtime.redis
        dispatch = opts.enqueue == "dispatch"
        if dispatch and repeat > 0:
            await redis_.zadd(self.keys.schedule, dict.fromkeys(names, time.time() - 1), xx=True)
        profiler = Profiler(opts.profile, f"rotator-r{repeat}", meter.worker_pids)
        before = meter.snap()
        started = time.time()
        enqueue_s = enqueue_cpu = None
        if dispatch:
            sent = time.time()
            send_all(self.app, "rotator.dispatch", self.queue, [[]])
        else:
            cpu0 = time.process_time()
            ids = await self.enqueue(names)
            enqueue_s = time.time() - started
            enqueue_cpu = (time.process_time() - cpu0) * 1000 / len(names)
            sent = time.time()
            await self.deliver(opts.delivery_batch)
        done = await self.wait_done(len(names), started - 0.001, dispatch)
        # A job's last audit event is written just after it leaves the due set.
        await asyncio.sleep(0.25)
        after = meter.snap()
        profile = profiler.stop()
        if dispatch:
            raw_ids = await redis_.zrangebyscore(self.keys.job_index, started - 0.001, "+inf")
            ids = [i.decode() if isinstance(i, bytes) else str(i) for i in raw_ids]
        result = await _rotator_result(
            self.runtime, meter, before, after, ids, started, sent, done, repeat
        )
        result.enqueue_s = enqueue_s
        result.enqueue_cpu_ms_per_rotation = enqueue_cpu
        result.profile = profile
        return result


def run_rotator(
    opts: Options,
    rinfo: RedisInfo,
    sandbox: Sandbox,
    workdir: Path,
    all_names: Sequence[str],
    names: Sequence[str],
) -> list[RunResult]:
    """rotator's workers; ``names`` (a prefix of ``all_names``) are rotated in every repeat."""
    from rotator.config import load_settings
    from rotator.runtime import ConfigHolder, Runtime

    prefix = f"rotator-bench:{uuid.uuid4().hex[:10]}:"
    warm = [f"warm-{i:04d}" for i in range(opts.warmup)]
    targets_file = workdir / "rotator.yaml"
    measured = set(names)
    write_targets(
        targets_file,
        [*warm, *all_names],
        sandbox.url,
        scheduled=(lambda n: n in measured) if opts.enqueue == "dispatch" else (lambda _: False),
    )
    env = rotator_env(rinfo, prefix, targets_file, workdir / "state", opts, sandbox.url)
    queue = env["ROTATOR_QUEUE"]
    sync_client = rinfo.client()
    app = publisher(rinfo.broker_url, kombu_prefix_for(prefix))
    workers = [
        Proc(
            f"rotator-worker-{i}",
            [sys.executable, "-m", "rotator", "worker", "--concurrency", str(opts.concurrency)]
            + ["--loglevel", "WARNING"],
            env,
            workdir,
        ).start()
        for i in range(opts.workers)
    ]
    results: list[RunResult] = []
    try:
        wait_for_workers(app, opts.workers, workers)
        settings = load_settings(
            **{
                k.removeprefix("ROTATOR_").lower(): v
                for k, v in env.items()
                if k.startswith("ROTATOR_")
            }
        )
        holder = ConfigHolder(settings)
        meter = Meter([w.pid for w in workers], sandbox, rinfo, sync_client)

        async def main() -> None:
            driver = _RotatorDriver(Runtime(settings, holder), app, queue, workers, opts)
            try:
                # Warm-up: Runtime start, IMS token, HTTP and Redis pools in every worker.
                t0 = time.time()
                await driver.enqueue(warm)
                await driver.deliver(1)
                await driver.wait_done(len(warm), t0 - 1, dispatch=False)
                for repeat in range(opts.repeat):
                    results.append(await driver.measure(repeat, names, meter))
                    _progress(results[-1])
            finally:
                await driver.runtime.aclose()

        asyncio.run(main())
    finally:
        for proc in workers:
            proc.stop(timeout=20)
        with contextlib.suppress(redis.RedisError):
            delete_prefix(sync_client, prefix)
        sync_client.close()
    return results


async def _rotator_result(
    runtime: Any,
    meter: Meter,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    ids: Sequence[str],
    started: float,
    sent: float,
    done: float,
    repeat: int,
) -> RunResult:
    keys = runtime.keys
    async with runtime.redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(keys.job(job_id), "state")
        states_raw = await pipe.execute()
    states = Counter((s or b"?").decode() for s in states_raw)
    spans = await _read_audit(runtime.redis, keys.audit, started - 1, set(ids))
    starts = [s.started for s in spans.values() if s.started is not None]
    ends = [s.last for s in spans.values() if s.started is not None]
    latencies = [(s.last - s.started) * 1000 for s in spans.values() if s.started is not None]
    completed = states.get("completed", 0)
    window = (max(ends) - min(starts)) if starts and ends else float("nan")
    n = max(1, completed)
    # Events are written for every attempt; count those of this run's jobs per completion.
    audit_total = sum(s.events for s in spans.values())
    filled = meter.fill(before, after, n)
    return RunResult(
        system="rotator",
        repeat=repeat,
        requested=len(ids),
        completed=completed,
        states=dict(states),
        window_s=window,
        throughput=completed / window if window and window == window else float("nan"),
        wall_s=done - sent,
        worker_cpu_util=filled["worker_cpu_s"] / window if window else float("nan"),
        latency_p50_ms=_pct(latencies, 0.5),
        latency_p95_ms=_pct(latencies, 0.95),
        audit_events_per_rotation=audit_total / n,
        **filled,
    )


# ---------------------------------------------------------------------------------------------
# baseline
# ---------------------------------------------------------------------------------------------


def run_baseline(
    opts: Options, rinfo: RedisInfo, sandbox: Sandbox, workdir: Path, names: Sequence[str]
) -> list[RunResult]:
    from tools import bench_baseline

    prefix = f"rotator-bench-base:{uuid.uuid4().hex[:10]}:"
    queue = queue_for(prefix)
    timings = workdir / "baseline-timings.txt"
    timings.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env.update(
        {
            "BENCH_BASELINE_BROKER_URL": rinfo.broker_url,
            "BENCH_BASELINE_PREFIX": prefix,
            "BENCH_BASELINE_SANDBOX_URL": sandbox.url,
            "BENCH_BASELINE_TIMINGS": str(timings),
        }
    )
    env = with_tools_path(env)
    app = bench_baseline.make_app(rinfo.broker_url, prefix)
    sync_client = rinfo.client()
    workers = [
        Proc(
            f"baseline-worker-{i}",
            [sys.executable, "-m", "celery", "-A", "tools.bench_baseline", "worker"]
            + ["--pool", "threads", "--concurrency", str(opts.concurrency), "--queues", queue]
            + ["--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
            env,
            workdir,
        ).start()
        for i in range(opts.workers)
    ]
    meter = Meter([w.pid for w in workers], sandbox, rinfo, sync_client)
    results: list[RunResult] = []
    try:
        wait_for_workers(app, opts.workers, workers)
        warm = [f"warm-{i:04d}" for i in range(opts.warmup)]
        send_all(app, bench_baseline.TASK_NAME, queue, [[w, "warm"] for w in warm])
        _wait_timings(timings, "warm", len(warm), workers, opts.timeout)
        for repeat in range(opts.repeat):
            tag = f"r{repeat}"
            profiler = Profiler(opts.profile, f"baseline-r{repeat}", meter.worker_pids)
            before = meter.snap()
            sent = time.time()
            send_all(app, bench_baseline.TASK_NAME, queue, [[n, tag] for n in names])
            done = _wait_timings(timings, tag, len(names), workers, opts.timeout)
            after = meter.snap()
            result = _timed_result(
                "baseline", repeat, _timing_rows(timings, tag), len(names), sent, done,
                meter, before, after, profiler.stop(),
            )  # fmt: skip
            results.append(result)
            _progress(result)
    finally:
        for proc in workers:
            proc.stop(timeout=20)
        with contextlib.suppress(redis.RedisError):
            delete_prefix(sync_client, prefix)
        sync_client.close()
    return results


def _timing_rows(path: Path, tag: str) -> list[list[str]]:
    """The peers' timing lines of one tag: ``[tag, start, end, ok|error class]``."""
    return [
        parts for raw in path.read_text().splitlines() if (parts := raw.split()) and parts[0] == tag
    ]


def _wait_timings(
    path: Path, tag: str, expected: int, procs: Sequence[Proc], timeout: float
) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        if len(_timing_rows(path, tag)) >= expected:
            return time.time()
        time.sleep(0.1)
    raise RuntimeError(
        f"{tag} timed out after {timeout:.0f}s\n" + "\n".join(p.tail(2000) for p in procs)
    )


def _timed_result(
    system: str,
    repeat: int,
    rows: Sequence[Sequence[str]],
    requested: int,
    sent: float,
    done: float,
    meter: Meter,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    profile: dict[str, Any] | None,
) -> RunResult:
    """A peer's repeat, measured from its timing lines and the meter's snapshots."""
    ok = [r for r in rows if r[3] == "ok"]
    starts = [float(r[1]) for r in rows]
    ends = [float(r[2]) for r in ok]
    window = (max(ends) - min(starts)) if ends else float("nan")
    filled = meter.fill(before, after, max(1, len(ok)))
    latencies = [(float(r[2]) - float(r[1])) * 1000 for r in ok]
    return RunResult(
        system=system,
        repeat=repeat,
        requested=requested,
        completed=len(ok),
        states=dict(Counter("completed" if r[3] == "ok" else r[3] for r in rows)),
        window_s=window,
        throughput=len(ok) / window if ends else float("nan"),
        wall_s=done - sent,
        worker_cpu_util=filled["worker_cpu_s"] / window if ends else float("nan"),
        latency_p50_ms=_pct(latencies, 0.5),
        latency_p95_ms=_pct(latencies, 0.95),
        profile=profile,
        **filled,
    )


# ---------------------------------------------------------------------------------------------
# asyncio peer
# ---------------------------------------------------------------------------------------------


def run_asyncio_peer(
    opts: Options, rinfo: RedisInfo, sandbox: Sandbox, workdir: Path, names: Sequence[str]
) -> list[RunResult]:
    """``tools.bench_asyncio``: ``opts.workers`` processes, the names dealt round-robin."""
    timings = workdir / "asyncio-timings.txt"
    timings.write_text("")
    env = with_tools_path({k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")})
    procs = [
        Proc(
            f"asyncio-peer-{i}",
            [sys.executable, "-m", "tools.bench_asyncio", sandbox.url, str(timings)]
            + ["--in-flight", str(opts.in_flight)],
            env,
            workdir,
            stdin_pipe=True,
        ).start()
        for i in range(opts.workers)
    ]
    sync_client = rinfo.client()
    meter = Meter([p.pid for p in procs], sandbox, rinfo, sync_client)

    def feed(tag: str, ids: Sequence[str]) -> None:
        for index, proc in enumerate(procs):
            share = ids[index :: len(procs)]
            stdin = proc.popen.stdin if proc.popen is not None else None
            if share and stdin is not None:
                stdin.write(f"{tag} {','.join(share)}\n".encode())
                stdin.flush()

    results: list[RunResult] = []
    try:
        warm = [f"warm-{i:04d}" for i in range(opts.warmup)]
        feed("warm", warm)
        _wait_timings(timings, "warm", len(warm), procs, opts.timeout)
        for repeat in range(opts.repeat):
            tag = f"r{repeat}"
            profiler = Profiler(opts.profile, f"asyncio-r{repeat}", meter.worker_pids)
            before = meter.snap()
            sent = time.time()
            feed(tag, names)
            done = _wait_timings(timings, tag, len(names), procs, opts.timeout)
            after = meter.snap()
            result = _timed_result(
                "asyncio", repeat, _timing_rows(timings, tag), len(names), sent, done,
                meter, before, after, profiler.stop(),
            )  # fmt: skip
            results.append(result)
            _progress(result)
    finally:
        for proc in procs:
            if proc.popen is not None and proc.popen.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.popen.stdin.close()
            proc.stop(timeout=20)
        sync_client.close()
    return results


# ---------------------------------------------------------------------------------------------
# Scheduled targets at scale
# ---------------------------------------------------------------------------------------------


@dataclass
class ScheduledResult:
    targets: int
    batch: int
    targets_file_mb: float
    config_load_s: float
    config_rss_mb: float
    schedule_load_s: float
    schedule_bytes_per_target: float
    claims: list[dict[str, float]]
    dispatch_batches: int
    dispatch_ms_per_batch: list[float]
    dispatch_us_per_target: float
    dispatched_bytes_per_target: float | None
    used_memory_bytes_per_target: float | None


async def _bytes_per_job(
    client: Any, keys: Any, job_ids: Sequence[str], names: Sequence[str]
) -> float:
    """MEMORY USAGE per queued job: sampled per-job keys plus its share of the shared sets."""
    sample = random.Random(7).sample(list(job_ids), min(200, len(job_ids)))
    total = 0.0
    for job_id in sample:
        for key in (keys.job(job_id), keys.audit_job(job_id)):
            total += (await client.memory_usage(key, samples=0) or 0) / len(sample)
    actives = [keys.active(n) for n in names[: len(sample)]]
    for key in actives:
        total += (await client.memory_usage(key, samples=0) or 0) / len(actives)
    for shared in (keys.audit, keys.due, keys.job_index):
        usage = await client.memory_usage(shared, samples=0) or 0
        total += usage / len(job_ids)
    targets = [keys.audit_target(n) for n in names[: len(sample)]]
    for key in targets:
        total += (await client.memory_usage(key, samples=0) or 0) / len(targets)
    return total


def _used_memory(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("memory")
    return int(info["used_memory"])


async def _claim_timings(store: Any, size: int, batch: int) -> list[float]:
    """Milliseconds per claim of ``batch`` due targets, until a set of ``size`` is drained."""
    await store.claim_due_targets(0.0, 1, claim_ttl=300)  # loads the script
    timings: list[float] = []
    now = time.time()
    while True:
        t = time.perf_counter()
        got = await store.claim_due_targets(now, batch, claim_ttl=300)
        elapsed = time.perf_counter() - t
        # A short last batch is not a batch: time full ones (or the only one).
        if got and (len(got) == min(batch, size) or not timings):
            timings.append(elapsed * 1000)
        if len(got) < batch:
            return timings


# A targets file of more targets than this would pass the loader's 64 MiB cap
# (rotator.safeyaml.MAX_FILE_BYTES, about 200,000 of these lines): beyond it the benchmark
# validates a sample file and builds the rest in memory from its first target, since what it
# measures past the load (schedule sync, claims, dispatch, Redis memory) does not read files.
IN_FILE_MAX = 150_000
IN_FILE_SAMPLE = 1_000


def _replicated(sample: Any, names: Sequence[str]) -> Any:
    """``sample`` (a validated TargetsConfig) with one target per name, copies of its first."""
    from rotator.config import TargetsConfig

    first = next(iter(sample.targets.values()))
    targets = {name: first.model_copy(update={"resource_id": name}) for name in names}
    model = sample.model.model_copy(update={"targets": targets})
    return TargetsConfig(sample.path, model, sample.mtime, sample.credentials_dir)


def run_scheduled(
    count: int, batch: int, dispatch_batches: int, rinfo: RedisInfo, workdir: Path
) -> ScheduledResult:
    from rotator.audit import AuditLog
    from rotator.config import Settings, load_targets
    from rotator.crypto import Vault
    from rotator.dispatch import dispatch, sync_schedule
    from rotator.providers import provider_names
    from rotator.store import RotatorStore
    from rotator.store.keys import Keys

    prefix = f"rotator-bench-sched:{uuid.uuid4().hex[:10]}:"
    names = [f"t{i:07d}" for i in range(count)]
    path = workdir / "scheduled.yaml"
    sandbox_url = "http://127.0.0.1:9"  # never called: only dispatch is measured
    in_file = names if count <= IN_FILE_MAX else names[:IN_FILE_SAMPLE]
    write_targets(path, in_file, sandbox_url, scheduled=lambda _: True)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    settings = Settings(insecure_hosts=insecure_entry(sandbox_url))
    config = load_targets(path, provider_names(), settings)
    if count > IN_FILE_MAX:
        config = _replicated(config, names)
    config_load_s = time.perf_counter() - t
    config_rss_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    how = "loaded" if count <= IN_FILE_MAX else "built in memory (over the file cap)"
    console.print(f"targets file with {count} targets {how} in {config_load_s:.1f}s")
    sync_client = rinfo.client()

    async def main() -> ScheduledResult:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(rinfo.url, max_connections=64)
        vault = Vault([Fernet.generate_key().decode()], b"bench-audit-key")
        keys = Keys(prefix)
        store = RotatorStore(client, keys, vault)
        audit = AuditLog(client, keys, b"bench-audit-key")
        try:
            mem0 = _used_memory(sync_client)
            t = time.perf_counter()
            # first_rotation defaults to "scheduled": synced one 30d interval ago, all are due
            added = await sync_schedule(store, config, now=time.time() - 31 * 86400)
            schedule_load_s = time.perf_counter() - t
            assert len(added) == count, (len(added), count)
            usage = await client.memory_usage(keys.schedule, samples=0) or 0
            mem_sched = _used_memory(sync_client) - mem0
            console.print(f"schedule set: {count} targets added in {schedule_load_s:.2f}s")

            claims: list[dict[str, float]] = []
            sizes = sorted({s for s in (1_000, 10_000, 100_000, count) if s <= count})
            for size in sizes:
                sub = RotatorStore(client, Keys(f"{prefix}claim{size}:"), vault)
                if size == count:
                    sub = store
                else:
                    for start in range(0, size, 10_000):
                        chunk = names[start : min(size, start + 10_000)]
                        await client.zadd(sub.keys.schedule, dict.fromkeys(chunk, 1.0))
                timings = await _claim_timings(sub, size, batch)
                median = statistics.median(timings)
                claims.append(
                    {
                        "set_size": size,
                        "batches": len(timings),
                        "ms_per_batch_median": median,
                        "ms_per_batch_p95": _pct(timings, 0.95),
                        "ms_per_batch_max": max(timings),
                        "us_per_target": median * 1000 / min(batch, size),
                    }
                )
                console.print(
                    f"claim: set of {size}: {median:.2f} ms per batch of {min(batch, size)} "
                    f"(median; p95 {_pct(timings, 0.95):.2f} ms, {len(timings)} batches)"
                )

            # Full dispatch batches: claim + job + audit event per target, then claim jobs.
            for start in range(0, count, 10_000):
                await client.zadd(
                    keys.schedule, dict.fromkeys(names[start : start + 10_000], 1.0), xx=True
                )
            delivered: list[str] = []

            async def collect(job_ids: Sequence[str]) -> None:
                delivered.extend(job_ids)

            mem1 = _used_memory(sync_client)
            dispatch_ms: list[float] = []
            for _ in range(dispatch_batches):
                t = time.perf_counter()
                result = await dispatch(store, config, audit, collect, batch=batch)
                dispatch_ms.append((time.perf_counter() - t) * 1000)
                if result.scheduled == 0:
                    break
            created = len(delivered)
            mem_dispatch = _used_memory(sync_client) - mem1
            dispatched_bytes = None
            if created:
                dispatched_bytes = await _bytes_per_job(client, keys, delivered, names)
            used_per_target = None
            if rinfo.private and created:
                used_per_target = (mem_sched / count) + mem_dispatch / created
            return ScheduledResult(
                targets=count,
                batch=batch,
                targets_file_mb=path.stat().st_size / 2**20,
                config_load_s=config_load_s,
                config_rss_mb=config_rss_mb,
                schedule_load_s=schedule_load_s,
                schedule_bytes_per_target=usage / count,
                claims=claims,
                dispatch_batches=len(dispatch_ms),
                dispatch_ms_per_batch=dispatch_ms,
                dispatch_us_per_target=sum(dispatch_ms) * 1000 / max(1, created),
                dispatched_bytes_per_target=dispatched_bytes,
                used_memory_bytes_per_target=used_per_target,
            )
        finally:
            await audit.aclose()
            await client.aclose()

    try:
        return asyncio.run(main())
    finally:
        with contextlib.suppress(redis.RedisError):
            delete_prefix(sync_client, prefix)
        sync_client.close()


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def _progress(result: RunResult) -> None:
    console.print(
        f"{result.system} repeat {result.repeat + 1}: {result.completed}/{result.requested} "
        f"completed, {result.throughput:.1f} rotations/s, "
        f"{result.cpu_ms_per_rotation:.2f} ms worker CPU per rotation",
        highlight=False,
    )


_ROWS: tuple[tuple[str, str, str, bool], ...] = (
    # (label, field, format, higher is better)
    ("rotations completed", "completed", "{:.0f}", True),
    ("throughput (rotations/s)", "throughput", "{:.1f}", True),
    ("window: first start → last end (s)", "window_s", "{:.2f}", False),
    ("worker CPU per rotation (ms)", "cpu_ms_per_rotation", "{:.2f}", False),
    ("worker CPU busy (cores)", "worker_cpu_util", "{:.2f}", False),
    ("peak RSS of worker(s) (MiB)", "peak_rss_mb", "{:.0f}", False),
    ("provider calls per rotation", "provider_calls_per_rotation", "{:.2f}", False),
    ("IMS token mints", "token_mints", "{:.0f}", False),
    ("sandbox CPU per rotation (ms)", "sandbox_cpu_ms_per_rotation", "{:.2f}", False),
    ("Redis commands per rotation (incl. in Lua)", "redis_commands_per_rotation", "{:.1f}", False),
    ("  of which EVAL/EVALSHA calls", "redis_scripts_per_rotation", "{:.1f}", False),
    ("Redis CPU per rotation (ms)", "redis_cpu_ms_per_rotation", "{:.2f}", False),
    ("audit events per rotation", "audit_events_per_rotation", "{:.1f}", False),
    ("latency p50 (ms)", "latency_p50_ms", "{:.0f}", False),
    ("latency p95 (ms)", "latency_p95_ms", "{:.0f}", False),
    ("enqueue CPU per rotation, this process (ms)", "enqueue_cpu_ms_per_rotation", "{:.2f}", False),
)


def _stat(results: Sequence[RunResult], name: str) -> tuple[float, float] | None:
    values = [getattr(r, name) for r in results]
    values = [float(v) for v in values if v is not None and v == v]
    if not values:
        return None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _cell(stat: tuple[float, float] | None, fmt: str, repeats: int) -> str:
    if stat is None:
        return "-"
    mean, sd = stat
    text = fmt.format(mean)
    if repeats > 1:
        text += " ± " + fmt.format(sd)
    return text


def print_table(
    rotator: Sequence[RunResult], peers: Mapping[str, Sequence[RunResult]], title: str
) -> None:
    """One column per system, then rotator's ratio to each peer that ran."""
    ran = {name: results for name, results in peers.items() if results}
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("rotator", justify="right")
    for name in ran:
        table.add_column(name, justify="right")
    for name in ran:
        table.add_column(f"rotator / {name}", justify="right")
    for label, field_name, fmt, _higher in _ROWS:
        r = _stat(rotator, field_name)
        stats = {name: _stat(results, field_name) for name, results in ran.items()}
        if r is None and all(b is None for b in stats.values()):
            continue
        cells = [label, _cell(r, fmt, len(rotator))]
        cells += [_cell(stats[name], fmt, len(results)) for name, results in ran.items()]
        for b in stats.values():
            # A ratio to a figure that rounds to zero says nothing.
            shown = r is not None and b is not None and float(fmt.format(b[0])) != 0
            cells.append(f"{r[0] / b[0]:.2f}×" if shown and r and b else "-")
        table.add_row(*cells)
    console.print(table)
    for results in (rotator, *ran.values()):
        for result in results[:1]:
            if result.redis_top:
                console.print(
                    f"{result.system}: Redis commands per rotation by command: "
                    + ", ".join(f"{k} {v}" for k, v in result.redis_top.items()),
                    highlight=False,
                )
            if result.profile:
                console.print(f"{result.system} profile (py-spy, % of worker CPU samples):")
                console.print(
                    "  innermost bucket: "
                    + ", ".join(f"{k} {v}" for k, v in result.profile["leaf_buckets_pct"].items()),
                    highlight=False,
                )
                console.print(
                    "  inclusive: "
                    + ", ".join(
                        f"{k} {v}" for k, v in result.profile["inclusive_buckets_pct"].items()
                    ),
                    highlight=False,
                )
                for frame, share in list(result.profile["top_self_pct"].items())[:12]:
                    console.print(f"    {share:5.2f}%  {frame}", highlight=False)


def print_scheduled(result: ScheduledResult) -> None:
    table = Table(title=f"{result.targets} scheduled targets (dispatch batch {result.batch})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("targets file size (MiB)", f"{result.targets_file_mb:.1f}")
    table.add_row("targets file load + validation (s)", f"{result.config_load_s:.2f}")
    table.add_row("RSS growth for the loaded config (MiB)", f"{result.config_rss_mb:.0f}")
    table.add_row("schedule sync, all targets (s)", f"{result.schedule_load_s:.2f}")
    table.add_row("schedule zset bytes per target", f"{result.schedule_bytes_per_target:.0f}")
    for claim in result.claims:
        table.add_row(
            f"claim per batch, set of {claim['set_size']:.0f} (ms median / p95 / max)",
            f"{claim['ms_per_batch_median']:.2f} / {claim['ms_per_batch_p95']:.2f} / "
            f"{claim['ms_per_batch_max']:.2f}",
        )
        table.add_row("  µs per claimed target (median batch)", f"{claim['us_per_target']:.2f}")
    if result.dispatch_ms_per_batch:
        table.add_row(
            f"full dispatch per batch of {result.batch} (ms, {result.dispatch_batches} batches)",
            f"{statistics.fmean(result.dispatch_ms_per_batch):.0f} "
            f"(min {min(result.dispatch_ms_per_batch):.0f}, "
            f"max {max(result.dispatch_ms_per_batch):.0f})",
        )
        table.add_row("  µs per dispatched target", f"{result.dispatch_us_per_target:.0f}")
    if result.dispatched_bytes_per_target is not None:
        table.add_row(
            "bytes per queued job (job hash, active key, audit event + indexes; MEMORY USAGE)",
            f"{result.dispatched_bytes_per_target:.0f}",
        )
    if result.used_memory_bytes_per_target is not None:
        table.add_row(
            "used_memory per scheduled + dispatched target (bytes, private Redis)",
            f"{result.used_memory_bytes_per_target:.0f}",
        )
    console.print(table)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="rotator throughput and CPU per rotation, side by side with a hand-written "
        "Celery task; or (--scheduled N) dispatch costs with N scheduled targets.",
    )
    parser.add_argument("--rotations", type=int, default=None, help="per repeat (default 2000)")
    parser.add_argument("--targets", type=int, default=None, help="default: --rotations")
    parser.add_argument("--latency-ms", type=int, default=50, help="sandbox latency per call")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per system")
    parser.add_argument("--concurrency", type=int, default=64, help="Celery threads per worker")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--asyncio-peer",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run tools.bench_asyncio (no Celery)",
    )
    parser.add_argument(
        "--in-flight", type=int, default=32, help="asyncio peer: rotations in flight per process"
    )
    parser.add_argument("--repeat", type=int, default=1, help="measured repeats per system")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up rotations (64/worker)")
    parser.add_argument(
        "--enqueue",
        choices=("api", "dispatch"),
        default="api",
        help="api: Runtime.enqueue here; dispatch: scheduled targets, rotator.dispatch messages",
    )
    parser.add_argument(
        "--delivery-batch", type=int, default=DELIVERY_BATCH, help="job ids per Celery message"
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for rotator workers (e.g. ROTATOR_MAX_IN_FLIGHT=512)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--embedded", action="store_true", help="a private embedded Redis")
    where.add_argument("--redis-url", default=None, help=f"default {SHARED_REDIS}")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output directory")
    parser.add_argument("--json-out", type=Path, default=None, help="write results as JSON")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per repeat")
    parser.add_argument("--scheduled", type=int, default=0, help="scheduled-targets mode: N")
    parser.add_argument(
        "--incident",
        type=int,
        default=0,
        metavar="N",
        help="incident mode: N targets over the five providers, all enqueued at once "
        "(tools.bench_incident)",
    )
    parser.add_argument("--dispatch-batch", type=int, default=2000, help="--scheduled batch")
    parser.add_argument(
        "--dispatch-batches", type=int, default=5, help="--scheduled: full dispatches to time"
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def redis_for(args: argparse.Namespace, workdir: Path) -> Iterator[RedisInfo]:
    if args.embedded:
        state = workdir / "redis"
        url = embedded.ensure_running(state)
        try:
            yield RedisInfo(url, private=True, embedded_dir=state)
        finally:
            embedded.stop(state)
    else:
        url = args.redis_url or SHARED_REDIS
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        yield RedisInfo(url, private=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.incident:
        return _incident(args)
    rotations = args.rotations if args.rotations is not None else (0 if args.scheduled else 2000)
    targets = args.targets if args.targets is not None else rotations
    if rotations > targets:
        console.print("[red]--targets must be at least --rotations (one job per target)[/]")
        return 2
    opts = Options(
        rotations=rotations,
        targets=targets,
        latency_ms=args.latency_ms,
        workers=args.workers,
        concurrency=args.concurrency,
        baseline=args.baseline,
        asyncio_peer=args.asyncio_peer,
        in_flight=max(1, args.in_flight),
        repeat=max(1, args.repeat),
        warmup=args.warmup if args.warmup is not None else 64 * args.workers,
        enqueue=args.enqueue,
        delivery_batch=max(1, args.delivery_batch),
        worker_env=dict(item.split("=", 1) for item in args.worker_env),
        profile=args.profile.resolve() if args.profile else None,
        timeout=args.timeout or max(120.0, rotations / 10),
    )
    report: dict[str, Any] = {"options": {**asdict(opts), "profile": str(opts.profile)}}
    # Short base path: the embedded Redis socket path must stay under ~100 bytes.
    with tempfile.TemporaryDirectory(prefix="rbench-", dir="/tmp") as tmp:
        workdir = Path(tmp)
        with redis_for(args, workdir) as rinfo:
            report["redis"] = {"url": rinfo.url, "private": rinfo.private}
            kind = "private" if rinfo.private else "shared: no command counts"
            console.print(f"Redis: {rinfo.url} ({kind})")
            if args.scheduled:
                scheduled = run_scheduled(
                    args.scheduled, args.dispatch_batch, args.dispatch_batches, rinfo, workdir
                )
                print_scheduled(scheduled)
                report["scheduled"] = asdict(scheduled)
            if rotations:
                rot, base, peer = _rotation_runs(opts, rinfo, workdir)
                report["rotator"] = [asdict(r) for r in rot]
                report["baseline"] = [asdict(b) for b in base]
                report["asyncio"] = [asdict(a) for a in peer]
                print_table(
                    rot,
                    {"Celery task": base, "asyncio peer": peer},
                    f"{rotations} rotations × {opts.repeat}, sandbox latency {opts.latency_ms} ms, "
                    f"{opts.workers} worker(s) × {opts.concurrency} threads, "
                    f"enqueue={opts.enqueue}",
                )
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


def _incident(args: argparse.Namespace) -> int:
    from tools.bench_incident import IncidentOptions, incident_main

    opts = IncidentOptions(
        targets=args.incident,
        latency_ms=args.latency_ms,
        workers=args.workers,
        concurrency=args.concurrency,
        worker_env=dict(item.split("=", 1) for item in args.worker_env),
        timeout=args.timeout,
    )
    with tempfile.TemporaryDirectory(prefix="rbench-", dir="/tmp") as tmp:
        workdir = Path(tmp)
        with redis_for(args, workdir) as rinfo:
            kind = "private" if rinfo.private else "shared"
            console.print(f"Redis: {rinfo.url} ({kind})")
            return incident_main(opts, rinfo, workdir, args.json_out)


def _rotation_runs(
    opts: Options, rinfo: RedisInfo, workdir: Path
) -> tuple[list[RunResult], list[RunResult], list[RunResult]]:
    names = [f"conn-{i:06d}" for i in range(opts.targets)]
    warm = [f"warm-{i:04d}" for i in range(opts.warmup)]
    console.print(f"starting the sandbox and seeding {len(names) + len(warm)} connections")
    sandbox = Sandbox(workdir)
    try:
        sandbox.start()
        sandbox.seed([*warm, *names])
        sandbox.set_latency(opts.latency_ms)
        measured = names[: opts.rotations]
        console.print(f"rotator: {opts.workers} worker(s), {opts.rotations} rotations per repeat")
        rot = run_rotator(opts, rinfo, sandbox, workdir, names, measured)
        base: list[RunResult] = []
        if opts.baseline:
            console.print(f"baseline: {opts.workers} worker(s)")
            base = run_baseline(opts, rinfo, sandbox, workdir, measured)
        peer: list[RunResult] = []
        if opts.asyncio_peer:
            console.print(f"asyncio peer: {opts.workers} process(es), {opts.in_flight} in flight")
            peer = run_asyncio_peer(opts, rinfo, sandbox, workdir, measured)
        return rot, base, peer
    finally:
        sandbox.close(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
