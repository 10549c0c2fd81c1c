"""``rotator notify test`` through the real command line, against a receiver on a socket:
one result per webhook, exit 1 when one fails, and neither URLs nor signing keys printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rotator.notify.deliver import verify

TARGETS = """\
secrets:
  s1: {{source: generate, field: password}}
notify:
  webhooks:
    up: {{url: "http://127.0.0.1:{port}/up/tok-3f9a", secret_env: T_UP_KEY}}
    down: {{url: "http://127.0.0.1:{port}/down", secret_env: T_DOWN_KEY, format: slack}}
targets:
  t1:
    provider: adobe
    base_url: https://platform.adobe.io/data/foundation/flowservice
    resource_id: conn-1
    secret: s1
    credentials: {{client_id: env:T_ID, client_secret: env:T_SECRET}}
    options: {{org_id: "X@AdobeOrg"}}
    notify: {{webhooks: [up]}}
"""
SIGNING = {"T_UP_KEY": "up-key-VALUE-never-printed", "T_DOWN_KEY": "down-key-VALUE-hidden"}


@pytest.fixture
def receiver() -> Iterator[tuple[list[dict[str, Any]], int]]:
    hits: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            hits.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(200 if self.path.startswith("/up") else 503)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hits, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _run(tmp_path: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rotator.yaml").write_text(TARGETS.format(port=port))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATOR_", "T_"))}
    env.update(
        ROTATOR_STATE_DIR=str(tmp_path / "state"),
        ROTATOR_TARGETS_FILE=str(tmp_path / "rotator.yaml"),
        ROTATOR_INSECURE_HOSTS=f"127.0.0.1:{port}",
        COLUMNS="200",
        **SIGNING,
    )
    return subprocess.run(
        [sys.executable, "-m", "rotator", "notify", "test", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_webhook_gets_a_signed_sample_and_its_result_is_printed(
    tmp_path: Path, receiver: tuple[list[dict[str, Any]], int]
) -> None:
    hits, port = receiver
    result = _run(tmp_path, port, "--json")

    assert result.returncode == 1, result.stderr  # "down" answered 503
    rows = {row["webhook"]: row for row in json.loads(result.stdout)}
    assert rows["up"]["ok"] is True and rows["up"]["status"] == 200
    assert rows["down"]["ok"] is False and rows["down"]["error"] == "HTTP 503"
    assert sorted(h["path"] for h in hits) == ["/down", "/up/tok-3f9a"]
    for hit in hits:
        key = SIGNING["T_UP_KEY" if hit["path"].startswith("/up") else "T_DOWN_KEY"]
        assert verify(key.encode(), hit["body"], hit["headers"]["X-Rotator-Signature"])
    text = result.stdout + result.stderr
    assert "tok-3f9a" not in text and "VALUE" not in text


def test_a_target_tests_only_its_own_webhooks(
    tmp_path: Path, receiver: tuple[list[dict[str, Any]], int]
) -> None:
    hits, port = receiver
    result = _run(tmp_path, port, "--target", "t1")

    assert result.returncode == 0, result.stderr
    assert "up" in result.stdout and "delivered (HTTP 200)" in result.stdout
    assert "down" not in result.stdout
    (hit,) = hits
    payload = json.loads(hit["body"])
    assert (payload["event"], payload["target"], payload["provider"]) == ("test", "t1", "adobe")
