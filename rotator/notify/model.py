"""The ``notify:`` section of the targets file, and which webhooks a notice goes to.

::

    notify:
      webhooks:
        ops-slack:
          url: https://hooks.slack.com/services/T000/B000/XXXX
          format: slack                 # or json (the default)
          secret_env: WEBHOOK_OPS_SLACK_KEY   # the HMAC key: an environment variable's name
          events: [failed, dead, conflict]        # optional: this webhook's own filter
          rate_per_minute: 30           # optional; burst: 5
      events: [failed, dead, conflict, quarantined, unverified, overdue, key_mismatch, audit_spool]
      dedupe_window: 1h                 # one notice per job (or target) and event within it
    targets:
      crm:
        ...
        notify: {webhooks: [ops-slack], events: [conflict]}   # optional, per target

Routing (``NotifySection.route``): a notice about a target goes to the target's ``webhooks``
(default: every webhook), if its event is in the target's ``events`` (default: the section's)
and in the webhook's own ``events`` when it sets any. A notice about no target (key mismatch,
audit spool) uses the section's events. ``notify: {webhooks: []}`` on a target silences it.

The file never holds the signing key, only the name of the variable holding it; a URL that is
a credential itself (Slack's) can be a reference too: ``url: env:SLACK_WEBHOOK_URL``. Webhook URLs
pass the same operator policy as provider URLs (``rotator.urlpolicy``, checked when the file is
loaded and on every request): https only, and a host in the webhook allow-list
(``hooks.slack.com`` by default, more with ``ROTATOR_ALLOWED_HOSTS=notify=<host>``), or a
``ROTATOR_INSECURE_HOSTS`` entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rotator.notify.events import DEFAULT_EVENTS, EventKind
from rotator.timeparse import parse_interval
from rotator.urlpolicy import WEBHOOKS, UrlPolicy

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"

WebhookName = Annotated[str, Field(pattern=_NAME)]


_URL_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]{0,127})$")


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = Field(
        description="https URL of the receiver (host rules: rotator.urlpolicy), or env:NAME "
        "for a URL that is itself a credential (a Slack webhook URL)"
    )
    format: Literal["json", "slack"] = "json"
    secret_env: str = Field(
        pattern=_ENV_NAME,
        description="Name of the environment variable holding the HMAC-SHA256 signing key",
    )
    events: list[EventKind] | None = Field(default=None, description="This webhook's filter")
    rate_per_minute: int = Field(default=30, ge=1, le=6000)
    burst: int = Field(default=5, ge=1, le=1000)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not _URL_REF.match(value) and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL or env:NAME")
        return value

    @property
    def url_env(self) -> str | None:
        """The variable holding the URL when ``url`` is an ``env:`` reference."""
        match = _URL_REF.match(self.url)
        return match.group(1) if match else None


class TargetNotify(BaseModel):
    """A target's own routing: which webhooks, which events (defaults: the section's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    webhooks: list[WebhookName] | None = None
    events: list[EventKind] | None = None


class NotifySection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    webhooks: dict[WebhookName, Webhook] = Field(default_factory=dict)
    events: list[EventKind] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    dedupe_window: str = Field(default="1h", description="One notice per job and event within")

    @field_validator("dedupe_window")
    @classmethod
    def _window(cls, value: str) -> str:
        if parse_interval(value) < 1:
            raise ValueError("must be at least 1s")
        return value

    @property
    def dedupe_seconds(self) -> int:
        return max(1, int(parse_interval(self.dedupe_window)))

    def route(self, kind: EventKind, target: TargetNotify | None) -> list[str]:
        """The webhooks a notice of ``kind`` (about a target with ``target`` routing) goes to."""
        names = list(self.webhooks)
        events: list[EventKind] = self.events
        if target is not None:
            if target.webhooks is not None:
                names = [n for n in target.webhooks if n in self.webhooks]
            if target.events is not None:
                events = target.events
        if kind is not EventKind.TEST and kind not in events:
            return []
        return [
            name
            for name in names
            if kind is EventKind.TEST
            or self.webhooks[name].events is None
            or kind in (self.webhooks[name].events or ())
        ]


def notify_issues(
    section: NotifySection,
    routes: dict[str, TargetNotify | None],
    policy: UrlPolicy | None,
    credential_vars: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """(field, problem) for webhook URLs the operator's policy refuses (unless ``policy`` is
    None: already checked), for targets naming webhooks the section does not define, and for
    a webhook whose key or URL variable is a secret of something else: rotator's own
    (``ROTATOR_*``) or a credential the file references (``credential_vars``: variable ->
    where). A targets-file edit could otherwise have every notice carry a MAC keyed with the
    master key, or a provider secret, to a receiver of the editor's choosing."""
    issues = []
    taken = credential_vars or {}
    for name, hook in section.webhooks.items():
        for field, variable in (("secret_env", hook.secret_env), ("url", hook.url_env)):
            if variable is None:
                continue
            if variable.upper().startswith("ROTATOR_"):
                problem = "names one of rotator's own variables; use a variable of its own"
            elif variable in taken:
                problem = f"names {taken[variable]}'s variable; use a variable of its own"
            else:
                continue
            issues.append((f"notify.webhooks.{name}.{field}", problem))
    for name, hook in section.webhooks.items():
        if hook.url_env or policy is None:  # url_env: checked when resolved, on every request
            continue
        refused = policy.violation(WEBHOOKS, hook.url)
        if refused:
            issues.append((f"notify.webhooks.{name}.url", refused))
    for target, route in routes.items():
        for index, hook_name in enumerate((route.webhooks or []) if route else []):
            if hook_name not in section.webhooks:
                known = ", ".join(section.webhooks) or "none"
                issues.append(
                    (
                        f"targets.{target}.notify.webhooks.{index}",
                        f"no webhook named {hook_name!r} in notify.webhooks (known: {known})",
                    )
                )
    return issues


__all__ = ["NotifySection", "TargetNotify", "Webhook", "notify_issues"]
