"""Adobe Experience Platform Flow Service: rotate a connection's ``auth.params``.

Target fields: ``base_url`` = the Flow Service root (``.../data/foundation/flowservice``),
``resource_id`` = the connection id. Credentials: ``client_id``, ``client_secret`` (IMS
server-to-server). Options: ``org_id`` (x-gw-ims-org-id, required), ``sandbox_name`` (default
``prod``), ``ims_url``, ``scope``, ``api_key`` (defaults to the client id), ``static_params``
(non-secret params merged under the secret's fields, e.g. ``environment``).

Version check: ``If-Match`` with the connection's etag. The same PATCH also appends the job's
marker, ``[rotator:<version>:<fingerprint[:12]>:<job id[:12]>]`` (``Want.marker``), to the
connection description. Flow Service masks secret
params on read, so the marker is the only way to tell, after a lost response, whether the live
connection carries our update: a 412 whose re-read shows our marker is success, anything else
is an out-of-band change. An edit of the params alone keeps the marker, so ``read`` reports it
only while ``updatedClient`` (the API client of the last change) is our client id.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import httpx

from rotator.errors import ProviderError, VersionConflict
from rotator.providers.base import (
    ApplyResult,
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

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState:
        response = await self._call(target, "GET")
        raise_for_status(response, NAME, describe_error)
        items = response.json().get("items") or []
        if not items:
            raise ProviderError("connection read returned no items", provider=NAME, status=200)
        item = items[0]
        description, marker = split_marker(str(item.get("description") or ""))
        updated_client = item.get("updatedClient")
        if marker is not None and updated_client and updated_client != self._client_id(target):
            # Someone else changed the connection after our update: the description marker
            # survives an edit of the (masked) params, so it no longer shows they are ours.
            marker = None
        version = str(item.get("etag") or item.get("version") or "")
        return RemoteState(
            version=version,
            marker=marker,
            summary={
                "etag": version,
                "state": item.get("state"),
                "updatedAt": item.get("updatedAt"),
                "updatedClient": item.get("updatedClient"),
                "description": description,
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
        params = {**dict(target.options.get("static_params", {})), **secret.fields}
        base_description = str(expected.summary.get("description") or "")
        description = f"{base_description} [{want.marker}]".lstrip()
        patch = [
            {"op": "replace", "path": "/auth/params", "value": params},
            {"op": "replace", "path": "/description", "value": description},
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
