"""``Idempotency-Key``: the same key with the same request gets the same response.

A client that lost the answer to ``POST /v1/targets/{name}/rotations`` retries with the same
key and learns the job id it already got, instead of guessing. Semantics (as Stripe's):

- the record is per token: one caller cannot read another's responses by guessing keys;
- the first request stores a short-lived *pending* record (``SET NX``), so a concurrent
  duplicate gets ``409`` instead of a second enqueue; a crash mid-request frees the key after
  ``PENDING_TTL`` seconds;
- a 2xx response replaces it and is replayed for ``ROTATOR_API_IDEMPOTENCY_TTL`` seconds;
  an error response is not stored (the key is released), so a retry after fixing the cause
  (a target added to the targets file) is not stuck on the old error;
- the same key with a different request (method, path or body) is ``422``: it is a client bug.

Redis holds only a digest of (token name, key) in the key name and the response body, which is
a job id and flags: nothing secret.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from rotator.errors import IdempotencyInProgress, IdempotencyKeyReused
from rotator.store.keys import Keys

PENDING_TTL = 30
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


def valid_key(key: str) -> bool:
    """Printable ASCII, 1..255 characters (it travels in a header and in logs' absence)."""
    return 0 < len(key) <= MAX_KEY_LENGTH and all(0x21 <= ord(c) <= 0x7E for c in key)


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).hexdigest()


class IdempotencyStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, ttl: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl = ttl

    def _key(self, token_name: str, key: str) -> str:
        digest = hashlib.sha256(f"{token_name}\0{key}".encode()).hexdigest()
        return self.keys.api_idempotency(digest)

    async def begin(self, token_name: str, key: str, fingerprint: str) -> StoredResponse | None:
        """None: go ahead (and call ``finish`` or ``release``); else the response to replay.

        Raises IdempotencyKeyReused or IdempotencyInProgress."""
        name = self._key(token_name, key)
        pending = json.dumps({"fingerprint": fingerprint, "status": None})
        for _ in range(3):  # a record that expires between SET NX and GET: try again
            if await self.redis.set(name, pending, nx=True, ex=PENDING_TTL):
                return None
            raw = await self.redis.get(name)
            if raw is None:
                continue
            record = json.loads(raw)
            if record.get("fingerprint") != fingerprint:
                raise IdempotencyKeyReused
            if record.get("status") is None:
                raise IdempotencyInProgress
            return StoredResponse(int(record["status"]), dict(record["body"]))
        raise IdempotencyInProgress

    async def finish(
        self, token_name: str, key: str, fingerprint: str, response: StoredResponse
    ) -> None:
        record = {"fingerprint": fingerprint, "status": response.status, "body": response.body}
        await self.redis.set(self._key(token_name, key), json.dumps(record), ex=self.ttl)

    async def release(self, token_name: str, key: str) -> None:
        await self.redis.delete(self._key(token_name, key))
