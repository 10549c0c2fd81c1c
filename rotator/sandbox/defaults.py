"""Management-API credentials and names the sandbox is seeded with (after start and each reset).

These are sandbox-only values, public by design: tests and the demo configure rotator with them.
All five APIs share one base URL (``SandboxServer.url``); :func:`base_urls` gives the URL each
rotator adapter is configured with.
"""

from __future__ import annotations

# --- Adobe (IMS server-to-server OAuth + Flow Service) -------------------------------------
#: OAuth client id; also the ``x-api-key`` value.
ADOBE_CLIENT_ID = "sandbox-adobe-client"
ADOBE_CLIENT_SECRET = "p8e-sandbox-adobe-client-secret"
ADOBE_API_KEY = ADOBE_CLIENT_ID
#: ``x-gw-ims-org-id`` the client belongs to.
ADOBE_ORG_ID = "0123456789ABCDEF01234567@AdobeOrg"
# What the sandbox records as ``updatedClient`` after this client's own updates (an invented
# value, like the real one): the targets' ``options.updated_client`` for lost-response evidence.
ADOBE_CLIENT_NAME = "sandbox integration"
#: ``x-sandbox-name`` that seeded connections live in.
ADOBE_SANDBOX_NAME = "prod"
#: Scope list sent to IMS (any non-empty list is accepted).
ADOBE_SCOPES = "openid,AdobeID,read_organizations,additional_info.projectedProductContext"
ADOBE_TOKEN_PATH = "/ims/token/v3"
ADOBE_FLOW_PATH = "/data/foundation/flowservice"
#: Salesforce source connection spec (the default for seeded connections).
ADOBE_SALESFORCE_SPEC_ID = "cfc0fee1-7dc0-40ef-b73e-d8b134c436f5"

# --- Amazon AppFlow (SigV4) -----------------------------------------------------------------
AWS_ACCESS_KEY_ID = "AKIASANDBOXAPPFLOW01"
AWS_SECRET_ACCESS_KEY = "sandbox/AppFlowSecretAccessKey0123456789ab"
AWS_REGION = "us-east-1"
AWS_ACCOUNT_ID = "123456789012"

# --- UiPath Automation Suite identity server ------------------------------------------------
UIPATH_ORGANIZATION = "sandboxorg"
UIPATH_TENANT = "DefaultTenant"
UIPATH_CLIENT_ID = "7f5c3b7e-0d6a-4c2e-9a41-5b7a3e8d2c10"
UIPATH_CLIENT_SECRET = "sandbox-uipath-client-secret"
#: A client of a standalone identity server: tokens only from ``/identity/connect/token``.
UIPATH_STANDALONE_CLIENT_ID = "2c9a6e31-4f0b-4d7e-8c15-9e3b7a6d1f42"
UIPATH_STANDALONE_CLIENT_SECRET = "sandbox-uipath-standalone-secret"
UIPATH_STANDALONE_TOKEN_PATH = "/identity/connect/token"
#: Scopes the default external application may request (space separated).
UIPATH_SCOPES = "PM.RobotAccount PM.RobotAccount.Read PM.RobotAccount.Write"
#: partitionGlobalId of the default organization (seeded robot accounts live there).
UIPATH_PARTITION_GLOBAL_ID = "3f2a9c1e-6b4d-4e8a-9f0c-2d7b5a1e4c33"

# --- Commerce Layer provisioning API --------------------------------------------------------
COMMERCELAYER_CLIENT_ID = "sandbox-cl-provisioning-client"
COMMERCELAYER_CLIENT_SECRET = "sandbox-cl-provisioning-secret"
COMMERCELAYER_SCOPE = "provisioning-api"
COMMERCELAYER_TOKEN_PATH = "/oauth/token"
COMMERCELAYER_API_PATH = "/api"
COMMERCELAYER_ORGANIZATION_ID = "WXlEOFrjnr"
#: Roles seeded at reset: id -> name.
COMMERCELAYER_ROLES: dict[str, str] = {
    "rolAdmin01": "admin",
    "rolReadOnly1": "read_only",
    "rolWriteOnly": "write_only",
}
COMMERCELAYER_DEFAULT_ROLE_ID = "rolAdmin01"

# --- Thales CipherTrust Manager -------------------------------------------------------------
CIPHERTRUST_USERNAME = "admin"
CIPHERTRUST_PASSWORD = "sandbox-ciphertrust-password"
CIPHERTRUST_DOMAIN = "root"
CIPHERTRUST_API_PATH = "/api/v1"


def base_urls(url: str) -> dict[str, str]:
    """What each adapter is configured with, for a sandbox at ``url`` (``http://host:port``)."""
    url = url.rstrip("/")
    return {
        "adobe": url + ADOBE_FLOW_PATH,
        "adobe_ims": url + ADOBE_TOKEN_PATH,
        "appflow": url,
        "uipath": f"{url}/{UIPATH_ORGANIZATION}/identity_",
        "commercelayer": url + COMMERCELAYER_API_PATH,
        "commercelayer_auth": url + COMMERCELAYER_TOKEN_PATH,
        "ciphertrust": url + CIPHERTRUST_API_PATH,
    }
