"""Bearer tokens with scopes, configured as SHA-256 digests in ``ROTATOR_API_TOKENS``.

Format: comma-separated ``name:scope1+scope2:sha256hex`` entries, for example::

    ROTATOR_API_TOKENS='incident-bot:enqueue+read:3f1c...e9,siem:audit:0b7a...41'

Scopes: ``enqueue`` (POST a rotation), ``read`` (jobs and targets), ``audit`` (the audit log).
Only digests are configured, so the environment of the API process, a ConfigMap or a leaked
``ps e`` never holds a usable token. Tokens are random strings of at least 32 characters, so
an unsalted SHA-256 is enough: there is no dictionary to try. A presented token is hashed and
compared with every configured digest with ``hmac.compare_digest``, without an early exit, so
the time taken says nothing about which digest, or how much of one, matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

from rotator.errors import ConfigError, ConfigIssue

SCOPES = frozenset({"enqueue", "read", "audit"})
ENV_NAME = "ROTATOR_API_TOKENS"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ApiToken:
    """A configured token: its name (the audit actor), scopes and digest (never shown)."""

    name: str
    scopes: frozenset[str]
    digest: bytes = field(repr=False)

    @property
    def actor(self) -> str:
        return f"api:{self.name}"


def digest(token: str) -> str:
    """The hex digest to configure for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_tokens(text: str) -> list[ApiToken]:
    """Parse ``ROTATOR_API_TOKENS``; every malformed entry is reported (by position and name,
    never echoing a digest)."""
    tokens: list[ApiToken] = []
    issues: list[ConfigIssue] = []
    seen: set[str] = set()
    for index, raw in enumerate(e.strip() for e in text.split(",")):
        if not raw:
            continue
        where = f"{ENV_NAME}[{index}]"
        parts = raw.split(":")
        if len(parts) != 3:
            issues.append(ConfigIssue("environment", where, "expected name:scopes:sha256hex"))
            continue
        name, scope_text, hexdigest = parts
        problem = _entry_problem(name, scope_text, hexdigest.lower(), seen)
        if problem:
            issues.append(ConfigIssue("environment", where, problem))
            continue
        seen.add(name)
        scopes = frozenset(scope_text.split("+"))
        tokens.append(ApiToken(name, scopes, bytes.fromhex(hexdigest.lower())))
    if issues:
        raise ConfigError(issues)
    if not tokens:
        raise ConfigError(
            [ConfigIssue("environment", ENV_NAME, "no API tokens configured: nobody could call")]
        )
    return tokens


def _entry_problem(name: str, scope_text: str, hexdigest: str, seen: set[str]) -> str:
    if not _NAME.match(name):
        return f"token name {name!r} must match {_NAME.pattern}"
    if name in seen:
        return f"token name {name!r} is configured twice"
    unknown = set(scope_text.split("+")) - SCOPES
    if not scope_text or unknown:
        return f"token {name!r}: scopes must be among {'+'.join(sorted(SCOPES))}"
    if not _DIGEST.match(hexdigest):
        return f"token {name!r}: the digest must be 64 hex characters (SHA-256)"
    return ""


class TokenTable:
    """Looks a presented bearer token up among the configured digests."""

    def __init__(self, tokens: list[ApiToken]) -> None:
        self._tokens = tuple(tokens)

    def __repr__(self) -> str:
        return f"TokenTable({', '.join(t.name for t in self._tokens)})"

    def find(self, presented: str) -> ApiToken | None:
        candidate = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: ApiToken | None = None
        for token in self._tokens:  # no early exit: constant time in the match position
            if hmac.compare_digest(candidate, token.digest) and found is None:
                found = token
        return found


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or " " in value:
        return None
    return value
