"""A hostile Adobe-shaped provider on a socket, and the rotator environment pointed at it.

The server behaves like Flow Service until the update: then it answers 400 with an error body
that echoes what it was sent (the new password, its bearer token, the client secret) in the
form the target's resource id names, wrapped in rich markup and terminal escape sequences.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import subprocess
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

# What an attacker would put in front of an operator: closing tags rich chokes on, a screen
# clear, an OSC 8 hyperlink, a bidi override and a C1 control.
HOSTILE = "[/bold][link=http://evil.example]x[/link] \x1b[2J\x1b]8;;http://evil.example\x07y"
HOSTILE += "\x1b]8;;\x07 \u202eevil\u202c \x9b31m"

# Each target's resource id names how its update's error echoes the secret.
ECHOES: dict[str, Callable[[str, dict[str, str]], str]] = {
    "exact": lambda s, _: s,
    "upper": lambda s, _: s.upper(),
    "lower": lambda s, _: s.lower(),
    "prefix": lambda s, _: s[:10],
    "suffix": lambda s, _: s[-10:],
    "url": lambda s, _: urllib.parse.quote(s, safe=""),
    "url-plus": lambda s, _: urllib.parse.quote_plus(s),
    "url-twice": lambda s, _: urllib.parse.quote(urllib.parse.quote(s, safe=""), safe=""),
    "html": lambda s, _: html.escape(s),
    "json": lambda s, _: json.dumps({"password": s}),
    "base64": lambda s, _: base64.b64encode(s.encode()).decode(),
    "token": lambda _, seen: f"Authorization: {seen['authorization']}",
    "client-secret": lambda _, seen: f"client {seen['client_secret']} is not allowed",
    "code": lambda s, _: "see code",
}


class HostileAdobe(BaseHTTPRequestHandler):
    seen: dict[str, str]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self) -> None:  # the IMS token endpoint
        form = urllib.parse.parse_qs(self._body().decode())
        self.seen["client_secret"] = form.get("client_secret", [""])[0]
        self._send(200, {"access_token": "tok-" + uuid.uuid4().hex, "expires_in": 3600})

    def do_GET(self) -> None:
        resource = self.path.rsplit("/", 1)[-1]
        item = {"id": resource, "etag": '"e1"', "description": "conn", "state": "enabled"}
        self._send(200, {"items": [item]})

    def do_PATCH(self) -> None:
        resource = self.path.rsplit("/", 1)[-1]
        patch = json.loads(self._body())
        secret = next(op["value"]["password"] for op in patch if op["path"] == "/auth/params")
        self.seen["authorization"] = self.headers.get("Authorization", "")
        echo = ECHOES[resource](secret, self.seen)
        code = secret[:20] if resource == "code" else "FLOW-400"
        self._send(400, {"error_code": code, "message": f"{HOSTILE} rejected: {echo}"})


@contextlib.contextmanager
def serve() -> Iterator[tuple[str, dict[str, str]]]:
    seen: dict[str, str] = {}
    handler = type("Handler", (HostileAdobe,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


TARGET = """
  {name}:
    provider: adobe
    base_url: http://{host}/flow
    resource_id: {name}
    secret: sfdc
    schedule: 30d
    first_rotation: now       # due at once: `run --once` rotates every target
    credentials:
      client_id: env:HOSTILE_CLIENT_ID
      client_secret: env:HOSTILE_CLIENT_SECRET
    options:
      ims_url: http://{host}/ims/token
      org_id: "0123456789ABCDEF01234567@AdobeOrg"
"""


@dataclass
class Rotation:
    env: dict[str, str]
    secret: str
    client_secret: str
    prefix: str
    result: subprocess.CompletedProcess[str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rotator", *args],
            env={**self.env, "COLUMNS": "400"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def setup(tmp: Path, host: str, redis_url: str, prefix: str, names: list[str]) -> Rotation:
    # Characters that every encoding changes, between runs of plain ones.
    secret = f"Cn{uuid.uuid4().hex[:14]}<&>\"' /+{uuid.uuid4().hex[:14]}Zq"
    client_secret = "cs-" + uuid.uuid4().hex
    (tmp / "sfdc.json").write_text(json.dumps({"username": "etl", "password": secret}))
    targets = "secrets:\n  sfdc:\n    source: file\n    path: sfdc.json\ntargets:"
    targets += "".join(TARGET.format(name=n, host=host) for n in names)
    (tmp / "rotator.yaml").write_text(targets)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env.update(
        {
            "ROTATOR_REDIS_URL": redis_url,
            "ROTATOR_KEY_PREFIX": prefix,
            "ROTATOR_QUEUE": f"{prefix}q",
            "ROTATOR_MASTER_KEY": Fernet.generate_key().decode(),
            "ROTATOR_AUDIT_KEY": "security-audit-key-" + uuid.uuid4().hex,
            "ROTATOR_TARGETS_FILE": str(tmp / "rotator.yaml"),
            "ROTATOR_STATE_DIR": str(tmp / "state"),
            "ROTATOR_INSECURE_HOSTS": host,  # operator-side opt-in for plain http (issue 10.5)
            "ROTATOR_LOG_LEVEL": "DEBUG",
            "ROTATOR_LOG_JSON": "false",
            "HOSTILE_CLIENT_ID": "hostile-client",
            "HOSTILE_CLIENT_SECRET": client_secret,
        }
    )
    rotation = Rotation(env, secret, client_secret, prefix, None)  # type: ignore[arg-type]
    rotation.result = rotation.cli("run", "--once", "--max-wait", "5")
    return rotation
