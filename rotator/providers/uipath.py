"""UiPath Automation Suite Identity Server: rotate a robot account's access (groups, name).

Target fields: ``base_url`` = the identity root, ``https://{domain}/{organization}[/{tenant}]/
identity_``; ``resource_id`` = the robot account id. Credentials: ``client_id``,
``client_secret`` (an external application, client-credentials grant). Options:
``partition_global_id`` (required; the organization's partition), ``scope`` (default
``PM.RobotAccount``), ``token_url`` (default ``{base_url}/connect/token``; set it when the
token endpoint is not under the API root: a tenant in the API path while tokens come from
``https://{domain}/{organization}/identity_/connect/token``, a standalone Orchestrator's
``https://{host}/identity/connect/token``, or a token host separate from the API host).
Secret fields: ``groupIds`` (list, required) and ``displayName``
(optional; the live one is kept when absent).

There is no secret in this API: the "secret" is the desired state, and it is readable. The PUT
takes group deltas, so the adapter computes ``groupIDsToAdd``/``groupIDsToRemove`` from a fresh
read, and a re-sent update converges. Version check: none native; ``lastModificationTime``
is what the engine compares, and ``apply`` re-reads right before the PUT and raises
VersionConflict if it moved since the engine's read. Marker: ``read`` cannot know what the
job wants, so ``apply`` journals a digest of the desired state (step ``uipath_desired``) before
the PUT, and ``read`` reports that job's marker when the live state's digest matches it (a
digest of the live state otherwise). A new process resuming the job reads the same journal, so
``carries`` stays exact: never UNKNOWN, so the engine never needs ``replay_safe`` here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from rotator.errors import AuthError, BadRequest, ProviderError, VersionConflict
from rotator.providers.base import (
    ApplyResult,
    Journal,
    RemoteState,
    SecretPayload,
    TargetSpec,
    Want,
    raise_for_status,
    redact,
)
from rotator.providers.oauth import OAuthClientCredentialsProvider

NAME = "uipath"
DEFAULT_SCOPE = "PM.RobotAccount"
STEP = "uipath_desired"


def describe_error(response: httpx.Response) -> tuple[str, str]:
    """Error bodies are undocumented: take the usual OAuth, ProblemDetails or message fields."""
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]  # {"error": {"code", "message"}}
    if not isinstance(body, dict):
        return "", ""
    code = body.get("error") or body.get("code") or body.get("errorCode") or ""
    title, detail = body.get("title"), body.get("detail")
    problem = f"{title}: {detail}" if title and detail else title or detail
    message = body.get("error_description") or body.get("message") or problem or ""
    return str(code), str(message)


def state_digest(group_ids: Sequence[str], display_name: str | None) -> str:
    # Group ids are GUIDs: compare them case-insensitively and order-free.
    canonical = {
        "displayName": display_name or "",
        "groupIds": sorted({g.lower() for g in group_ids}),
    }
    data = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:32]


def desired_groups(fields: Mapping[str, Any]) -> list[str]:
    groups = fields.get("groupIds")
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise BadRequest("secret field 'groupIds' must be a list of group ids", provider=NAME)
    return groups


class UiPathRobotAccounts(OAuthClientCredentialsProvider):
    name: ClassVar[str] = NAME
    # UiPath cloud; Automation Suite is self-hosted: its host comes from ROTATOR_ALLOWED_HOSTS.
    allowed_hosts: ClassVar[tuple[str, ...]] = ("*.uipath.com",)
    token_error_overrides = {400: AuthError}  # invalid_client / invalid_scope

    def _token_url(self, target: TargetSpec) -> str:
        explicit = target.options.get("token_url")
        return str(explicit) if explicit else f"{target.base_url}/connect/token"

    def _scope(self, target: TargetSpec) -> str:
        return str(target.options.get("scope", DEFAULT_SCOPE))

    def _describe_token_error(self, response: httpx.Response) -> tuple[str, str]:
        return describe_error(response)

    def _partition(self, target: TargetSpec) -> str:
        options = target.options
        value = options.get("partition_global_id") or options.get("partitionGlobalId")
        if not value:
            raise BadRequest("option 'partition_global_id' is not configured", provider=NAME)
        return str(value)

    async def _call(self, target: TargetSpec, method: str, url: str, **kw: Any) -> httpx.Response:
        return await self._authorized(target, method, url, **kw)

    async def _fetch(self, target: TargetSpec) -> dict[str, Any]:
        url = f"{target.base_url}/api/RobotAccount/{self._partition(target)}/{target.resource_id}"
        response = await self._call(target, "GET", url)
        raise_for_status(response, NAME, describe_error)
        account = response.json()
        if not isinstance(account, dict):
            raise ProviderError("robot account read returned no object", provider=NAME, status=200)
        return account

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState:
        account = await self._fetch(target)
        groups = [str(g) for g in account.get("groupIds") or []]
        display_name = account.get("displayName")
        digest = state_digest(groups, display_name)
        recorded = journal.get(STEP)
        if recorded and recorded.get("digest") == digest and recorded.get("marker"):
            marker = str(recorded["marker"])
        else:
            marker = f"state:{digest}"
        return RemoteState(
            version=str(account.get("lastModificationTime") or ""),
            marker=marker,
            summary={
                "name": account.get("name"),
                "displayName": display_name,
                "groupIds": sorted(groups),
                "lastModificationTime": account.get("lastModificationTime"),
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
        wanted = desired_groups(secret.fields)
        display_name = secret.fields.get("displayName") or expected.summary.get("displayName")
        await journal.record(
            STEP, {"marker": want.marker, "digest": state_digest(wanted, display_name)}
        )
        # Compare-before-write as close to the PUT as the API allows (it has no version check),
        # and deltas from that fresh read: deltas from an older read would merge our desired
        # state into an out-of-band change made since. (An unchanged version means an
        # unchanged display name too.)
        try:
            account = await self._fetch(target)
        except ProviderError as exc:
            redact(exc, secret)  # the live display name may be the one we are about to set
            raise
        if str(account.get("lastModificationTime") or "") != expected.version:
            raise VersionConflict(
                "robot account changed since it was read",
                provider=NAME,
                code="lastModificationTime",
            )
        live = [str(g) for g in account.get("groupIds") or []]
        live_by_key = {g.lower(): g for g in live}
        wanted_by_key = {g.lower(): g for g in wanted}
        body = {
            "partitionGlobalId": self._partition(target),
            "displayName": display_name,
            "groupIDsToAdd": sorted(wanted_by_key[k] for k in wanted_by_key.keys() - live_by_key),
            "groupIDsToRemove": sorted(live_by_key[k] for k in live_by_key.keys() - wanted_by_key),
        }
        url = f"{target.base_url}/api/RobotAccount/{target.resource_id}"
        response = await self._call(target, "PUT", url, json=body)
        try:
            raise_for_status(response, NAME, describe_error)
        except ProviderError as exc:
            redact(exc, secret)
            raise
        result = response.json()
        modified = result.get("lastModificationTime") if isinstance(result, dict) else None
        return ApplyResult(version=str(modified) if modified else None)
