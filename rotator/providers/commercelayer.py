"""Commerce Layer provisioning API: update an API credential's role, reference and metadata.

Target fields: ``base_url`` = the provisioning API root (``https://provisioning.commercelayer.io/
api``), ``resource_id`` = the api_credential id. Credentials: ``client_id``, ``client_secret``
(a provisioning application). Options: ``auth_url`` (default
``https://auth.commercelayer.io/oauth/token``), ``scope`` (sent with the token request only when
set: the documentation lists none and the official js-auth client sends none). Secret fields:
any of the updatable attributes ``name``, ``redirect_uri``, ``expires_in``, ``reference``,
``reference_origin``, ``metadata``, and ``role_id`` (sent as the ``role`` relationship).
``client_secret`` cannot be changed by an update, so any read-only field in the secret is
rejected rather than silently dropped.

Every API call is JSON:API (``application/vnd.api+json`` for Accept and, on PATCH, Content-Type).
Version check: none native. ``apply`` re-reads the credential right before the PATCH and raises
VersionConflict when ``updated_at`` moved since the engine's read; the same read supplies the
live metadata to merge with (so metadata never has to travel in the audit summary). A replayed
PATCH would overwrite whatever changed in between, so the adapter never counts as replay-safe.

Marker: the PATCH writes ``metadata.rotator = <want.marker>`` and ``metadata.rotator_digest``, a
digest of the updatable attributes and role as the PATCH leaves them. ``read`` reports the
marker only while the live attributes still match that digest, so an out-of-band edit after
ours (which keeps unknown metadata keys) is not mistaken for our update; and ``carries`` is
False when the version after our update is known and the live one differs.

Rate limits: IPs that exceed them get blocked, so the adapter budgets itself (``RateBudget``
over the context's ``RateLimiter``, shared by every worker process through Redis in the
runtime; see ``rotator.providers.budget``) and waits instead of sending a request that would
break the limit. Token mints are budgeted too (30 a minute), though the shared token cache
keeps them at one per credential set per token lifetime.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from rotator.errors import AuthError, BadRequest, ProviderError, VersionConflict
from rotator.providers.base import (
    ApplyResult,
    Evidence,
    Journal,
    ProviderContext,
    RemoteState,
    SecretPayload,
    TargetSpec,
    Want,
    raise_for_status,
    redact,
)
from rotator.providers.budget import RateBudget
from rotator.providers.oauth import OAuthClientCredentialsProvider

NAME = "commercelayer"
DEFAULT_AUTH_URL = "https://auth.commercelayer.io/oauth/token"
JSONAPI = "application/vnd.api+json"
MARKER_KEY = "rotator"
DIGEST_KEY = "rotator_digest"
# What an update can change, and so what an out-of-band edit after ours would show up in.
DIGESTED = ("name", "redirect_uri", "expires_in", "reference", "reference_origin")
UPDATABLE = frozenset(
    {"name", "redirect_uri", "expires_in", "reference", "reference_origin", "metadata"}
)
ROLE_FIELD = "role_id"

# (window seconds, max requests) per method class, from the documented limits. The auth
# endpoint allows 30 mints a minute; the token cache keeps us far below, the budget makes sure.
LIMITS: Mapping[str, Sequence[tuple[float, int]]] = {
    "read": ((60.0, 1000), (10.0, 250)),
    "write": ((60.0, 200), (10.0, 50)),
    "auth": ((60.0, 30),),
}


def method_class(method: str) -> str:
    return "read" if method.upper() in ("GET", "HEAD") else "write"


def describe_error(response: httpx.Response) -> tuple[str, str]:
    """JSON:API ``errors[]`` -> (first code, "title: detail (pointer); ...")."""
    body = response.json()
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        if isinstance(body, dict):  # the OAuth endpoint answers {"error", "error_description"}
            return str(body.get("error", "")), str(body.get("error_description", ""))
        return "", ""
    parts = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        text = str(error.get("title") or "")
        detail = error.get("detail")
        if detail and detail != text:
            text = f"{text}: {detail}" if text else str(detail)
        source = error.get("source")
        pointer = source.get("pointer") if isinstance(source, dict) else None
        if pointer:
            text = f"{text} ({pointer})"
        parts.append(text)
    first = errors[0] if isinstance(errors[0], dict) else {}
    return str(first.get("code", "")), "; ".join(p for p in parts if p)


def state_digest(attributes: Mapping[str, Any], role_id: str | None) -> str:
    metadata = attributes.get("metadata")
    canonical = {
        **{key: attributes.get(key) for key in DIGESTED},
        "metadata": {
            k: v
            for k, v in (metadata if isinstance(metadata, dict) else {}).items()
            if k not in (MARKER_KEY, DIGEST_KEY)
        },
        "role": role_id,
    }
    data = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(data).hexdigest()[:32]


def role_of(resource: Mapping[str, Any]) -> str | None:
    role = ((resource.get("relationships") or {}).get("role") or {}).get("data")
    return str(role["id"]) if isinstance(role, dict) and role.get("id") else None


class CommerceLayer(OAuthClientCredentialsProvider):
    name: ClassVar[str] = NAME
    allowed_hosts: ClassVar[tuple[str, ...]] = ("*.commercelayer.io",)
    url_options: ClassVar[tuple[str, ...]] = ("auth_url",)
    token_json = True
    default_lifetime = 7200.0
    token_error_overrides = {400: AuthError}  # invalid_client: the credentials are wrong

    def __init__(self, context: ProviderContext, budget: RateBudget | None = None) -> None:
        super().__init__(context)
        self.budget = budget or RateBudget(LIMITS, context.rate_limiter, provider=NAME)

    def _token_url(self, target: TargetSpec) -> str:
        return str(target.options.get("auth_url", DEFAULT_AUTH_URL))

    def _scope(self, target: TargetSpec) -> str:
        return str(target.options.get("scope") or "")

    def _describe_token_error(self, response: httpx.Response) -> tuple[str, str]:
        return describe_error(response)

    async def _before_mint(self, token_url: str) -> None:
        await self.budget.acquire((urlsplit(token_url).netloc, "auth"))

    def _headers(self, target: TargetSpec, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": JSONAPI}

    def _url(self, target: TargetSpec) -> str:
        return f"{target.base_url}/api_credentials/{target.resource_id}"

    async def _call(
        self, target: TargetSpec, method: str, *, reserved: bool = False, **kw: Any
    ) -> httpx.Response:
        """``reserved``: the caller already took this request's place in the rate budget."""
        url = self._url(target)
        key = (urlsplit(url).netloc, method_class(method))
        extra = {"Content-Type": JSONAPI} if method != "GET" else {}
        # Only the first send was reserved; a re-send after a 401 takes its own place.
        skip_budget = reserved

        async def take_place() -> None:
            nonlocal skip_budget
            if skip_budget:
                skip_budget = False
            else:
                await self.budget.acquire(key)

        return await self._authorized(
            target, method, url, headers=extra, before_send=take_place, **kw
        )

    async def _fetch(self, target: TargetSpec, *, reserved: bool = False) -> dict[str, Any]:
        # include=role: relationships carry only links otherwise, and the role is part of
        # what an update sets.
        response = await self._call(target, "GET", reserved=reserved, params={"include": "role"})
        raise_for_status(response, NAME, describe_error)
        data = response.json().get("data")
        if not isinstance(data, dict):
            raise ProviderError("api credential read returned no data", provider=NAME, status=200)
        return data

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState:
        data = await self._fetch(target)
        attributes = data.get("attributes") or {}
        metadata = attributes.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        marker = metadata.get(MARKER_KEY)
        intact = metadata.get(DIGEST_KEY) == state_digest(attributes, role_of(data))
        # Only facts an update cannot set from the secret: name/reference/metadata values may.
        return RemoteState(
            version=str(attributes.get("updated_at") or ""),
            marker=str(marker) if marker and intact else None,
            summary={
                "id": data.get("id"),
                "kind": attributes.get("kind"),
                "mode": attributes.get("mode"),
                "confidential": attributes.get("confidential"),
                "custom": attributes.get("custom"),
                "updated_at": attributes.get("updated_at"),
                "metadata_keys": sorted(metadata),
                "marker_intact": bool(marker) and intact,
            },
        )

    async def apply(
        self,
        target: TargetSpec,
        secret: SecretPayload,
        expected: RemoteState,
        want: Want,
        journal: Journal,
    ) -> ApplyResult:
        fields = secret.fields
        unknown = sorted(set(fields) - UPDATABLE - {ROLE_FIELD})
        if unknown:
            raise BadRequest(
                f"secret fields {unknown} cannot be updated on api_credentials "
                f"(updatable: {sorted(UPDATABLE | {ROLE_FIELD})})",
                provider=NAME,
            )
        secret_metadata = fields.get("metadata") or {}
        if not isinstance(secret_metadata, dict):
            raise BadRequest("secret field 'metadata' must be an object", provider=NAME)

        # Compare-before-write as close to the PATCH as the API allows: take the places of the
        # fresh read and of the PATCH in the rate budget together, so no budget wait opens a
        # window between read and write (and neither grant idles while the other waits).
        host = urlsplit(self._url(target)).netloc
        await self.budget.acquire((host, method_class("PATCH")), (host, method_class("GET")))
        live = await self._fetch(target, reserved=True)
        live_attributes = live.get("attributes") or {}
        if str(live_attributes.get("updated_at") or "") != expected.version:
            raise VersionConflict(
                "api credential changed since it was read", provider=NAME, code="updated_at"
            )
        live_metadata = live_attributes.get("metadata") or {}
        attributes: dict[str, Any] = {k: v for k, v in fields.items() if k in UPDATABLE}
        metadata = {
            **(live_metadata if isinstance(live_metadata, dict) else {}),
            **secret_metadata,
            MARKER_KEY: want.marker,
        }
        role_id = str(fields[ROLE_FIELD]) if fields.get(ROLE_FIELD) else role_of(live)
        after = {**live_attributes, **attributes, "metadata": metadata}
        attributes["metadata"] = {**metadata, DIGEST_KEY: state_digest(after, role_id)}
        data: dict[str, Any] = {
            "type": "api_credentials",
            "id": target.resource_id,
            "attributes": attributes,
        }
        if fields.get(ROLE_FIELD):
            data["relationships"] = {
                "role": {"data": {"type": "roles", "id": str(fields[ROLE_FIELD])}}
            }
        # Encoded here so httpx cannot substitute its own application/json Content-Type.
        content = json.dumps({"data": data}, separators=(",", ":")).encode()
        response = await self._call(target, "PATCH", reserved=True, content=content)
        try:
            raise_for_status(response, NAME, describe_error)
        except ProviderError as exc:
            redact(exc, secret)  # validation details may quote a submitted value
            raise
        body = response.json()
        updated = (body.get("data") or {}).get("attributes", {}).get("updated_at")
        return ApplyResult(version=str(updated) if updated else None)

    def carries(
        self, live: RemoteState, want: Want, applied_version: str | None = None
    ) -> Evidence:
        if applied_version is not None and applied_version != live.version:
            return Evidence.NOT_OURS  # changed again after our update
        return super().carries(live, want, applied_version)
