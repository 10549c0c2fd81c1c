"""The payloads a webhook receives: generic JSON (``format: json``) or Slack's (``slack``).

Both are built from a queued notice only (``rotator.notify.events.Notice``: ids, versions,
fingerprints, a short redacted detail), so no format can show a secret value it never had.

``json`` (schema ``rotator.notification/v1``)::

    {"schema": "rotator.notification/v1", "id": "<notice id>", "delivery": "<delivery id>",
     "event": "conflict", "time": 1764619000.5, "summary": "conflict: target crm (adobe) ...",
     "job_id": "...", "target": "crm", "provider": "adobe", "outcome": "conflict",
     "attempt": 1, "secret_version": "v3", "fingerprint": "9f2c...",
     "remote_version_before": "e7", "remote_version_after": "e8",
     "error_class": "Conflict", "detail": "remote changed out of band ..."}

``id`` is the same for every webhook and retry of one notice; ``delivery`` is the same for
every retry of one delivery (receivers deduplicate on it).

``slack`` is an incoming-webhook message: ``text`` (the summary, also the notification
preview) and ``blocks`` (a section with the summary, a context line with job, version and
fingerprint). Text from a notice is escaped for Slack's mrkdwn (``&``, ``<``, ``>``), so a
detail cannot mention ``<!channel>`` or forge a link.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SCHEMA = "rotator.notification/v1"
FORMATS = ("json", "slack")

_NOTICE_FIELDS = (
    "job_id",
    "target",
    "provider",
    "outcome",
    "attempt",
    "secret_version",
    "fingerprint",
    "remote_version_before",
    "remote_version_after",
    "error_class",
    "detail",
)


def summary(notice: Mapping[str, Any]) -> str:
    kind = notice.get("kind", "event")
    where = f"target {notice['target']}" if notice.get("target") else "rotator"
    if notice.get("provider"):
        where += f" ({notice['provider']})"
    detail = notice.get("detail")
    return f"{kind}: {where}" + (f": {detail}" if detail else "")


def payload(notice: Mapping[str, Any], delivery_id: str, fmt: str) -> dict[str, Any]:
    if fmt == "slack":
        return _slack(notice)
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "id": notice.get("id"),
        "delivery": delivery_id,
        "event": notice.get("kind"),
        "time": notice.get("time"),
        "summary": summary(notice),
    }
    data.update({name: notice.get(name) for name in _NOTICE_FIELDS})
    return data


def body(notice: Mapping[str, Any], delivery_id: str, fmt: str) -> bytes:
    """The exact bytes sent (and signed): compact JSON, keys sorted."""
    return json.dumps(
        payload(notice, delivery_id, fmt), separators=(",", ":"), sort_keys=True
    ).encode()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(notice: Mapping[str, Any]) -> dict[str, Any]:
    text = _escape(f"[rotator] {summary(notice)}")
    facts = [
        f"{label} `{_escape(str(notice[name]))}`"
        for label, name in (
            ("job", "job_id"),
            ("version", "secret_version"),
            ("fingerprint", "fingerprint"),
            ("remote", "remote_version_after"),
        )
        if notice.get(name)
    ]
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if facts:
        context = {"type": "mrkdwn", "text": " · ".join(facts)}
        blocks.append({"type": "context", "elements": [context]})
    return {"text": text, "blocks": blocks}


__all__ = ["FORMATS", "SCHEMA", "body", "payload", "summary"]
