"""The targets-file options of the remote secret sources (``vault``, ``aws-secrets-manager``).

Pure pydantic models, imported by ``rotator.config`` for ``SecretSpec``: this module imports
nothing else from rotator, so the settings module can load it without a cycle. Credentials are
``env:``/``file:`` references like a target's; URLs are shape-checked here, and the scheme/host
policy (https only, plain http for operator-listed test hosts) before every call
(``rotator.sources.remote.check_url``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_REF = re.compile(r"^(env|file):(.+)$")  # the same reference syntax as rotator.config


def references_only(value: Mapping[str, str]) -> Mapping[str, str]:
    """Credentials (a target's, a secret source's) are ``env:``/``file:`` references, never
    inline values."""
    for key, ref in value.items():
        if not isinstance(ref, str) or not _REF.match(ref):
            # The value may be a pasted secret: name the key, never echo the value.
            raise ValueError(
                f"credential {key!r} must be a reference 'env:NAME' or 'file:PATH', "
                "never an inline value"
            )
    return value


def _url_shape(value: str | None) -> str | None:
    # The scheme and host policy (https, operator allow-list) is checked before every call.
    if value is not None and not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an http(s) URL")
    return None if value is None else value.rstrip("/")


FieldSelection = list[str] | dict[str, str]


class VaultSourceSpec(BaseModel):
    """``source: vault``: a Vault / OpenBao KV version 2 secret (``pip install rotator[vault]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    address: str = Field(description="https://vault.example.com:8200")
    mount: str = Field(default="secret", min_length=1, description="KV v2 mount point")
    path: str = Field(min_length=1, description="secret path under the mount, e.g. apps/sfdc")
    version: int | None = Field(
        default=None, ge=1, description="a fixed KV version; default: the newest"
    )
    fields: FieldSelection = Field(
        default_factory=list,
        description="keys to take (a list), or {sent name: KV key}; default: every key",
    )
    auth: Literal["token", "approle"] = "token"
    credentials: Mapping[str, str] = Field(
        description="token: {token}; approle: {role_id, secret_id} (env:/file: references)"
    )
    auth_mount: str = Field(default="approle", description="approle: the auth method's mount")
    namespace: str | None = None
    ca_bundle: str | None = None
    timeout: float = Field(default=10.0, gt=0, le=120)

    @field_validator("credentials")
    @classmethod
    def _credential_refs(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        return references_only(value)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str | None:
        return _url_shape(value)

    @model_validator(mode="after")
    def _auth_credentials(self) -> VaultSourceSpec:
        need = {"token": {"token"}, "approle": {"role_id", "secret_id"}}[self.auth]
        missing = sorted(need - set(self.credentials))
        if missing:
            raise ValueError(f"auth {self.auth!r} needs credentials {', '.join(missing)}")
        return self


class AwsSecretsSpec(BaseModel):
    """``source: aws-secrets-manager``: an AWS Secrets Manager secret (botocore)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    secret_id: str = Field(min_length=1, description="the secret's name or ARN")
    region: str = Field(min_length=1)
    stage: str = Field(default="AWSCURRENT", min_length=1, description="the version stage read")
    version_id: str | None = Field(default=None, description="a fixed VersionId instead")
    fields: FieldSelection = Field(default_factory=list)
    # No silent fallback to whatever the machine's credential chain finds: "default-chain"
    # (instance profile, IRSA, shared config) is an explicit choice.
    credentials: Mapping[str, str] | Literal["default-chain"] = Field(
        description="{access_key_id, secret_access_key[, session_token]} or 'default-chain'"
    )
    endpoint_url: str | None = Field(default=None, description="a VPC or test endpoint")
    ca_bundle: str | None = None
    timeout: float = Field(default=10.0, gt=0, le=120)

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return _url_shape(value)

    @field_validator("credentials")
    @classmethod
    def _aws_credentials(cls, value: Mapping[str, str] | str) -> Mapping[str, str] | str:
        if isinstance(value, str):
            return value
        missing = sorted({"access_key_id", "secret_access_key"} - set(value))
        if missing:
            raise ValueError(f"needs {', '.join(missing)} (or credentials: default-chain)")
        return references_only(value)


__all__ = ["AwsSecretsSpec", "FieldSelection", "VaultSourceSpec"]
