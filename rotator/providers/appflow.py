"""Amazon AppFlow: rotate a connector profile's ``connectorProfileCredentials``.

Target fields: ``base_url`` = the AppFlow endpoint (``https://appflow.<region>.amazonaws.com``
or a sandbox), ``resource_id`` = the connector profile name. Credentials:
``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token`` (optional). Without
them the target must say ``credentials: default-chain`` in its options to sign with botocore's
default chain (environment, shared config, instance profile, IRSA): legitimate on AWS, but a
choice the targets file shows, never the accident of an omitted field (``check_options``).
Options: ``region`` (required: part of the SigV4 scope), ``connector_type`` (the
``connectorProfileCredentials`` key; defaults to the profile's ``connectorType`` from
Describe), ``credentials``.

Every request is signed with botocore's SigV4 (signing name ``appflow``) and sent through the
pooled httpx client. Version check: none native. The version the engine compares is a digest of
what an operator's edit changes and Describe shows (``profile_version``: connector type and
label, connection mode, credentials ARN, connector profile properties), NOT ``lastUpdatedAt``:
AppFlow refreshes a profile's OAuth tokens itself, which moves ``lastUpdatedAt`` with no update
by anyone, so a moved ``lastUpdatedAt`` alone means "refreshed, not edited" and is never a
conflict. The price: an out-of-band edit of the credentials alone cannot be told from a refresh
(Describe never returns credentials), and the next rotation replaces it.

Idempotency: a ``clientToken`` derived from the job's idempotency key, so a retry of the same
job replays the first result instead of applying twice (``replay_safe``).
The same token with different parameters is an error whose type AWS does not document: a
ConflictException or a ValidationException about the token both mean "not the update this
token first carried", so both take the conflict path, never the bad-request one.
AppFlow never returns credentials, so ``carries`` can only answer OURS when the version after
our update is known; otherwise it answers UNKNOWN, which is when the engine consults
``replay_safe``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import get_session

from rotator.errors import (
    AuthError,
    BadRequest,
    NotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    VersionConflict,
)
from rotator.providers.base import (
    ApplyResult,
    BaseProvider,
    Evidence,
    Journal,
    ProviderContext,
    RemoteState,
    SecretPayload,
    TargetSpec,
    Want,
    raise_for_status,
    redact,
    require,
    send,
)

NAME = "appflow"
SIGNING_NAME = "appflow"

# The error names AppFlow puts in x-amzn-ErrorType, refined beyond the status table. A
# ConflictException means "same clientToken, different parameters": the profile changed under
# us between attempts, which the engine must treat as a conflict (re-read, never overwrite).
_CODE_CLASSES: dict[str, type[ProviderError]] = {
    "ValidationException": BadRequest,
    "ConnectorAuthenticationException": AuthError,
    "ResourceNotFoundException": NotFound,
    "ConflictException": VersionConflict,
    "InternalServerException": ProviderUnavailable,
    "ThrottlingException": RateLimited,
    # Common AWS errors any service may return.
    "AccessDeniedException": AuthError,
    "UnrecognizedClientException": AuthError,
    "InvalidSignatureException": AuthError,
    "ExpiredTokenException": AuthError,
    "ServiceUnavailableException": ProviderUnavailable,
}

# ConnectorType enum values differ in case from the ConnectorProfileCredentials member names
# (Servicenow vs ServiceNow): map case-insensitively onto the credential member names.
_CREDENTIAL_KEYS = {
    key.lower(): key
    for key in (
        "Amplitude",
        "Datadog",
        "Dynatrace",
        "GoogleAnalytics",
        "Honeycode",
        "InforNexus",
        "Marketo",
        "Redshift",
        "Salesforce",
        "ServiceNow",
        "Singular",
        "Slack",
        "Snowflake",
        "Trendmicro",
        "Veeva",
        "Zendesk",
        "SAPOData",
        "CustomConnector",
        "Pardot",
    )
}


DEFAULT_CHAIN = "default-chain"
_KEY_FIELDS = ("aws_access_key_id", "aws_secret_access_key")
# Words of a ValidationException that is about the clientToken, not about the parameters.
_TOKEN_COMPLAINT = ("clienttoken", "client token", "idempotency", "idempotent")


def check_options(options: Mapping[str, Any], credentials: Mapping[str, Any]) -> list[str]:
    """What is wrong with a target's options, one line each (names, never values)."""
    problems: list[str] = []
    if not options.get("region"):
        problems.append("option 'region' is required (it is part of the SigV4 scope)")
    chosen = options.get("credentials")
    has_keys = any(credentials.get(k) for k in _KEY_FIELDS)
    if chosen not in (None, DEFAULT_CHAIN):
        problems.append(f"option 'credentials' must be {DEFAULT_CHAIN!r} when given")
    elif has_keys and chosen == DEFAULT_CHAIN:
        problems.append(
            f"option 'credentials: {DEFAULT_CHAIN}' and AWS access keys are both configured"
        )
    elif not has_keys and chosen is None:
        problems.append(
            "no AWS credentials configured: set credentials aws_access_key_id/"
            f"aws_secret_access_key, or option 'credentials: {DEFAULT_CHAIN}' to sign with the "
            "machine's default AWS credential chain"
        )
    return problems


