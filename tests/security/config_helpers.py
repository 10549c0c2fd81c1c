"""What the configuration attacks share: a server that records every request it gets, the
environment of a rotator process, and running the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.fernet import Fernet

# Recognisable key material: if it shows up anywhere it was exfiltrated.
AUDIT_KEY = "audit-key-canary-5d1f0c7e9b2a48e6a1c3f4d2b7e8a9c0"


@dataclass
class Capture:
    """Everything the attacker's server received."""

    url: str
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    status: int = 200
    location: str | None = None

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")


@contextmanager
def capturing_server(status: int = 200, location: str | None = None) -> Iterator[Capture]:
    capture = Capture(url="", status=status, location=location)

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            capture.requests.append((self.command, self.path, body))
            self.send_response(capture.status)
            if capture.location:
                self.send_header("Location", capture.location)
            payload = b'{"access_token": "t", "expires_in": 3600}'
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = _record

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    capture.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield capture
    finally:
        server.shutdown()
        server.server_close()


def rotator_env(tmp: Path, redis_url: str, key_prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env.update(
        {
            "ROTATOR_REDIS_URL": redis_url,
            "ROTATOR_KEY_PREFIX": key_prefix,
            "ROTATOR_QUEUE": f"{key_prefix}q",
            "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
            "ROTATOR_AUDIT_KEY": AUDIT_KEY,
            "ROTATOR_TARGETS_FILE": str(tmp / "rotator.yaml"),
            "ROTATOR_STATE_DIR": str(tmp / "state"),
            "ROTATOR_HTTP_TIMEOUT": "3",
            "ROTATOR_MAX_ATTEMPTS": "1",
            "ATTACK_CLIENT_ID": "client-id",
        }
    )
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def adobe_target(base_url: str, ims_url: str, client_secret: str) -> str:
    """A targets file with one Adobe target, due at once, and a generated secret."""
    return f"""
secrets:
  s:
    source: generate
targets:
  victim:
    provider: adobe
    base_url: {base_url}
    resource_id: conn-1
    secret: s
    schedule: 1d
    first_rotation: now
    credentials:
      client_id: env:ATTACK_CLIENT_ID
      client_secret: {client_secret}
    options:
      ims_url: {ims_url}
      org_id: "org@AdobeOrg"
"""


def attack(env: dict[str, str]) -> str:
    """Enqueue the target and run one pass, as cron or an operator would; all output."""
    enqueue = cli(env, "enqueue", "victim")
    run = cli(env, "run", "--once", "--max-wait", "5")
    return enqueue.stdout + enqueue.stderr + run.stdout + run.stderr
