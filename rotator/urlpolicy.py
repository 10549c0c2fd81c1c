"""Which URLs a provider adapter may call: the operator decides, never the targets file.

A targets-file edit must not be a way to send credentials somewhere else, so every URL an
adapter calls (``base_url``, the token URLs in options such as ``ims_url`` / ``auth_url``, and
URLs derived from them) passes one policy, built from operator-side settings only:

* ``https://`` only, and never user info (``https://user:pw@host``: it changes which host a
  reader thinks is called, and it is a credential in a URL);
* the host is in the provider's default allow-list (each adapter's ``allowed_hosts``: its real
  service, e.g. ``*.adobe.io``), or added for that provider by ``ROTATOR_ALLOWED_HOSTS``
  (``ciphertrust=kms.example.com,uipath=*.corp.example``: self-hosted services have no
  default);
* plain ``http://`` only for a ``host:port`` in ``ROTATOR_INSECURE_HOSTS``
  (``127.0.0.1:8765``, or ``127.0.0.1:*`` for any port): the local sandbox of the demo and the
  tests. Those hosts are allowed for every provider, over http or https.

Webhook URLs (``rotator.notify``) obey the same rules under the pseudo-provider ``notify``:
its default allow-list is Slack's incoming-webhook host, ``ROTATOR_ALLOWED_HOSTS`` adds more
(``notify=hooks.example.com``), and every delivery's URL is checked again in a request hook.

Patterns: ``name`` matches that host exactly; ``*.name`` matches any host below ``name`` (not
``name`` itself); ``:port`` at the end restricts the port (default: any port). Hosts compare
case-insensitively and without a trailing dot.

The policy is checked when the targets file is loaded (every violation is reported, with the
target and the field) and again on every request, in the request hook of the one pooled HTTP
client per provider (``ProviderContext.client``): a URL built from a template, a default option
or anything else still cannot leave the allow-list, and redirects are never followed.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from rotator.errors import URLRefused

INSECURE_ENV = "ROTATOR_INSECURE_HOSTS"
ALLOWED_ENV = "ROTATOR_ALLOWED_HOSTS"
# The pseudo-provider whose rules webhook URLs obey, and its default hosts.
WEBHOOKS = "notify"
WEBHOOK_HOSTS = ("hooks.slack.com",)

_HOST = r"(?:\*\.)?[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?"
_PATTERN = re.compile(rf"^(?P<host>{_HOST}|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{{1,5}}|\*))?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HostPattern:
    host: str  # lower case, no trailing dot; "*.example.com" for any host below example.com
    port: int | None = None  # None: any port

    @classmethod
    def parse(cls, text: str, *, port_required: bool = False) -> HostPattern:
        match = _PATTERN.match(text.strip())
        if not match:
            raise ValueError(f"{text.strip()!r} is not a host pattern like kms.example.com[:443]")
        port = match.group("port")
        if port_required and port is None:
            raise ValueError(f"{text.strip()!r} needs a port (host:port, or host:* for any)")
        host = match.group("host").lower().rstrip(".").strip("[]")
        return cls(host, None if port in (None, "*") else int(port))

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


def parse_insecure_hosts(text: str) -> tuple[HostPattern, ...]:
    """``ROTATOR_INSECURE_HOSTS``: comma-separated ``host:port`` (or ``host:*``), no wildcards."""
    patterns = []
    for item in _items(text):
        pattern = HostPattern.parse(item, port_required=True)
        if pattern.host.startswith("*."):
            raise ValueError(f"{item!r}: plain http is allowed for exact hosts only")
        patterns.append(pattern)
    return tuple(patterns)


def parse_allowed_hosts(text: str, providers: Iterable[str]) -> dict[str, tuple[HostPattern, ...]]:
    """``ROTATOR_ALLOWED_HOSTS``: comma-separated ``provider=pattern`` entries."""
    known = set(providers) | {WEBHOOKS}
    extra: dict[str, list[HostPattern]] = {}
    for item in _items(text):
        provider, sep, pattern = item.partition("=")
        provider = provider.strip()
        if not sep:
            raise ValueError(f"{item!r} is not provider=host (e.g. ciphertrust=kms.example.com)")
        if provider not in known:
            raise ValueError(f"{item!r}: unknown provider {provider!r}; known: {sorted(known)}")
        extra.setdefault(provider, []).append(HostPattern.parse(pattern))
    return {name: tuple(patterns) for name, patterns in extra.items()}


def insecure_entry(url: str) -> str:
    """The ``ROTATOR_INSECURE_HOSTS`` entry that opts one local server (the sandbox) in:
    exactly its ``host:port``."""
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 80)}"


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


@functools.cache
def adapter_rules(provider: str) -> tuple[tuple[HostPattern, ...], tuple[str, ...]]:
    """A provider's default host allow-list and the option names that hold URLs it calls,
    declared by the adapter class (imported lazily, like ``load_provider``)."""
    from rotator.providers import REGISTRY

    if provider == WEBHOOKS:
        return tuple(HostPattern.parse(h) for h in WEBHOOK_HOSTS), ()
    spec = REGISTRY.get(provider)
    if spec is None:
        return (), ()
    module_name, _, class_name = spec.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    hosts = tuple(HostPattern.parse(h) for h in getattr(cls, "allowed_hosts", ()))
    return hosts, tuple(getattr(cls, "url_options", ()))


@dataclass(frozen=True)
class UrlPolicy:
    insecure: tuple[HostPattern, ...] = ()
    extra: Mapping[str, tuple[HostPattern, ...]] = field(default_factory=dict)
    # (provider, URL text) -> violation: a targets file names the same few URLs for thousands
    # of targets, and parsing each took a quarter of loading 100,000 of them.
    _decided: dict[tuple[str, str], str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @classmethod
    def from_settings(cls, insecure_hosts: str, allowed_hosts: str) -> UrlPolicy:
        """From the (already validated) settings strings."""
        from rotator.providers import provider_names

        return cls(
            parse_insecure_hosts(insecure_hosts),
            parse_allowed_hosts(allowed_hosts, provider_names()),
        )

    def allowed(self, provider: str) -> tuple[HostPattern, ...]:
        return adapter_rules(provider)[0] + tuple(self.extra.get(provider, ()))

    def transport_violation(self, url: str | httpx.URL) -> str | None:
        """The rule every outgoing URL obeys, whoever calls it: https, no user info; plain
        http only to a host the operator listed. (Secret stores have no host allow-list.)"""
        problem, _host, _port = self._transport(url)
        return problem

    def violation(self, provider: str, url: str | httpx.URL) -> str | None:
        """Why ``provider`` may not call ``url`` (None: it may). Never echoes user info."""
        problem, host, port = self._transport(url)
        if problem or any(p.matches(host, port) for p in self.insecure):
            return problem
        if any(p.matches(host, port) for p in self.allowed(provider)):
            return None
        defaults = ", ".join(str(p) for p in self.allowed(provider)) or "none"
        return (
            f"host {host} is not allowed for provider {provider} (allowed: {defaults}); "
            f"the operator can add it with {ALLOWED_ENV}={provider}=<host>"
        )

    def _transport(self, url: str | httpx.URL) -> tuple[str | None, str, int]:
        """(problem or None, host, port) under the https / insecure-hosts rule."""
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            return "is not a valid URL", "", 0
        if parsed.userinfo:
            return "must not contain user info (user:password@)", "", 0
        scheme = parsed.scheme
        host = parsed.host.lower().rstrip(".")
        if scheme not in _DEFAULT_PORTS or not host:
            return "must be an https:// URL with a host", host, 0
        port = parsed.port or _DEFAULT_PORTS[scheme]
        if scheme == "http" and not any(p.matches(host, port) for p in self.insecure):
            return (
                f"plain http:// to {host}:{port} is refused; only hosts listed in "
                f"{INSECURE_ENV} may be called without TLS",
                host,
                port,
            )
        return None, host, port

    def target_violations(
        self, provider: str, base_url: Any, options: Mapping[str, Any]
    ) -> list[tuple[str, str]]:
        """(field, problem) for every URL a target's adapter would call."""
        fields: list[tuple[str, Any]] = [("base_url", base_url)]
        fields += [(f"options.{o}", options[o]) for o in adapter_rules(provider)[1] if o in options]
        found = []
        for name, value in fields:
            if isinstance(value, str):
                problem = self._violation_of_text(provider, value)
            else:
                problem = "must be a URL"
            if problem:
                found.append((name, problem))
        return found

    def _violation_of_text(self, provider: str, url: str) -> str | None:
        """``violation`` for a URL as written, decided once per (provider, text)."""
        key = (provider, url)
        try:
            return self._decided[key]
        except KeyError:
            pass
        if len(self._decided) >= 65_536:  # bounded: a file of distinct URLs is parsed each time
            self._decided.clear()
        problem = self._decided[key] = self.violation(provider, url)
        return problem

    def request_hook(self, provider: str) -> Callable[[httpx.Request], Awaitable[None]]:
        """An httpx request hook: runs on the final URL of every request the client sends."""

        async def check(request: httpx.Request) -> None:
            problem = self.violation(provider, request.url)
            if problem:
                raise URLRefused(f"request URL {problem}", provider=provider)

        return check


__all__ = [
    "ALLOWED_ENV",
    "INSECURE_ENV",
    "WEBHOOKS",
    "WEBHOOK_HOSTS",
    "HostPattern",
    "UrlPolicy",
    "adapter_rules",
    "insecure_entry",
    "parse_allowed_hosts",
    "parse_insecure_hosts",
]