def error_code(response: httpx.Response) -> str:
    """``x-amzn-ErrorType: Name:http://...`` -> ``Name`` (botocore's RestJSONParser does the same;
    the body's ``__type`` is the fallback)."""
    raw = str(response.headers.get("x-amzn-errortype", ""))
    if not raw:
        try:
            body = response.json()
        except ValueError:
            return ""
        raw = str(body.get("__type", "")) if isinstance(body, dict) else ""
        raw = raw.rsplit("#", 1)[-1]
    return raw.split(":", 1)[0].strip()


def describe_error(response: httpx.Response) -> tuple[str, str]:
    code = error_code(response)
    try:
        body = response.json()
    except ValueError:
        body = None
    message = ""
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("Message") or "")
    request_id = response.headers.get("x-amzn-requestid")
    if request_id:
        message = f"{message} (request id {request_id})".lstrip()
    return code, message


def check(response: httpx.Response) -> None:
    """Raise the mapped error, choosing the class by AWS error name before the status."""
    if response.status_code < 400:
        return
    code = error_code(response)
    cls = _CODE_CLASSES.get(code)
    if code == "ValidationException" and _about_token(response):
        cls = VersionConflict  # the token was first used with other parameters
    overrides = {response.status_code: cls} if cls else None
    raise_for_status(response, NAME, describe_error, overrides=overrides)


