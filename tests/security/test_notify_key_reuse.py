"""Attack: with write access to the targets file, name one of rotator's own keys (or a
provider credential) as a webhook's signing key or URL variable, and point the webhook at a
receiver you control. Every notice would then carry a MAC keyed with that secret to you: a
key-derived value sent where nobody intended. Refused when the file is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotator.errors import ConfigError
from tests.notify.conftest import TARGETS, load


def _issues(tmp_path: Path, text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return {i.location: i.message for i in caught.value.issues}


@pytest.mark.parametrize("variable", ["ROTATOR_MASTER_KEY", "ROTATOR_AUDIT_KEY", "rotator_x"])
def test_rotators_own_variables_are_never_a_webhook_key_or_url(
    tmp_path: Path, variable: str
) -> None:
    text = TARGETS.replace("secret_env: NOTIFY_OPS_KEY", f"secret_env: {variable}")
    assert "rotator's own" in _issues(tmp_path, text)["notify.webhooks.ops.secret_env"]
    text = TARGETS.replace("https://hooks.example.com/rotator", f"env:{variable}")
    assert "rotator's own" in _issues(tmp_path, text)["notify.webhooks.ops.url"]


def test_a_provider_credential_is_never_a_webhook_key(tmp_path: Path) -> None:
    text = TARGETS.replace(
        "    resource_id: conn-1\n",
        "    resource_id: conn-1\n    credentials: {client_secret: 'env:CRM_CLIENT_SECRET'}\n",
    ).replace("secret_env: NOTIFY_CHAT_KEY", "secret_env: CRM_CLIENT_SECRET")
    problem = _issues(tmp_path, text)["notify.webhooks.chat.secret_env"]
    assert "targets.crm.credentials.client_secret" in problem
