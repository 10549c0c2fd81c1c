"""``rotator demo``: the whole system on one machine, nothing to install or configure.

Starts the provider sandbox, an embedded Redis, a real Celery worker and beat; then shows a
scheduled rotation per provider, an on-demand one, a fault that is retried and recovered (the
update applied but its response lost), and an out-of-band edit that rotator refuses to overwrite
(a conflict). Ends with the audit trail and ``rotator status``, and stops what it started.
"""

from __future__ import annotations

import json
import os
import shlex
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
from rich.table import Column, Table

from rotator import embedded
from rotator.urlpolicy import insecure_entry

# Piped output (make, CI logs) gets a readable width instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 120)
_ROUTINE = {"job.started", "secret.loaded", "remote.read", "update.verified"}


@dataclass(frozen=True)
class DemoTarget:
    name: str
    provider: str
    secret_name: str
    resource_id: str
    seed_body: dict[str, Any]  # the sandbox resource the target rotates, as the admin API seeds it
    base_url: str
    credentials: dict[str, str]  # adapter credential field -> environment variable naming it
    options: dict[str, Any]
    secret_source: str  # the secret's definition, YAML flow style

    @property
    def seed_path(self) -> str:
        return f"/_sandbox/{self.provider}/resources/{self.resource_id}"

    @property
    def yaml(self) -> str:
        """The target's block in the targets file (without the name line)."""
        lines = [
            f"provider: {self.provider}",
            f"base_url: {self.base_url}",
            f"resource_id: {self.resource_id}",
            f"secret: {self.secret_name}",
            "schedule: 1h",
            "first_rotation: now",  # the demo shows a scheduled rotation right away
            "credentials:",
            *(f"  {field}: env:{var}" for field, var in self.credentials.items()),
            "options:",
            # JSON scalars are YAML scalars: an org id with an '@' stays one quoted string.
            *(f"  {key}: {json.dumps(value)}" for key, value in self.options.items()),
        ]
        return "".join(f"    {line}\n" for line in lines)


def _client_credentials(env_prefix: str) -> dict[str, str]:
    """An OAuth client-credentials adapter's references: ``<prefix>_CLIENT_ID`` and ``_SECRET``."""
    return {"client_id": f"{env_prefix}_CLIENT_ID", "client_secret": f"{env_prefix}_CLIENT_SECRET"}


def demo_targets(url: str) -> list[DemoTarget]:
    """One target per provider, seeded in the sandbox (also used by the tests)."""
    from rotator.sandbox import defaults as d

    urls = d.base_urls(url)
    return [
        DemoTarget(
            name="adobe-salesforce",
            provider="adobe",
            secret_name="sfdc-login",
            resource_id="conn-demo-1",
            seed_body={
                "name": "Salesforce (demo)",
                "auth": {
                    "specName": "Basic Authentication",
                    "params": {"username": "etl@example.com", "password": "initial"},
                },
            },
            base_url=urls["adobe"],
            credentials=_client_credentials("DEMO_ADOBE"),
            options={
                "ims_url": urls["adobe_ims"],
                "org_id": d.ADOBE_ORG_ID,
                "updated_client": d.ADOBE_CLIENT_NAME,
                "sandbox_name": d.ADOBE_SANDBOX_NAME,
            },
            secret_source="{source: generate, field: password, length: 24, "
            'static: {username: "etl@example.com"}}',
        ),
        DemoTarget(
            name="appflow-salesforce",
            provider="appflow",
            secret_name="appflow-oauth",
            resource_id="sfdc-profile",
            seed_body={
                "connectorType": "Salesforce",
                "connectorProfileProperties": {
                    "Salesforce": {"instanceUrl": "https://example.my.salesforce.com"}
                },
            },
            base_url=urls["appflow"],
            credentials={
                "aws_access_key_id": "DEMO_AWS_ACCESS_KEY_ID",
                "aws_secret_access_key": "DEMO_AWS_SECRET_ACCESS_KEY",
            },
            options={"region": d.AWS_REGION},
            secret_source="{source: generate, field: accessToken, length: 40}",
        ),
        DemoTarget(
            name="uipath-robot",
            provider="uipath",
            secret_name="robot-access",
            resource_id="robot-demo-1",
            seed_body={"displayName": "ETL robot", "groupIds": ["g-old-1", "g-shared"]},
            base_url=urls["uipath"],
            credentials=_client_credentials("DEMO_UIPATH"),
            options={"partition_global_id": d.UIPATH_PARTITION_GLOBAL_ID},
            secret_source="{source: store}",
        ),
        DemoTarget(
            name="commercelayer-integration",
            provider="commercelayer",
            secret_name="cl-integration",
            resource_id="apiCredDemo1",
            seed_body={"name": "storefront integration"},
            base_url=urls["commercelayer"],
            credentials=_client_credentials("DEMO_CL"),
            options={"auth_url": urls["commercelayer_auth"]},
            secret_source="{source: generate, field: reference, length: 16, "
            "static: {role_id: rolReadOnly1}}",
        ),
        DemoTarget(
            name="ciphertrust-sfdc-org",
            provider="ciphertrust",
            secret_name="ctm-sfdc-app",
            resource_id="org-demo-1",
            seed_body={"name": "Acme Salesforce org", "connection": "sfdc-conn"},
            base_url=urls["ciphertrust"],
            credentials={"username": "DEMO_CTM_USERNAME", "password": "DEMO_CTM_PASSWORD"},
            options={"strategy": "blue-green", "grace_period_seconds": 0},
            secret_source="{source: generate, fields: [client_secret, password], length: 32}",
        ),
    ]


