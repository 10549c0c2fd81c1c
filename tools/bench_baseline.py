"""The benchmark's peer: a well-tuned, hand-written Celery rotation task (no journal, no audit).

``tools.bench`` runs it side by side with rotator against the same sandbox. It is what a
careful engineer would write without rotator: one Celery task per rotation on a threads pool
(64), one pooled ``httpx.Client`` for the whole process, a cached IMS token shared by every
thread, and per rotation a GET, a PATCH with ``If-Match`` and a verifying GET. Nothing is
journalled or audited and nothing is stored in Redis besides the Celery messages.

Started by the benchmark as::

    python -m celery -A tools.bench_baseline worker --pool threads --concurrency 64 ...

Configuration (environment, set by the benchmark):

- ``BENCH_BASELINE_BROKER_URL``: Celery broker (default ``memory://``: importable anywhere)
- ``BENCH_BASELINE_PREFIX``: key prefix; kombu keys get ``<prefix>kombu:``
- ``BENCH_BASELINE_SANDBOX_URL``: the sandbox root (``http://127.0.0.1:PORT``)
- ``BENCH_BASELINE_TIMINGS``: a file each rotation appends one line to:
  ``<tag> <start unix time> <end unix time> <ok|error class>`` (one ``os.write``: the cost of
  measuring is a few microseconds, nothing on the network)

Like rotator's worker it uses ``rotator.celeryconfig`` (late acks, prefetch 1, JSON), so the broker
semantics are the same for both.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from typing import Any

import httpx
from celery import Celery

from rotator import celeryconfig
from rotator.sandbox import defaults
from tools.common import kombu_prefix_for

TASK_NAME = "bench_baseline.rotate"
# The sandbox's IMS client-credentials form, shared by both peers (this one and the asyncio one).
IMS_FORM = {
    "grant_type": "client_credentials",
    "client_id": defaults.ADOBE_CLIENT_ID,
    "client_secret": defaults.ADOBE_CLIENT_SECRET,
    "scope": defaults.ADOBE_SCOPES,
}


def token_and_refresh_time(body: dict[str, Any]) -> tuple[str, float]:
    """A minted token and when to mint again (a minute, or a fifth, before it expires)."""
    lifetime = float(body.get("expires_in", 3600))
    return str(body["access_token"]), time.monotonic() + lifetime - min(60.0, lifetime / 5)


PASSWORD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"  # noqa: S105


def make_app(broker_url: str, prefix: str) -> Any:
    """The baseline's Celery app (also used by the benchmark to publish its messages)."""
    app = Celery("bench_baseline", set_as_current=False)
    app.config_from_object(celeryconfig)
    options: dict[str, Any] = dict(celeryconfig.broker_transport_options)
    if broker_url.startswith(("redis", "rediss", "unix")):
        options["global_keyprefix"] = kombu_prefix_for(prefix)
    app.conf.update(broker_url=broker_url, broker_transport_options=options)
    return app


class _Token:
    """One IMS token for the whole process, minted once and refreshed a minute before expiry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = ""
        self._refresh_at = 0.0

    def get(self, client: httpx.Client, ims_url: str) -> str:
        if self._value and time.monotonic() < self._refresh_at:
            return self._value
        with self._lock:
            if self._value and time.monotonic() < self._refresh_at:
                return self._value
            response = client.post(
                ims_url,
                data=IMS_FORM,
            )
            response.raise_for_status()
            self._value, self._refresh_at = token_and_refresh_time(response.json())
            return self._value

    def invalidate(self, value: str) -> None:
        with self._lock:
            if self._value == value:
                self._value = ""


class Rotator:
    """Everything a worker process shares: the pooled client, the token, the timing file."""

    def __init__(self, sandbox_url: str, timings: str | None, pool_size: int = 96) -> None:
        root = sandbox_url.rstrip("/")
        self.flow = root + defaults.ADOBE_FLOW_PATH
        self.ims = root + defaults.ADOBE_TOKEN_PATH
        self.client = httpx.Client(
            timeout=httpx.Timeout(15.0),
            limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size),
        )
        self.token = _Token()
        self._timings = (
            os.open(timings, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if timings else None
        )

    def _headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "x-api-key": defaults.ADOBE_API_KEY,
            "x-gw-ims-org-id": defaults.ADOBE_ORG_ID,
            "x-sandbox-name": defaults.ADOBE_SANDBOX_NAME,
            "Accept": "application/json",
        }

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        extra: dict[str, str] = kwargs.pop("headers", {})
        token = self.token.get(self.client, self.ims)
        response = self.client.request(
            method, url, headers={**self._headers(token), **extra}, **kwargs
        )
        if response.status_code == 401:
            self.token.invalidate(token)
            token = self.token.get(self.client, self.ims)
            response = self.client.request(
                method, url, headers={**self._headers(token), **extra}, **kwargs
            )
        return response

    def rotate(self, connection_id: str) -> str:
        """Read, update with If-Match, re-read and verify. Returns the new etag."""
        url = f"{self.flow}/connections/{connection_id}"
        response = self._call("GET", url)
        response.raise_for_status()
        item = response.json()["items"][0]
        etag = str(item["etag"])
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(24))
        marker = f"[baseline:{secrets.token_hex(6)}]"
        patch = [
            {
                "op": "replace",
                "path": "/auth/params",
                "value": {"username": "etl@example.com", "password": password},
            },
            {"op": "replace", "path": "/description", "value": marker},
        ]
        response = self._call(
            "PATCH",
            url,
            headers={"If-Match": etag, "Content-Type": "application/json"},
            json=patch,
        )
        if response.status_code == 412:
            raise RuntimeError("connection changed since it was read (412)")
        response.raise_for_status()
        new_etag = str(response.json().get("etag") or "")
        response = self._call("GET", url)
        response.raise_for_status()
        live = response.json()["items"][0]
        if str(live.get("etag")) != new_etag or not str(live.get("description", "")).endswith(
            marker
        ):
            raise RuntimeError("re-read does not show the update")
        return new_etag

    def record(self, tag: str, started: float, outcome: str) -> None:
        if self._timings is not None:
            line = f"{tag} {started:.6f} {time.time():.6f} {outcome}\n"
            os.write(self._timings, line.encode())


_rotator: Rotator | None = None
_rotator_lock = threading.Lock()


def _shared() -> Rotator:
    global _rotator
    if _rotator is None:
        with _rotator_lock:
            if _rotator is None:
                _rotator = Rotator(
                    os.environ.get("BENCH_BASELINE_SANDBOX_URL", "http://127.0.0.1:8765"),
                    os.environ.get("BENCH_BASELINE_TIMINGS"),
                )
    return _rotator


def rotate(connection_id: str, tag: str = "-") -> None:
    started = time.time()
    shared = _shared()
    try:
        shared.rotate(connection_id)
    except Exception as exc:
        shared.record(tag, started, type(exc).__name__)
        raise
    shared.record(tag, started, "ok")


app = make_app(
    os.environ.get("BENCH_BASELINE_BROKER_URL", "memory://"),
    os.environ.get("BENCH_BASELINE_PREFIX", "bench-baseline:"),
)
# Registered without decorator syntax: Celery ships no type information.
rotate_task: Any = app.task(name=TASK_NAME, ignore_result=True)(rotate)
