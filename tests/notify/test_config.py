"""The notify section: URL policy as for providers, names that must exist, routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotator.config import Settings
from rotator.errors import ConfigError
from rotator.notify.events import EventKind
from tests.notify.conftest import TARGETS, load


def issues(tmp: Path, text: str, settings: Settings | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        if settings is None:
            load(tmp, text)
        else:
            load(tmp, text, settings)
    return {i.location: i.message for i in caught.value.issues}


def test_a_webhook_host_outside_the_allow_list_is_refused(tmp_path: Path) -> None:
    text = TARGETS.replace("https://hooks.example.com/rotator", "https://evil.example.net/x")
    found = issues(tmp_path, text)
    assert (
        "host evil.example.net is not allowed for provider notify"
        in (found["notify.webhooks.ops.url"])
    )


def test_plain_http_webhooks_need_an_insecure_host_entry(tmp_path: Path) -> None:
    text = TARGETS.replace("https://hooks.example.com/rotator", "http://hooks.example.com/r")
    assert "plain http://" in issues(tmp_path, text)["notify.webhooks.ops.url"]
    allowed = Settings(
        insecure_hosts="fake.example:*,hooks.example.com:80",
        allowed_hosts="notify=hooks.example.com",
    )
    assert load(tmp_path, text, allowed).notify.webhooks["ops"].url.startswith("http://")


def test_slack_is_allowed_by_default_and_others_only_by_the_operator(tmp_path: Path) -> None:
    found = issues(tmp_path, TARGETS, Settings(insecure_hosts="fake.example:*"))
    assert list(found) == ["notify.webhooks.ops.url"]  # hooks.slack.com passed


def test_user_info_in_a_webhook_url_is_refused(tmp_path: Path) -> None:
    text = TARGETS.replace("https://hooks.example.com", "https://u:pw@hooks.example.com")
    assert "user info" in issues(tmp_path, text)["notify.webhooks.ops.url"]


def test_a_target_naming_an_unknown_webhook_is_refused(tmp_path: Path) -> None:
    text = TARGETS.replace("webhooks: [chat]", "webhooks: [chatt]")
    found = issues(tmp_path, text)
    assert "no webhook named 'chatt'" in found["targets.erp.notify.webhooks.0"]


def test_the_signing_key_is_named_never_inlined(tmp_path: Path) -> None:
    text = TARGETS.replace("secret_env: NOTIFY_OPS_KEY", "secret_env: 's3cr3t value!'")
    found = issues(tmp_path, text)
    assert "notify.webhooks.ops.secret_env" in found
    assert "s3cr3t" not in str(found)


def test_routing_target_then_section_then_webhook_filter(tmp_path: Path) -> None:
    config = load(tmp_path)
    section = config.notify
    crm, erp = config.targets["crm"].notify, config.targets["erp"].notify
    assert section.route(EventKind.FAILED, crm) == ["ops"]  # chat only hears conflict, dead
    assert section.route(EventKind.CONFLICT, crm) == ["ops", "chat"]
    assert section.route(EventKind.CONFLICT, erp) == ["chat"]
    assert section.route(EventKind.DEAD, erp) == []  # the target hears conflicts only
    assert section.route(EventKind.TEST, erp) == ["chat"]
    assert section.dedupe_seconds == 600


def test_config_check_requires_every_signing_key_variable(tmp_path: Path) -> None:
    from rotator.checks import CheckResult, check_webhook_keys

    config = load(tmp_path)
    result = CheckResult()
    check_webhook_keys(config, {"NOTIFY_OPS_KEY": "k"}, result)
    assert [(i.location, i.message) for i in result.errors] == [
        (
            "notify.webhooks.chat.secret_env",
            "environment variable NOTIFY_CHAT_KEY is not set (the signing key)",
        )
    ]


def test_a_webhook_url_can_be_an_env_reference_checked_when_it_is_set(tmp_path: Path) -> None:
    from rotator.checks import CheckResult, check_webhook_keys

    text = TARGETS.replace("https://hooks.slack.com/services/T0/B0/x", "env:CHAT_URL")
    config = load(tmp_path, text)
    assert config.notify.webhooks["chat"].url_env == "CHAT_URL"
    result = CheckResult()
    check_webhook_keys(config, {"NOTIFY_OPS_KEY": "k", "NOTIFY_CHAT_KEY": "k"}, result)
    assert [(i.location, i.message) for i in result.errors] == [
        ("notify.webhooks.chat.url", "environment variable CHAT_URL is not set (the webhook URL)")
    ]
    bad = TARGETS.replace("https://hooks.slack.com/services/T0/B0/x", "file:/etc/passwd")
    assert "must be an http(s) URL or env:NAME" in issues(tmp_path, bad)["notify.webhooks.chat.url"]