def sandbox_credentials_env() -> dict[str, str]:
    """The environment variables the demo targets' credential references name."""
    from rotator.sandbox import defaults as d

    return {
        "DEMO_ADOBE_CLIENT_ID": d.ADOBE_CLIENT_ID,
        "DEMO_ADOBE_CLIENT_SECRET": d.ADOBE_CLIENT_SECRET,
        "DEMO_AWS_ACCESS_KEY_ID": d.AWS_ACCESS_KEY_ID,
        "DEMO_AWS_SECRET_ACCESS_KEY": d.AWS_SECRET_ACCESS_KEY,
        "DEMO_UIPATH_CLIENT_ID": d.UIPATH_CLIENT_ID,
        "DEMO_UIPATH_CLIENT_SECRET": d.UIPATH_CLIENT_SECRET,
        "DEMO_CL_CLIENT_ID": d.COMMERCELAYER_CLIENT_ID,
        "DEMO_CL_CLIENT_SECRET": d.COMMERCELAYER_CLIENT_SECRET,
        "DEMO_CTM_USERNAME": d.CIPHERTRUST_USERNAME,
        "DEMO_CTM_PASSWORD": d.CIPHERTRUST_PASSWORD,
    }


def seed_sandbox(admin: httpx.Client, targets: list[DemoTarget]) -> None:
    admin.put(
        "/_sandbox/ciphertrust/connections/sfdc-conn",
        json={"name": "sfdc-conn", "client_id": "3MVG9-demo", "username": "cckm@example.com"},
    ).raise_for_status()
    for target in targets:
        admin.put(target.seed_path, json=target.seed_body).raise_for_status()


def write_targets(path: Path, targets: list[DemoTarget]) -> None:
    secrets = "\n".join(f"  {t.secret_name}: {t.secret_source}" for t in targets)
    blocks = "\n".join(f"  {t.name}:\n{t.yaml}" for t in targets)
    path.write_text(f"# Written by 'rotator demo'\nsecrets:\n{secrets}\ntargets:\n{blocks}")


def _env(state_dir: Path, targets_file: Path, prefix: str, sandbox_url: str) -> dict[str, str]:
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
            # The sandbox speaks plain http on loopback: the operator-side opt-in for it.
            "ROTATOR_INSECURE_HOSTS": insecure_entry(sandbox_url),
            **sandbox_credentials_env(),
        }
    )
    return env


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


