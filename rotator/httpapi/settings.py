"""The API's settings (``ROTATOR_API_*``), apart from the worker's: only ``rotator api`` reads
them, and the tokens never reach a process that does not serve the API."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROTATOR_API_", extra="ignore")

    # name:scope1+scope2:sha256hex, comma-separated (see rotator.httpapi.auth). SecretStr only
    # keeps the digests out of reprs: they are hashes, but nobody needs to see them in a log.
    tokens: SecretStr = SecretStr("")
    # How long a stored Idempotency-Key response is replayed (Stripe keeps them 24 h).
    idempotency_ttl: int = Field(default=86_400, ge=60, le=30 * 86_400)
    # Largest request body accepted; an enqueue body is a reason and a version id.
    max_body: int = Field(default=16_384, ge=1_024, le=1_048_576)