def _about_token(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    message = (
        str(body.get("message") or body.get("Message") or "") if isinstance(body, dict) else ""
    )
    return any(word in message.lower() for word in _TOKEN_COMPLAINT)


def client_token(want: Want) -> str:
    # Stable for every retry of one job, different across jobs; hex keeps it inside the
    # 1-256 printable-ASCII limit whatever the idempotency key looks like.
    digest = hashlib.sha256(want.idempotency_key.encode()).hexdigest()
    return f"rotator-{digest}"


# What Describe shows that an operator's edit would change. lastUpdatedAt is left out on purpose
# (AppFlow's own token refresh moves it), and so are createdAt and the ARN (never edited).
_EDITABLE = (
    "connectorType",
    "connectorLabel",
    "connectionMode",
    "credentialsArn",
    "connectorProfileProperties",
)


def profile_version(profile: Mapping[str, Any]) -> str:
    """The version of a profile's visible, editable settings: stable across token refreshes."""
    settings = {key: profile.get(key) for key in _EDITABLE}
    encoded = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return "settings-" + hashlib.sha256(encoded.encode()).hexdigest()[:16]


def credential_key(connector_type: str) -> str:
    return _CREDENTIAL_KEYS.get(connector_type.lower(), connector_type)


class AppFlow(BaseProvider):
    name: ClassVar[str] = NAME
    allowed_hosts: ClassVar[tuple[str, ...]] = ("*.amazonaws.com", "*.amazonaws.com.cn")
    check_options = staticmethod(check_options)
    replay_safe: ClassVar[bool] = True  # same clientToken + same parameters replays

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        self._default_credentials: Any = None  # botocore's chain, resolved once per process

    async def _credentials(self, target: TargetSpec) -> Credentials:
        creds = target.credentials
        problems = check_options(target.options, creds)
        if problems:
            raise BadRequest("; ".join(problems), provider=NAME)
        if creds.get("aws_access_key_id") or creds.get("aws_secret_access_key"):
            return Credentials(
                str(require(creds, "aws_access_key_id", "credential")),
                str(require(creds, "aws_secret_access_key", "credential")),
                creds.get("aws_session_token") or None,
            )
        # The chain may query the instance metadata service or refresh an assumed role:
        # blocking I/O, so off the event loop.
        if self._default_credentials is None:
            self._default_credentials = await asyncio.to_thread(
                lambda: get_session().get_credentials()
            )
        if self._default_credentials is None:
            raise AuthError(
                "no AWS credentials configured for this target and none in the default chain",
                provider=NAME,
            )
        frozen = await asyncio.to_thread(self._default_credentials.get_frozen_credentials)
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    async def _post(self, target: TargetSpec, path: str, payload: dict[str, Any]) -> httpx.Response:
        url = f"{target.base_url}{path}"
        body = json.dumps(payload, separators=(",", ":")).encode()
        request = AWSRequest(
            method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
        )
        region = str(require(target.options, "region", "option"))
        SigV4Auth(await self._credentials(target), SIGNING_NAME, region).add_auth(request)
        return await send(
            self._ctx.client(target),
            NAME,
            "POST",
            url,
            headers=dict(request.headers.items()),
            content=body,
        )

    async def read(self, target: TargetSpec, journal: Journal) -> RemoteState:
        response = await self._post(
            target,
            "/describe-connector-profiles",
            {"connectorProfileNames": [target.resource_id]},
        )
        check(response)
        details = response.json().get("connectorProfileDetails") or []
        # Unknown names come back as an empty list, not a 404.
        profile = next(
            (p for p in details if p.get("connectorProfileName") == target.resource_id), None
        )
        if profile is None:
            raise NotFound("connector profile not found", provider=NAME, status=200)
        summary = {
            "connectorProfileArn": profile.get("connectorProfileArn"),
            "connectorType": profile.get("connectorType"),
            "connectorLabel": profile.get("connectorLabel"),
            "connectionMode": profile.get("connectionMode"),
            "credentialsArn": profile.get("credentialsArn"),
            # Shown, never compared: AppFlow's own token refresh moves it.
            "lastUpdatedAt": profile.get("lastUpdatedAt"),
            # Non-secret settings that UpdateConnectorProfile requires again.
            "connectorProfileProperties": profile.get("connectorProfileProperties") or {},
        }
        return RemoteState(
            # From the summary, so that apply's version of what it sent is computed alike.
            version=profile_version(summary),
            marker=None,  # credentials are never returned: nothing to show
            summary=summary,
        )

    async def apply(
        self,
        target: TargetSpec,
        secret: SecretPayload,
        expected: RemoteState,
        want: Want,
        journal: Journal,
    ) -> ApplyResult:
        connector_type = str(
            target.options.get("connector_type") or expected.summary.get("connectorType") or ""
        )
        if not connector_type:
            raise BadRequest("connector type unknown: set option 'connector_type'", provider=NAME)
        mode = expected.summary.get("connectionMode") or "Public"
        properties = expected.summary.get("connectorProfileProperties") or {}
        payload = {
            "connectorProfileName": target.resource_id,
            "connectionMode": mode,
            "connectorProfileConfig": {
                "connectorProfileProperties": properties,
                "connectorProfileCredentials": {credential_key(connector_type): secret.fields},
            },
            "clientToken": client_token(want),
        }
        response = await self._post(target, "/update-connector-profile", payload)
        try:
            check(response)
        except ProviderError as exc:
            redact(exc, secret)  # AWS validation messages quote offending values
            raise
        # The documented response is only {connectorProfileArn}. What Describe will show is the
        # settings we just sent again on top of the ones we read: that is our version.
        sent = {
            **expected.summary,
            "connectionMode": mode,
            "connectorProfileProperties": properties,
        }
        return ApplyResult(version=profile_version(sent))

    def carries(
        self, live: RemoteState, want: Want, applied_version: str | None = None
    ) -> Evidence:
        if applied_version is not None and applied_version == live.version:
            return Evidence.OURS
        return Evidence.UNKNOWN
