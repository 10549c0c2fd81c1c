"""Targets-file benchmark: generate a large file, time loading it, report peak memory.

    python -m tools.bench_config [--targets 100000] [--repeat 3] [--redis-url URL]

Writes a targets file of N targets spread over the five providers (one secret per ten targets,
every URL on the sandbox's port, every credential an ``env:`` reference) into a temporary
directory, then runs each measured step in a fresh Python process, so each figure is what one
worker process pays: wall seconds and peak resident memory (``ru_maxrss``) of

- ``load``: ``rotator.config.load_targets``: parse, validate, cross-check, URL policy;
- ``check``: ``load`` plus ``rotator.checks.check_config(offline=True)``: ``rotator config check``;
- ``snapshot``: with ``--redis-url``, a cold load of a new file that validates it (in blocks,
  ``rotator.config_blocks``) and stores it in Redis, then the warm load another process pays
  (``rotator.config_snapshot``);
- ``edit``: with ``--redis-url``, after ``snapshot``: one target of the file edited (another
  each repeat), the first load of the edited file (only the edited target's block is parsed);
- ``check-cached``: with ``--redis-url``, ``rotator config check`` with Redis configured (the
  cached load, then ``check_config``): the unchanged file, then after an edit of one target.

Figures are printed, not asserted; each step runs ``--repeat`` times and the best and median
wall seconds are shown, with the least CPU seconds (user + system: what the step costs when
the shared machine's other work takes cores away). Snapshot keys live under a fresh prefix
and are deleted after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tools.common import with_tools_path

PROVIDERS = ("adobe", "appflow", "commercelayer", "ciphertrust", "uipath")
BASE = "http://127.0.0.1:8765"
ENV = {
    "ROTATOR_INSECURE_HOSTS": "127.0.0.1:8765",
    "ROTATOR_MASTER_KEY": "",  # filled in main(): a fresh Fernet key
    "ROTATOR_AUDIT_KEY": "bench-config-audit-key-0123456789abcdef",
    # The management credentials the file references (`config check` resolves them).
    **{
        name: "bench-value"
        for name in (
            "ADOBE_CLIENT_ID",
            "ADOBE_SECRET",
            "AWS_KEY_ID",
            "AWS_SECRET_KEY",
            "CL_CLIENT_ID",
            "CL_SECRET",
            "CTM_USER",
            "CTM_PASSWORD",
            "UIPATH_CLIENT_ID",
            "UIPATH_SECRET",
        )
    },
}


def _target(n: int) -> str:
    provider = PROVIDERS[n % len(PROVIDERS)]
    name = f"t{n:06d}-{provider}"
    common = (
        f"    provider: {provider}\n"
        f"    resource_id: res-{n:06d}\n"
        f"    secret: s{n // 10:05d}\n"
        f"    schedule: {1 + n % 90}d\n"
        f"    jitter: 1h\n"
        f"    priority: {n % 3}\n"
    )
    if provider == "adobe":
        extra = (
            f"    base_url: {BASE}/data/foundation/flowservice\n"
            "    credentials: {client_id: env:ADOBE_CLIENT_ID, client_secret: env:ADOBE_SECRET}\n"
            f'    options: {{org_id: "0123456789ABCDEF01234567@AdobeOrg", '
            f'ims_url: "{BASE}/ims/token/v3"}}\n'
        )
    elif provider == "appflow":
        extra = (
            f"    base_url: {BASE}\n"
            "    credentials: {aws_access_key_id: env:AWS_KEY_ID, "
            "aws_secret_access_key: env:AWS_SECRET_KEY}\n"
            "    options: {region: us-east-1}\n"
        )
    elif provider == "commercelayer":
        extra = (
            f"    base_url: {BASE}/api\n"
            "    credentials: {client_id: env:CL_CLIENT_ID, client_secret: env:CL_SECRET}\n"
            f'    options: {{auth_url: "{BASE}/oauth/token"}}\n'
        )
    elif provider == "ciphertrust":
        extra = (
            f"    base_url: {BASE}/api/v1\n"
            "    credentials: {username: env:CTM_USER, password: env:CTM_PASSWORD}\n"
            "    options: {strategy: in-place}\n"
        )
    else:
        extra = (
            f"    base_url: {BASE}/uipath\n"
            "    credentials: {client_id: env:UIPATH_CLIENT_ID, client_secret: env:UIPATH_SECRET}\n"
            f'    options: {{partition_global_id: "p-{n % 7}", '
            f'token_url: "{BASE}/identity/token"}}\n'
        )
    return f"  {name}:\n{common}{extra}"


def write_targets_file(path: Path, targets: int) -> None:
    """A valid targets file of ``targets`` targets over the five providers."""
    secrets = (targets + 9) // 10
    with path.open("w", encoding="utf-8") as out:
        out.write("secrets:\n")
        for n in range(secrets):
            out.write(f"  s{n:05d}: {{source: generate, field: password, length: 32}}\n")
        out.write("targets:\n")
        for n in range(targets):
            out.write(_target(n))


def edit_target(path: Path, n: int) -> None:
    """Change the resource id of one target (the ``n``-th edit: a different one each time, in
    the middle of the file), as an operator editing one entry does."""
    text = path.read_text(encoding="utf-8")
    count = text.count("    resource_id: ")
    index = (count // 2 + n * 7919) % count
    start = -1
    for _ in range(index + 1):
        start = text.index("    resource_id: ", start + 1)
    end = text.index("\n", start)
    path.write_text(f"{text[:end]}-e{n}{text[end:]}", encoding="utf-8")


def _child(step: str, path: Path, prefix: str, redis_url: str) -> dict[str, float]:
    """One measured step in this (fresh) process."""
    started = time.perf_counter()
    from rotator.config import load_settings, load_targets
    from rotator.providers import provider_names

    imported = time.perf_counter()
    cpu_start = time.process_time()
    settings = load_settings()
    if step in ("load", "check"):
        config = load_targets(path, provider_names(), settings)
    else:
        import redis

        from rotator.config_snapshot import SnapshotCache, load_targets_cached
        from rotator.store.keys import Keys

        client = redis.Redis.from_url(redis_url)
        cache = SnapshotCache(client, Keys(prefix), settings)
        config = load_targets_cached(path, provider_names(), settings, cache)
    if step in ("check", "check-cached"):
        from rotator.checks import check_config

        result = check_config(config, offline=True)
        if result.errors:
            raise SystemExit(f"config check failed: {result.errors[:3]}")
    done = time.perf_counter()
    cpu = time.process_time() - cpu_start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "targets": len(config.targets),
        "import_s": imported - started,
        "load_s": done - imported,
        "cpu_s": cpu,
        "rss_mib": rss,
    }


def _run(
    step: str, path: Path, prefix: str, redis_url: str, env: dict[str, str]
) -> dict[str, float]:
    out = subprocess.run(  # noqa: S603 - our own module, our own arguments
        [
            sys.executable,
            "-m",
            "tools.bench_config",
            "--child",
            step,
            "--file",
            str(path),
            "--prefix",
            prefix,
            "--redis-url",
            redis_url,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{step} failed:\n{out.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def _report(label: str, runs: list[dict[str, float]]) -> None:
    loads = sorted(r["load_s"] for r in runs)
    cpu = min(r["cpu_s"] for r in runs)
    rss = sorted(r["rss_mib"] for r in runs)
    print(
        f"  {label:<44} best {loads[0]:6.2f} s  median {statistics.median(loads):6.2f} s  "
        f"CPU {cpu:5.2f} s  peak RSS {rss[0]:4.0f}-{rss[-1]:.0f} MiB  "
        f"(import {runs[0]['import_s']:.2f} s)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_config", description=__doc__)
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--steps", default="load,check", help="load,check,snapshot,edit,check-cached"
    )
    parser.add_argument("--redis-url", default="", help="for the snapshot step")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--file", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        figures = _child(args.child, Path(args.file), args.prefix, args.redis_url)
        print(json.dumps(figures))
        return 0

    from cryptography.fernet import Fernet

    steps = [s for s in args.steps.split(",") if s]
    if {"snapshot", "edit", "check-cached"} & set(steps) and not args.redis_url:
        parser.error("the snapshot, edit and check-cached steps need --redis-url")
    prefix = f"bench-config:{uuid.uuid4().hex[:10]}:"
    env = with_tools_path(os.environ)
    env.update(ENV)
    env["ROTATOR_MASTER_KEY"] = Fernet.generate_key().decode()
    env["ROTATOR_KEY_PREFIX"] = prefix
    with tempfile.TemporaryDirectory(prefix="rotator-bench-config-") as tmp:
        path = Path(tmp) / "rotator.yaml"
        started = time.perf_counter()
        write_targets_file(path, args.targets)
        size = path.stat().st_size
        print(
            f"rotator targets-file benchmark: {args.targets:,} targets, "
            f"{size / 2**20:.1f} MiB ({time.perf_counter() - started:.1f} s to write)",
            flush=True,
        )
        repeats = range(max(args.repeat, 1))
        edits = 0
        try:
            for step in steps:
                if step == "snapshot":
                    cold = [_run(step, path, prefix, args.redis_url, env)]
                    _report("snapshot: cold (new file: validate + store)", cold)
                    warm = [_run(step, path, prefix, args.redis_url, env) for _ in repeats]
                    _report("snapshot: warm (another process)", warm)
                elif step == "edit":
                    runs = []
                    for _ in repeats:
                        edits += 1
                        edit_target(path, edits)
                        runs.append(_run("snapshot", path, prefix, args.redis_url, env))
                    _report("edit: first load after editing one target", runs)
                elif step == "check-cached":
                    runs = [_run(step, path, prefix, args.redis_url, env) for _ in repeats]
                    _report("check-cached: unchanged file", runs)
                    runs = []
                    for _ in repeats:
                        edits += 1
                        edit_target(path, edits)
                        runs.append(_run(step, path, prefix, args.redis_url, env))
                    _report("check-cached: after editing one target", runs)
                else:
                    runs = [_run(step, path, prefix, args.redis_url, env) for _ in repeats]
                    _report(f"{step}", runs)
        finally:
            if args.redis_url:
                import redis

                from tools.common import delete_prefix

                client = redis.Redis.from_url(args.redis_url)
                print(f"cleanup: deleted {delete_prefix(client, prefix)} keys under {prefix}")
                client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
