"""SandboxServer lifecycle and ``python -m rotator.sandbox``."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from rotator.sandbox.app import create_app
from rotator.sandbox.server import SandboxServer
from tools.common import free_port


def test_given_port_start_stop_and_restart() -> None:
    port = free_port()
    server = SandboxServer(port=port)
    server.start()
    try:
        assert server.url == f"http://127.0.0.1:{port}"
        assert httpx.get(server.url + "/_sandbox/stats").status_code == 200
    finally:
        server.stop()
    # The port is released: a new server can bind it at once.
    with SandboxServer(port=port) as again:
        assert httpx.get(again.url + "/_sandbox/faults").status_code == 200


def test_servers_have_independent_state() -> None:
    with SandboxServer(app=create_app(seed=1)) as a, SandboxServer() as b:
        httpx.put(a.url + "/_sandbox/adobe/resources/x", json={})
        assert httpx.get(a.url + "/_sandbox/adobe/resources/x").status_code == 200
        assert httpx.get(b.url + "/_sandbox/adobe/resources/x").status_code == 404


def test_module_entry_point_serves() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator.sandbox", "--port", str(port), "--seed", "3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/_sandbox/stats", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, "sandbox process exited"
                assert time.monotonic() < deadline, "sandbox did not start"
                time.sleep(0.1)
        assert r.status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert b"rotator sandbox listening" in err


def test_stop_does_not_wait_for_injected_timeouts() -> None:
    import threading

    errors: list[BaseException] = []
    with SandboxServer() as server:
        httpx.put(
            server.url + "/_sandbox/faults",
            json={"rules": [{"provider": "adobe", "kind": "timeout", "ms": 60000}]},
        )

        def call() -> None:
            try:
                httpx.get(server.url + "/data/foundation/flowservice/connections/x", timeout=30)
            except httpx.TransportError as exc:
                errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.3)
        started = time.monotonic()
    assert time.monotonic() - started < 1.5
    caller.join(5)
    assert not caller.is_alive() and len(errors) == 1