def _fault_once(admin: httpx.Client, provider: str, **rule: Any) -> None:
    """A sandbox fault on the provider's next PATCH: the request every demo adapter updates with."""
    body = {"provider": provider, "methods": ["PATCH"], "count": 1, **rule}
    admin.put("/_sandbox/faults", json={"rules": [body]}).raise_for_status()


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
        targets = demo_targets(sandbox.url)
        admin = httpx.Client(base_url=sandbox.url, timeout=10)
        seed_sandbox(admin, targets)
        write_targets(targets_file, targets)
        env = _env(root, targets_file, prefix, sandbox.url)
        check = _cli(env, "config", "check")
        console.print(f"• {check.stdout.strip() or check.stderr.strip()}")
        # The robot's desired access is pushed like any 'store' secret: from a file or stdin.
        access = root / "robot-access.json"
        access.write_text(
            json.dumps({"displayName": "ETL robot", "groupIds": ["g-etl", "g-shared"]})
        )
        pushed = _cli(env, "secrets", "put", "robot-access", "--from-file", str(access))
        console.print(f"• rotator secrets put robot-access → {pushed.stdout.strip()}")

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
        _fault_once(admin, first.provider, kind="drop_response")
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
        # Retry-After keeps the retry pending long enough to edit by hand, even on a busy machine.
        _fault_once(admin, first.provider, kind="error", status=503, retry_after=12)
        job = _cli_json(env, "enqueue", first.name, "--reason", "demo: conflict")
        ok &= _wait(
            "first attempt fails with 503",
            lambda: _job_state(env, job["job_id"]) in ("retrying", "verifying"),
        )
        admin.post(
            f"/_sandbox/{first.provider}/resources/{first.resource_id}/oob"
        ).raise_for_status()
        console.print("someone edited the connection by hand while the retry was pending")
        ok &= _wait("retry detects the edit", lambda: _job_state(env, job["job_id"]) == "conflict")
        live = admin.get(f"/_sandbox/{first.provider}/resources/{first.resource_id}").json()
        untouched = live["history"][-1]["by"] == "oob"
        ok &= untouched
        console.print(
            f"job {job['job_id']}: [yellow]conflict[/yellow]; the hand edit is "
            + ("still live (not overwritten)" if untouched else "[red]gone: overwritten![/red]")
        )
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
    console.print("\n".join(continuation(root, targets_file, env)), highlight=False)
    return 0 if ok else 1


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def continuation(root: Path, targets_file: Path, env: dict[str, str]) -> list[str]:
    """How to go on after the demo: the file it wrote, the env it used (saved next to it,
    sandbox-only values), and the commands that bring that file back up on a fresh sandbox."""
    used = root / "demo.env"
    keys = [k for k in env if k.startswith(("ROTATOR_", "DEMO_"))]
    used.write_text("".join(f"{k}={shlex.quote(env[k])}\n" for k in sorted(keys)))
    used.chmod(0o600)
    targets, sandbox_env = _relative(targets_file), _relative(root / "sandbox.env")
    access = _relative(root / "robot-access.json")
    return [
        "[bold]Next: run it yourself[/bold]",
        f"  targets file the demo wrote: {targets}",
        f"  environment it used:         {_relative(used)}",
        "  1. serve and seed a sandbox for that file (leave it running):",
        f"       rotator sandbox --targets {targets} --env-file {sandbox_env}",
        "  2. in another shell:",
        f"       set -a; . {sandbox_env}; set +a",
        f"       rotator config check && rotator secrets put robot-access --from-file {access}",
        "       rotator run --once && rotator status",
        "  3. copy the file, point it at your own targets: README, 'Try it on your own targets "
        "file'",
    ]


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
    """A compact view of ``rotator audit list --json`` that fits a terminal."""
    result = _cli(env, "audit", "list", "--oldest-first", "--limit", "200", "--json")
    if result.returncode != 0:
        console.print(f"[red]audit list failed:[/red] {result.stderr.strip()}")
        return
    payload = json.loads(result.stdout)
    events = payload["events"] if isinstance(payload, dict) else payload
    table, hidden = audit_table(events)
    console.print(table)
    console.print(
        f"({hidden} routine steps hidden: job.started, secret.loaded, remote.read, "
        "update.verified; 'rotator audit list' and 'rotator audit show JOB_ID' show every step)"
    )


def audit_table(events: list[dict[str, Any]]) -> tuple[Table, int]:
    """The demo's audit view and how many routine events it hides. The detail column folds
    (wraps at any character) rather than truncating: ids in it stay whole."""
    names = ("seq", "time", "target", "event", "version", "outcome")
    table = Table(*(Column(name, overflow="fold") for name in names))
    table.add_column("detail", overflow="fold", ratio=1)
    hidden = 0
    for event in events:
        if event["event"] in _ROUTINE:
            hidden += 1
            continue
        table.add_row(
            str(event.get("seq", "")),
            time.strftime("%H:%M:%S", time.gmtime(float(event["time"]))),
            str(event.get("target") or "-"),
            str(event["event"]),
            str(event.get("secret_version") or "-"),
            str(event.get("outcome") or ""),
            str(event.get("detail") or ""),
        )
    return table, hidden
