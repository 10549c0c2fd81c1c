"""``rotator demo``: the whole system on one machine, nothing to install or configure.

Starts the provider sandbox, an embedded Redis, a real Celery worker and beat; then shows a
scheduled rotation per provider, an on-demand one, a fault that is retried and recovered (the
update applied but its response lost), and an out-of-band edit that rotator refuses to overwrite
(a conflict). Ends with the audit trail and ``rotator status``, and stops what it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from rotator import embedded

console = Console()


@dataclass(frozen=True)
class DemoTarget:
    name: str
    provider: str
    secret_name: str
    resource_id: str
    seed_path: str  # admin path to seed the resource
    seed_body: dict[str, Any]
    yaml: str  # the target's block in the targets file (without the name line)
    secret_value: dict[str, Any]


def _targets(url: str) -> list[DemoTarget]:
    from rotator.sandbox import defaults as d

    urls = d.base_urls(url)
    return [
        DemoTarget(
            name="adobe-salesforce",
            provider="adobe",
            secret_name="sfdc-login",  # noqa: S106 - a name, not a value
            resource_id="conn-demo-1",
            seed_path="/_sandbox/adobe/resources/conn-demo-1",
            seed_body={
                "name": "Salesforce (demo)",
                "auth": {
                    "specName": "Basic Authentication",
                    "params": {"username": "etl@example.com", "password": "initial"},
                },
            },
            yaml=f"""    provider: adobe
    base_url: {urls["adobe"]}
    resource_id: conn-demo-1
    secret: sfdc-login
    schedule: 1h
    credentials:
      client_id: env:DEMO_ADOBE_CLIENT_ID
      client_secret: env:DEMO_ADOBE_CLIENT_SECRET
    options:
      ims_url: {urls["adobe_ims"]}
      org_id: "{d.ADOBE_ORG_ID}"
      sandbox_name: {d.ADOBE_SANDBOX_NAME}
