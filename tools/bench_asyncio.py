"""The benchmark's second peer: the same rotation as ``tools.bench_baseline`` with no Celery.

One asyncio process (uvloop when installed, as rotator's worker uses), at most 32 rotations in
flight, one pooled ``httpx.AsyncClient`` and one cached IMS token (minted once, refreshed a
minute before expiry, one mint at a time), and per rotation a GET, a PATCH with ``If-Match``
and a verifying GET. No broker, no journal, no audit, no Redis: next to the hand-written Celery
task it shows what Celery costs, and next to rotator what rotator's safety work costs.

Started by ``tools.bench`` as ``python -m tools.bench_asyncio SANDBOX_URL TIMINGS_FILE
[--in-flight 32]``. Work comes on stdin, one line per batch: ``<tag> <id>,<id>,...``; each
rotation appends ``<tag> <start> <end> <ok|error class>`` to the timings file, the format of
``tools.bench_baseline``. End of input ends the process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx

from rotator.sandbox import defaults
from tools.bench_baseline import IMS_FORM, PASSWORD_ALPHABET, token_and_refresh_time

IN_FLIGHT = 32


class _Token:
    """One IMS token for the process; concurrent callers wait for a single mint."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._value = ""
        self._refresh_at = 0.0

    async def get(self, client: httpx.AsyncClient, ims_url: str) -> str:
        if self._value and time.monotonic() < self._refresh_at:
            return self._value
        async with self._lock:
            if self._value and time.monotonic() < self._refresh_at:
                return self._value
            response = await client.post(
                ims_url,
                data=IMS_FORM,
            )
            response.raise_for_status()
            self._value, self._refresh_at = token_and_refresh_time(response.json())
            return self._value

    def invalidate(self, value: str) -> None:
        if self._value == value:
            self._value = ""


class Rotator:
    def __init__(self, sandbox_url: str, timings: str, in_flight: int = IN_FLIGHT) -> None:
        root = sandbox_url.rstrip("/")
        self.flow = root + defaults.ADOBE_FLOW_PATH
        self.ims = root + defaults.ADOBE_TOKEN_PATH
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(15.0),
            limits=httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight),
        )
        self.token = _Token()
        self.slots = asyncio.Semaphore(in_flight)
        self._timings = os.open(timings, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "x-api-key": defaults.ADOBE_API_KEY,
            "x-gw-ims-org-id": defaults.ADOBE_ORG_ID,
            "x-sandbox-name": defaults.ADOBE_SANDBOX_NAME,
            "Accept": "application/json",
        }

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        extra: dict[str, str] = kwargs.pop("headers", {})
        token = await self.token.get(self.client, self.ims)
        response = await self.client.request(
            method, url, headers={**self._headers(token), **extra}, **kwargs
        )
        if response.status_code == 401:
            self.token.invalidate(token)
            token = await self.token.get(self.client, self.ims)
            response = await self.client.request(
                method, url, headers={**self._headers(token), **extra}, **kwargs
            )
        return response

    async def rotate(self, connection_id: str) -> str:
        """Read, update with If-Match, re-read and verify (``bench_baseline.Rotator.rotate``)."""
        url = f"{self.flow}/connections/{connection_id}"
        response = await self._call("GET", url)
        response.raise_for_status()
        etag = str(response.json()["items"][0]["etag"])
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(24))
        marker = f"[asyncio:{secrets.token_hex(6)}]"
        patch = [
            {
                "op": "replace",
                "path": "/auth/params",
                "value": {"username": "etl@example.com", "password": password},
            },
            {"op": "replace", "path": "/description", "value": marker},
        ]
        response = await self._call(
            "PATCH", url, headers={"If-Match": etag, "Content-Type": "application/json"}, json=patch
        )
        if response.status_code == 412:
            raise RuntimeError("connection changed since it was read (412)")
        response.raise_for_status()
        new_etag = str(response.json().get("etag") or "")
        response = await self._call("GET", url)
        response.raise_for_status()
        live = response.json()["items"][0]
        if str(live.get("etag")) != new_etag or not str(live.get("description", "")).endswith(
            marker
        ):
            raise RuntimeError("re-read does not show the update")
        return new_etag

    async def one(self, tag: str, connection_id: str) -> None:
        async with self.slots:
            started = time.time()
            outcome = "ok"
            try:
                await self.rotate(connection_id)
            except Exception as exc:
                outcome = type(exc).__name__
            line = f"{tag} {started:.6f} {time.time():.6f} {outcome}\n"
            os.write(self._timings, line.encode())

    async def batch(self, tag: str, ids: Sequence[str]) -> None:
        await asyncio.gather(*(self.one(tag, i) for i in ids))

    async def aclose(self) -> None:
        await self.client.aclose()
        os.close(self._timings)


async def serve(sandbox_url: str, timings: str, in_flight: int) -> None:
    rotator = Rotator(sandbox_url, timings, in_flight)
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            tag, _, rest = line.strip().partition(" ")
            ids = [i for i in rest.split(",") if i]
            if tag and ids:
                task = asyncio.create_task(rotator.batch(tag, ids))
                running.add(task)
                task.add_done_callback(running.discard)
        await asyncio.gather(*running)
    finally:
        await rotator.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_asyncio")
    parser.add_argument("sandbox_url")
    parser.add_argument("timings")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT)
    args = parser.parse_args(argv)
    coro = serve(args.sandbox_url, args.timings, args.in_flight)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
