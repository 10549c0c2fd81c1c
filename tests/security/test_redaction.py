"""Redaction by construction: what a failed attempt stores, what objects show in a repr, and
the log processor that catches whatever a code path forgot."""

from __future__ import annotations

import asyncio
import io
import json

import fakeredis
import structlog
from cryptography.fernet import Fernet

from rotator import redaction
from rotator.crypto import Vault
from rotator.engine import Outcome
from rotator.providers.base import (
    CachedToken,
    ProviderContext,
    SecretPayload,
    TargetSpec,
    TokenCache,
)
from rotator.store.keys import Keys
from rotator.store.tokens import SharedTokenCache
from tests.core.conftest import Harness, harness  # noqa: F401 - the fixture


def test_non_utf8_secret_file_puts_no_bytes_in_the_job_or_audit(
    harness: Harness,  # noqa: F811
) -> None:
    # Given a secret file that is not UTF-8 (a Latin-1 "é" inside the password)
    (harness.tmp / "secret.json").write_bytes(b'{"password": "caf\xe9-s3cr3t-latin1"}')

    # When a rotation loads it
    job_id = harness.enqueue()
    assert harness.run(harness.engine.process(job_id)) is Outcome.FAILED

    # Then the failure names the file, as a source error, and shows none of its bytes
    job = harness.run(harness.store.load_job(job_id))
    assert job.last_error_class == "SecretSourceError"
    assert "secret.json is not UTF-8" in job.last_error
    stored = json.dumps(harness.audit_events()) + job.last_error
    for shown in ("xe9", "\\u00e9", "é", "s3cr3t", "caf"):
        assert shown not in stored, shown


def test_objects_holding_values_never_show_them() -> None:
    canary = "canary-" + "9" * 24

    async def build() -> list[object]:
        tokens = TokenCache()
        await tokens.get(("k",), lambda: _minted(canary))
        vault = Vault([Fernet.generate_key().decode()], b"audit-key")
        shared = SharedTokenCache(fakeredis.FakeAsyncRedis(), Keys("t:"), vault)
        await shared.get(("k",), lambda: _minted(canary))
        target = TargetSpec("t", "adobe", "https://x", "r", {}, {"client_secret": canary})
        return [
            SecretPayload({"password": canary}, "v000000000001", "f" * 64),
            target,
            tokens,
            shared,
            CachedToken(canary, 1.0),
            ProviderContext(tokens=tokens),
            redaction.held(),
        ]

    for thing in asyncio.run(build()):
        assert canary not in repr(thing) and canary not in str(thing), type(thing)


async def _minted(value: str) -> tuple[str, float]:
    return value, 3600.0


def test_log_processor_scrubs_held_values_keys_and_credential_shapes() -> None:
    out = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[redaction.LogScrubber(), structlog.processors.JSONRenderer()],
    )
    secret = "Pa55-" + "x7Q" * 6
    redaction.hold_process_keys("master-key-" + "k" * 20)

    async def attempt() -> None:
        with redaction.scope():
            SecretPayload({"password": secret}, "v000000000001", "f" * 64)  # held from here
            logger.warning(
                "provider said",
                error=f"rejected {secret.upper()} and {secret[:9]}",
                nested={"body": [secret.encode().hex()]},
                client_secret="anything",
                url="https://h/cb?code=abc&access_token=eyJhbGciOi",
                header="Authorization: Bearer abcdefghijklmnop",
                key="master-key-" + "k" * 20,
            )

    asyncio.run(attempt())
    line = out.getvalue()
    for leaked in (secret[:8].lower(), "eyJhbGciOi", "abcdefghijklmnop", "kkkkkkkk", "anything"):
        assert leaked not in line.lower(), (leaked, line)
    assert json.loads(line)["event"] == "provider said"

    # And outside the attempt's scope its values are not held any more
    assert redaction.held().redact(secret) == secret
