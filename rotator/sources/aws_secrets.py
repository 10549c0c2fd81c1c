"""``aws-secrets-manager``: the next secret from AWS Secrets Manager (botocore).

A pin calls ``GetSecretValue`` once for the configured stage (``AWSCURRENT`` unless the targets
file names another, e.g. ``AWSPENDING``) or for a fixed ``version_id``, keeps the selected
fields and stores them as a rotator version. The job journals that version before any remote
call, so every later attempt of the job applies exactly the value read, even if the stage moved
meanwhile. The ``VersionId`` read is the pin's ``origin``
(``aws-secrets-manager prod/sfdc VersionId 0f3c...``), in the job journal and the
``secret.loaded`` audit event.

``SecretString`` holding a JSON object gives its keys (then ``fields`` selects); any other
string is one value under the secret's ``field`` (default ``password``). ``SecretBinary`` is
refused: a provider credential is text.

Credentials: ``{access_key_id, secret_access_key[, session_token]}`` references, or the explicit
``default-chain`` (instance profile, IRSA, shared config); never an accident of an omitted field.
botocore's own retries are off: rotator's retry policy is the one retry decision.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, SSLError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.session import get_session

from rotator.errors import ProviderUnavailable, SecretSourceError, TransportError
from rotator.sources.base import Pinned, SourceContext, store_value
from rotator.sources.remote import check_url, credential, local_path, select
from rotator.sources.specs import AwsSecretsSpec

if TYPE_CHECKING:
    from rotator.config import SecretSpec

PROVIDER = "aws-secrets-manager"
_TRANSIENT_CODES = {"InternalServiceError", "ThrottlingException", "ServiceUnavailable"}
_KEYS = {
    "access_key_id": "aws_access_key_id",
    "secret_access_key": "aws_secret_access_key",
    "session_token": "aws_session_token",
}


@dataclass(frozen=True)
class SmRead:
    version_id: str
    data: dict[str, Any] = field(repr=False)


class AwsSecretsSource:
    async def pin(self, name: str, spec: SecretSpec, ctx: SourceContext) -> Pinned:
        options = spec.aws_secrets_manager
        assert options is not None  # the settings model requires it for this source
        if options.endpoint_url:
            check_url(name, "aws_secrets_manager.endpoint_url", options.endpoint_url, ctx.env)
        keys: dict[str, str] = {}
        if options.credentials != "default-chain":
            keys = {
                _KEYS[key]: credential(name, key, ref, ctx.base_dir, ctx.env)
                for key, ref in options.credentials.items()
                if key in _KEYS
            }
        read = await asyncio.to_thread(read_secret, name, options, keys, spec.field, ctx.base_dir)
        where = f"{options.secret_id} VersionId {read.version_id}"
        fields = select(name, f"aws-secrets-manager {where}", read.data, options.fields)
        version, fingerprint = await store_value(name, spec, ctx, fields)
        return Pinned(version, fingerprint, fields, origin=f"aws-secrets-manager {where}")


def read_secret(
    name: str, options: AwsSecretsSpec, keys: Mapping[str, str], raw_field: str, base_dir: Path
) -> SmRead:
    """One ``GetSecretValue`` (blocking)."""
    client = get_session().create_client(
        "secretsmanager",
        region_name=options.region,
        endpoint_url=options.endpoint_url,
        verify=local_path(options.ca_bundle, base_dir),
        config=Config(
            connect_timeout=options.timeout,
            read_timeout=options.timeout,
            retries={"total_max_attempts": 1},
        ),
        **keys,
    )
    request: dict[str, str] = {"SecretId": options.secret_id}
    if options.version_id:
        request["VersionId"] = options.version_id
    else:
        request["VersionStage"] = options.stage
    where = f"secret {name}: aws-secrets-manager {options.secret_id}"
    try:
        response = client.get_secret_value(**request)
    except ClientError as exc:
        raise _client_error(where, exc) from None
    except SSLError:
        raise SecretSourceError(f"{where}: TLS verification failed") from None
    except BotoConnectionError as exc:
        raise TransportError(
            f"{where}: no answer ({type(exc).__name__})", provider=PROVIDER
        ) from None
    except BotoCoreError as exc:
        # NoCredentialsError, NoRegionError...: configuration, not weather.
        raise SecretSourceError(f"{where}: {type(exc).__name__}") from None
    finally:
        client.close()
    return _parse(where, response, raw_field)


def _client_error(where: str, exc: ClientError) -> Exception:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in _TRANSIENT_CODES or status >= 500:
        return ProviderUnavailable(
            f"{where}: unavailable", provider=PROVIDER, status=status, code=code
        )
    # AccessDeniedException, ResourceNotFoundException, DecryptionFailure, InvalidRequestException
    # (e.g. a deleted secret): an operator must act.
    return SecretSourceError(f"{where}: {code or 'error'} (HTTP {status})")


def _parse(where: str, response: Mapping[str, Any], raw_field: str) -> SmRead:
    version_id = response.get("VersionId")
    text = response.get("SecretString")
    if not isinstance(version_id, str) or not version_id:
        raise SecretSourceError(f"{where}: the answer has no VersionId")
    if not isinstance(text, str):
        raise SecretSourceError(f"{where}: only SecretString is supported, not SecretBinary")
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise SecretSourceError(
                f"{where}: SecretString starts like JSON but does not parse"
            ) from None
        if not isinstance(value, dict):
            raise SecretSourceError(f"{where}: SecretString must be a JSON object")
        return SmRead(version_id, value)
    return SmRead(version_id, {raw_field: text})


__all__ = ["AwsSecretsSource", "SmRead", "read_secret"]
