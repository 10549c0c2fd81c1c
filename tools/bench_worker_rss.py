"""A worker process's RSS with M targets loaded: ``python -m tools.bench_at_rest --rss M``.

A targets file of a million targets is over the loader's 64 MiB cap
(``rotator.safeyaml.MAX_FILE_BYTES``), and no setting raises it. So, as ``tools.bench
--scheduled`` does, a child process validates a sample file of 1,000 targets over the five
providers the way a worker does (``ConfigHolder``) and copies its targets to M names in memory;
then it builds the worker's ``Runtime`` on it, syncs the schedule (M new entries) and runs a
dispatch pass (nothing is due), and prints its RSS and peak RSS as JSON. Run as
``python -m tools.bench_worker_rss M SETTINGS_JSON``; the same is measured with the sample
alone, for the fixed part. Celery's own modules are not loaded: a worker adds those.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from tools.bench_at_rest import (
    NAME_DIGITS,
    SAMPLE_FILE_TARGETS,
    load,
    plan,
    settings_env,
    write_targets,
)
from tools.common import delete_prefix, sandbox_credentials, with_tools_path


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def rss_child(count: int, env_json: str) -> dict[str, Any]:
    from rotator.config import TargetsConfig
    from rotator.dispatch import dispatch_pass
    from rotator.runtime import ConfigHolder, Runtime

    env = json.loads(env_json)
    os.environ.update({k: v for k, v in env.items() if not k.startswith("ROTATOR_")})
    settings = load(env)
    base_kib = _status_kib("VmRSS")

    class InMemory(ConfigHolder):
        """The sample file, validated as a worker does, copied to ``count`` targets."""

        def _load(self) -> TargetsConfig:
            sample = super()._load()
            first = list(sample.targets.values())
            targets = {}
            for i in range(count):
                spec = first[i % len(first)]
                name = f"{spec.provider[:2]}-{i:0{NAME_DIGITS}d}"
                targets[name] = spec.model_copy(update={"resource_id": name})
            model = sample.model.model_copy(update={"targets": targets})
            return TargetsConfig(sample.path, model, sample.mtime, sample.credentials_dir)

    async def main() -> dict[str, Any]:
        t = time.perf_counter()
        runtime = Runtime(settings, InMemory(settings, check_interval=1e9))
        loaded_kib, load_s = _status_kib("VmRSS"), time.perf_counter() - t
        try:
            await runtime.ensure_schedule_synced()

            async def deliver(_: Sequence[str]) -> None:
                return None

            await dispatch_pass(runtime, deliver)
        finally:
            await runtime.aclose()
        return {
            "targets": len(runtime.config.get().targets),
            "python_rss_mb": base_kib / 1024,
            "loaded_rss_mb": loaded_kib / 1024,
            "rss_mb": _status_kib("VmRSS") / 1024,
            "peak_rss_mb": _status_kib("VmHWM") / 1024,
            "load_s": load_s,
        }

    return asyncio.run(main())


def measure_rss(count: int, url: str, sandbox_url: str, workdir: Path) -> dict[str, Any]:
    """RSS of a fresh child process with the sample alone, then with ``count`` targets."""
    rss_dir = workdir / "rss"
    rss_dir.mkdir()
    write_targets(rss_dir / "targets.yaml", plan(SAMPLE_FILE_TARGETS), sandbox_url)
    prefix = f"rotator-rss:{uuid.uuid4().hex[:8]}:"
    env = settings_env(url, prefix, rss_dir, sandbox_url, 10) | sandbox_credentials("BENCH")
    out: dict[str, Any] = {}
    client = redis.Redis.from_url(url)
    try:
        for n in (SAMPLE_FILE_TARGETS, count):
            proc = subprocess.run(  # noqa: S603 - this interpreter, this module
                [sys.executable, "-m", "tools.bench_worker_rss", str(n), json.dumps(env)],
                env=with_tools_path(os.environ),
                capture_output=True,
                text=True,
                check=True,
            )
            out[str(n)] = json.loads(proc.stdout.strip().splitlines()[-1])
            delete_prefix(client, prefix)
    finally:
        delete_prefix(client, prefix)
        client.close()
    return out


if __name__ == "__main__":
    print(json.dumps(rss_child(int(sys.argv[1]), sys.argv[2])))