""",
            secret_value={"username": "etl@example.com"},
        ),
    ]


def _env(state_dir: Path, targets_file: Path, prefix: str) -> dict[str, str]:
    from rotator.sandbox import defaults as d

    env = dict(os.environ)
    for key in [k for k in env if k.startswith("ROTATOR_")]:
        del env[key]
    env.update(
        {
            "ROTATOR_STATE_DIR": str(state_dir),
            "ROTATOR_TARGETS_FILE": str(targets_file),
            "ROTATOR_KEY_PREFIX": prefix,
            "ROTATOR_QUEUE": f"{prefix}q",
            "ROTATOR_DISPATCH_INTERVAL": "1",
            "ROTATOR_RETRY_BASE_DELAY": "6",
            "ROTATOR_HTTP_TIMEOUT": "3",
            "ROTATOR_LEASE_TTL": "20",
            "ROTATOR_LOG_LEVEL": "WARNING",
            "DEMO_ADOBE_CLIENT_ID": d.ADOBE_CLIENT_ID,
            "DEMO_ADOBE_CLIENT_SECRET": d.ADOBE_CLIENT_SECRET,
        }
    )
    return env


def _write_targets(path: Path, targets: list[DemoTarget]) -> None:
    secrets = "\n".join(
        f"  {t.secret_name}:\n    source: generate\n    field: password\n    length: 24\n"
        f"    static: {json.dumps(t.secret_value)}"
        for t in targets
    )
    blocks = "\n".join(f"  {t.name}:\n{t.yaml}" for t in targets)
    path.write_text(f"# Written by 'rotator demo'\nsecrets:\n{secrets}\ntargets:\n{blocks}")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "rotator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _cli_json(env: dict[str, str], *args: str) -> Any:
    result = _cli(env, *args, "--json")
    if result.returncode != 0:
        raise RuntimeError(f"rotator {' '.join(args)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def _wait(what: str, check: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    with console.status(what):
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.3)
    console.print(f"[red]timed out:[/red] {what}")
    return False


def _job_state(env: dict[str, str], job_id: str) -> str:
    return str(_cli_json(env, "job", job_id).get("state"))


def run_demo() -> int:
    from rotator.sandbox.server import SandboxServer

    root = Path(".rotator/demo").resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    prefix = f"demo-{uuid.uuid4().hex[:6]}:"
    targets_file = root / "rotator.yaml"
    processes: list[subprocess.Popen[bytes]] = []
    ok = True

    console.rule("[bold]rotator demo")
    sandbox = SandboxServer(port=0)
    sandbox.start()
    try:
        console.print(f"• provider sandbox on {sandbox.url}")
        embedded.ensure_running(root)
        console.print(f"• embedded Redis at {embedded.socket_path(root)}")
        targets = _targets(sandbox.url)
        admin = httpx.Client(base_url=sandbox.url, timeout=10)
        for target in targets:
            admin.put(target.seed_path, json=target.seed_body).raise_for_status()
        _write_targets(targets_file, targets)
        env = _env(root, targets_file, prefix)
        check = _cli(env, "config", "check")
        console.print(f"• {check.stdout.strip() or check.stderr.strip()}")

        log = (root / "worker.log").open("wb")
        for args in (["worker", "--concurrency", "8", "--loglevel", "WARNING"], ["beat"]):
            processes.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    [sys.executable, "-m", "rotator", *args],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        console.print("• Celery worker and beat started")

        console.rule("1. scheduled rotations (beat → dispatcher → worker)")
        ok &= _wait(
            "waiting for the first scheduled rotation of every target",
            lambda: all(row["current"] for row in _cli_json(env, "status")),
            timeout=90,
        )
        _show_status(env)

        first = targets[0]
        console.rule("2. on-demand rotation")
        job = _cli_json(env, "enqueue", first.name, "--reason", "demo: leaked in a ticket")
        console.print(f"enqueued job {job['job_id']}")
        ok &= _wait("rotating", lambda: _job_state(env, job["job_id"]) == "completed")
        console.print(f"job {job['job_id']}: [green]{_job_state(env, job['job_id'])}[/green]")

        console.rule("3. a lost response: the update applies, the reply never arrives")
        admin.put(
            "/_sandbox/faults",
            json={
                "rules": [
                    {
                        "provider": first.provider,
                        "kind": "drop_response",
                        "methods": ["PATCH"],
                        "count": 1,
                    }
                ]
            },
        ).raise_for_status()
        job = _cli_json(env, "enqueue", first.name, "--reason", "demo: fault")
        ok &= _wait(
            "retrying and converging", lambda: _job_state(env, job["job_id"]) == "completed"
        )
        record = _cli_json(env, "job", job["job_id"])
        console.print(
            f"job {job['job_id']}: [green]{record['state']}[/green] after {record['attempts']} "
            "attempts, one update applied"
        )

        console.rule("4. an out-of-band edit: rotator refuses to overwrite it")
        admin.put(
            "/_sandbox/faults",
            json={
                "rules": [
                    {
                        "provider": first.provider,
                        "kind": "error",
                        "status": 503,
                        "methods": ["PATCH"],
                        "count": 1,
                    }
                ]
            },
        ).raise_for_status()
        job = _cli_json(env, "enqueue", first.name, "--reason", "demo: conflict")
        ok &= _wait(
            "first attempt fails with 503", lambda: _job_state(env, job["job_id"]) == "retrying"
        )
        admin.post(
            f"/_sandbox/{first.provider}/resources/{first.resource_id}/oob"
        ).raise_for_status()
        console.print("someone edited the connection by hand while the retry was pending")
        ok &= _wait("retry detects the edit", lambda: _job_state(env, job["job_id"]) == "conflict")
        console.print(f"job {job['job_id']}: [yellow]conflict[/yellow] (remote left untouched)")
        admin.delete("/_sandbox/faults")

        console.rule("audit trail (rotator audit list)")
        _show_audit(env)
        console.rule("status (rotator status)")
        _show_status(env)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        sandbox.stop()
        embedded.stop(root)
    console.rule("[green]demo finished" if ok else "[red]demo finished with problems")
    return 0 if ok else 1


def _show_status(env: dict[str, str]) -> None:
    table = Table("target", "provider", "current", "previous", "last outcome")
    for row in _cli_json(env, "status"):
        table.add_row(
            row["target"],
            row["provider"],
            row["current"] or "-",
            row["previous"] or "-",
            row["last_outcome"] or "-",
        )
    console.print(table)


def _show_audit(env: dict[str, str]) -> None:
    result = _cli(env, "audit", "list", "--limit", "60")
    if result.returncode == 0:
        console.print(result.stdout)
        return
    console.print(f"[red]audit list failed:[/red] {result.stderr.strip()}")
