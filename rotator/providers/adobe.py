"""Adobe Experience Platform Flow Service: rotate a connection's ``auth.params``.

Target fields: ``base_url`` = the Flow Service root (``.../data/foundation/flowservice``),
``resource_id`` = the connection id. Credentials: ``client_id``, ``client_secret`` (IMS
server-to-server). Options: ``org_id`` (x-gw-ims-org-id, required), ``sandbox_name`` (default
``prod``), ``ims_url``, ``scope``, ``api_key`` (defaults to the client id), ``static_params``
(non-secret params set over the live ones, e.g. ``environmentUrl``), ``updated_client`` (the
value Flow Service records as ``updatedClient`` for this integration's changes; only when set
does verification after a lost response also require it, see below).

Params: ``replace /auth/params`` replaces the whole object, so the PATCH sends the live params
(read right before it), with ``static_params`` and the secret's fields over them. Params the
GET masks (``***``) cannot be sent back: one the secret does not supply would be lost, so the
update is refused naming it.

Version check: ``If-Match`` with the connection's etag. The same PATCH also sets the job's
marker, ``[rotator:<version>:<fingerprint[:12]>:<job id[:12]>]`` (``Want.marker``), at the end
of the connection description, with JSON Patch ``add``: a connection created without a
description has none, and Flow Service answers a ``replace`` of a missing member with
FLOW-1455-400 (``add`` sets or replaces it). Flow Service masks secret params on read, so the
marker is the evidence the API can show. An edit of the params alone keeps the marker, so
``carries`` wants more: the etag our PATCH returned equal to the live etag. Only when that etag
is unknown (the PATCH response was lost) does the marker alone count, unless option
``updated_client`` is set, when ``updatedClient`` must equal it too. Flow Service does not
define what ``updatedClient`` holds (its docs show a name, a user id and an API key), so it
is never compared with our client id silently; ``read`` reports it in the summary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from rotator.errors import BadRequest, ProviderError, VersionConflict
from rotator.providers.base import (
    ApplyResult,
    Evidence,
    Journal,
    RemoteState,
    SecretPayload,
    TargetSpec,
    Want,
    raise_for_status,
    require,
)
from rotator.providers.oauth import OAuthClientCredentialsProvider

NAME = "adobe"
DEFAULT_IMS_URL = "https://ims-na1.adobelogin.com/ims/token/v3"
DEFAULT_SCOPE = "openid,AdobeID,read_organizations,additional_info.projectedProductContext"
_MARKER = re.compile(r"\s*\[(rotator:[^\]\s]+)\]\s*$")
MASK = "***"  # how the GET shows a secret param
# ``RemoteState.summary["identity"]``: what ``updatedClient`` says about the last change.
IDENTITY_MATCH, IDENTITY_MISMATCH, IDENTITY_UNCHECKED = "match", "mismatch", "unchecked"


def describe_error(response: httpx.Response) -> tuple[str, str]:
    """Flow Service errors carry ``type`` .../FLOW-<code>; the gateway uses ``error_code``."""
    body = response.json()
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return "", ""
    if "error_code" in body:
        return str(body["error_code"]), str(body.get("message", ""))
    code = str(body.get("type", "")).rsplit("/", 1)[-1]
    return code, str(body.get("title") or body.get("message") or "")


def same_etag(a: str | None, b: str | None) -> bool:
    """The docs show etags both quoted and unquoted."""
    return a is not None and b is not None and a.strip().strip('"') == b.strip().strip('"')


def split_marker(description: str) -> tuple[str, str | None]:
    match = _MARKER.search(description)
    if not match:
        return description, None
    return description[: match.start()], match.group(1)


class AdobeFlowService(OAuthClientCredentialsProvider):
    name: ClassVar[str] = NAME
    allowed_hosts: ClassVar[tuple[str, ...]] = ("*.adobe.io", "*.adobelogin.com")
    url_options: ClassVar[tuple[str, ...]] = ("ims_url",)

    def _token_url(self, target: TargetSpec) -> str:
        return str(target.options.get("ims_url", DEFAULT_IMS_URL))

    def _scope(self, target: TargetSpec) -> str:
        return str(target.options.get("scope", DEFAULT_SCOPE))

    @staticmethod
    def _client_id(target: TargetSpec) -> str:
        return str(require(target.credentials, "client_id", "credential"))

    def _headers(self, target: TargetSpec, token: str) -> dict[str, str]:
        client_id = self._client_id(target)
        return {
            "Authorization": f"Bearer {token}",
            "x-api-key": str(target.options.get("api_key", client_id)),
            "x-gw-ims-org-id": str(require(target.options, "org_id", "option")),
            "x-sandbox-name": str(target.options.get("sandbox_name", "prod")),
            "Accept": "application/json",
        }

    async def _call(
        self, target: TargetSpec, method: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        url = f"{target.base_url}/connections/{target.resource_id}"
        return await self._authorized(target, method, url, headers=headers, **kw)

    async def _item(self, target: TargetSpec) -> dict[str, Any]:
        response = await self._call(target, "GET")
        raise_for_status(response, NAME, describe_error)
        items = response.json().get("items") or []
        if not items or not isinstance(items[0], dict):
            raise ProviderError("connection read returned no items", provider=NAME, status=200)
        return dict(items[0])

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState:
        item = await self._item(target)
        description, marker = split_marker(str(item.get("description") or ""))
        updated_client = item.get("updatedClient")
        expected_client = target.options.get("updated_client")
        if not expected_client:
            identity = IDENTITY_UNCHECKED
        elif updated_client == expected_client:
            identity = IDENTITY_MATCH
        else:
            identity = IDENTITY_MISMATCH
        version = str(item.get("etag") or item.get("version") or "")
        return RemoteState(
            version=version,
            marker=marker,
            resource=item,
            summary={
                "etag": version,
                "state": item.get("state"),
                "updatedAt": item.get("updatedAt"),
                "updatedClient": updated_client,
                "identity": identity,
                "description": description,
            },
        )

    def carries(
        self, live: RemoteState, want: Want, applied_version: str | None = None
    ) -> Evidence:
        if live.marker != want.marker:
            return Evidence.NOT_OURS
        if applied_version is not None:
            # The etag our PATCH returned is still the live one: nothing changed since.
            return Evidence.shown(same_etag(applied_version, live.version))
        # Our PATCH's response was lost, so no etag of ours to compare. The marker alone cannot
        # tell our PATCH from a later hand edit that kept the description (found by the chaos
        # experiment: a promotion of a version that was not live). updatedClient can, once the
        # operator says what it shows for this integration (``options.updated_client``);
        # without that the answer is "cannot tell", which the engine ends as a conflict for an
        # operator to look at: never a promotion of a secret that may not be live.
        identity = live.summary.get("identity")
        if identity == IDENTITY_UNCHECKED:
            return Evidence.UNKNOWN
        return Evidence.shown(identity == IDENTITY_MATCH)

    async def apply(
        self,
        target: TargetSpec,
        secret: SecretPayload,
        expected: RemoteState,
        want: Want,
        journal: Journal,
    ) -> ApplyResult:
        # The params as they are now: replace /auth/params keeps nothing it does not carry. The
        # engine's read of this etag has them; the PATCH's If-Match refuses it if they changed.
        item = dict(expected.resource) if expected.resource else await self._item(target)
        if not same_etag(str(item.get("etag") or item.get("version") or ""), expected.version):
            raise VersionConflict(
                "connection changed since it was read", provider=NAME, code="etag"
            )
        params = merged_params(item, dict(target.options.get("static_params", {})), secret)
        base_description, _ = split_marker(str(item.get("description") or ""))
        description = f"{base_description} [{want.marker}]".lstrip()
        patch = [
            {"op": "replace", "path": "/auth/params", "value": params},
            # add, not replace: a connection created without a description has no such member.
            {"op": "add", "path": "/description", "value": description},
        ]
        response = await self._call(
            target,
            "PATCH",
            headers={"If-Match": expected.version, "Content-Type": "application/json"},
            json=patch,
        )
        raise_for_status(response, NAME, describe_error, overrides={412: VersionConflict})
        body = response.json()
        etag = body.get("etag") if isinstance(body, dict) else None
        return ApplyResult(version=str(etag) if etag else None)


def merged_params(
    item: Mapping[str, Any], static: Mapping[str, Any], secret: SecretPayload
) -> dict[str, Any]:
    """Live non-masked params, then ``static_params``, then the secret's fields. A masked
    param the secret does not supply cannot be sent back: refuse rather than drop it."""
    auth = item.get("auth")
    live = auth.get("params") if isinstance(auth, dict) else None
    live = live if isinstance(live, dict) else {}
    masked = sorted(k for k, v in live.items() if v == MASK)
    lost = [k for k in masked if k not in secret.fields and k not in static]
    if lost:
        raise BadRequest(
            f"auth.params {lost} are masked on read and not in the new secret; the update "
            "replaces auth.params as a whole and would drop them: add them to the secret",
            provider=NAME,
        )
    kept = {k: v for k, v in live.items() if v != MASK}
    return {**kept, **static, **secret.fields}
