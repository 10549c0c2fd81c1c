"""Untrusted text made safe to store, log and show: control stripping and secret redaction.

Text a provider sends back (error codes, messages, versions) is untrusted twice over: it may
carry terminal control sequences or rich markup meant for an operator's screen, and it may
echo a secret value we sent, whole or in part, in some encoding. Everything provider-supplied
passes through here before it is stored in a job, an audit event or a log line:

``strip_controls``
    removes C0/C1 controls (keeping newline and tab), whole ESC/CSI/OSC sequences, and Unicode
    format characters (bidi overrides, zero-width joiners) that could hide or reorder text.
``Redactor``
    replaces every run of >= 8 characters (whole values when shorter) that also occurs in a
    secret value, compared case-insensitively, in each encoding a peer might echo: plain,
    URL-encoded (once or twice), HTML-escaped, JSON-escaped, base64 and hex. Any fragment of
    8 or more characters counts, so truncated prefixes and suffixes are caught too.
``provider_code`` / ``provider_message``
    what adapters keep from an error body: a code matching ``CODE_PATTERN`` (else nothing) and
    a message bounded to ``MESSAGE_LIMIT`` characters, stripped and redacted.
``describe_failure``
    the one text a failed attempt stores (``last_error``, the audit ``detail``), for any
    exception: decode errors never show their bytes.

Which values count as secret is known by construction: ``SecretPayload`` and ``TargetSpec``
call ``hold`` with the values they carry, which records them in a context variable for the
current asyncio task (``scope`` gives each job its own). ``LogScrubber`` is a structlog
processor that redacts those values, the process's own keys and well-known credential shapes
(bearer tokens, Fernet tokens, ``password=...``) from every log event: a last line of defence
for whatever a code path forgot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any

REDACTED = "[redacted]"
GRAM = 8  # the shortest fragment of a secret that is redacted wherever it appears
MIN_SECRET = 4  # values shorter than this are too common to redact (e.g. "etl", "1")
MESSAGE_LIMIT = 300  # characters of a provider's error message that are kept
DESCRIBE_LIMIT = 500  # characters of a failure description (job last_error, audit detail)
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

# ESC sequences first (CSI "ESC [ ... final", OSC "ESC ] ... BEL|ESC \\", two-byte escapes),
# so that their printable tails ("[2J", "]8;;http://...") go with them.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC (hyperlinks, titles)
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[@-Z\\-_]"  # other two-byte escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
_KEEP = frozenset("\n\t")


def strip_controls(text: str) -> str:
    """``text`` without terminal escapes, control characters or Unicode format characters."""
    text = _ESCAPES.sub("", text)
    return "".join(
        ch for ch in text if ch in _KEEP or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co")
    )


def secret_strings(value: Any) -> list[str]:
    """Every string of at least ``MIN_SECRET`` characters inside a value (dicts, lists...)."""
    if isinstance(value, str):
        return [value] if len(value) >= MIN_SECRET else []
    if isinstance(value, bytes):
        return secret_strings(value.decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in secret_strings(v)]
    if isinstance(value, list | tuple | set | frozenset):
        return [s for v in value for s in secret_strings(v)]
    return []


def _forms(value: str) -> set[str]:
    """The encodings in which a peer might echo ``value`` back."""
    raw = value.encode("utf-8", "surrogatepass")
    quoted = urllib.parse.quote(value, safe="")
    forms = {
        value,
        quoted,
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value),
        urllib.parse.quote(quoted, safe=""),
        html.escape(value),
        html.escape(value, quote=False),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        raw.hex(),
    }
    forms |= {f.rstrip("=") for f in forms}
    return {f for f in forms if len(f) >= MIN_SECRET}


def _fold(text: str) -> str:
    """Lower case, one character for one, so positions in the folded text are positions in
    the original (``str.lower`` may lengthen a few characters, such as U+0130)."""
    return "".join(low if len(low := ch.lower()) == 1 else ch for ch in text)


class Redactor:
    """Replaces every fragment of the given secret values, in every form, by ``[redacted]``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        grams: dict[int, set[str]] = {}
        for value in values:
            for form in _forms(value):
                folded = _fold(form)
                size = min(GRAM, len(folded))
                bucket = grams.setdefault(size, set())
                bucket.update(folded[i : i + size] for i in range(len(folded) - size + 1))
        self._grams = grams

    def __bool__(self) -> bool:
        return bool(self._grams)

    def __repr__(self) -> str:
        return f"Redactor(fragments={sum(len(g) for g in self._grams.values())})"

    def redact(self, text: str) -> str:
        if not self._grams or not text:
            return text
        folded = _fold(text)
        spans: list[tuple[int, int]] = []
        for size, grams in self._grams.items():
            spans.extend(
                (i, i + size)
                for i in range(len(folded) - size + 1)
                if folded[i : i + size] in grams
            )
        if not spans:
            return text
        out, last = [], 0
        for start, end in _merged(spans):
            out.append(text[last:start])
            out.append(REDACTED)
            last = end
        out.append(text[last:])
        return "".join(out)


def _merged(spans: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    spans.sort()
    start, end = spans[0]
    for s, e in spans[1:]:
        if s <= end:
            end = max(end, e)
        else:
            yield start, end
            start, end = s, e
    yield start, end


# Credential shapes worth scrubbing even when the value is not known to this process.
_KEY = r"(?:client_|api_?)?secret|password|passwd|(?:access_|refresh_|id_)?token|api_?key"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    (re.compile(r"gAAAAA[A-Za-z0-9_=-]{20,}"), REDACTED),  # Fernet tokens
    # key=value (query strings, form bodies) and "key": "value" (JSON), not "key: text",
    # which is how rotator's own messages read ("secret db-password: cannot read ...").
    (re.compile(rf"(?i)\b({_KEY})=[^\s\"'&,;]+"), rf"\1={REDACTED}"),
    (re.compile(rf"(?i)(\"{_KEY}\"\s*:\s*)\"(?:[^\"\\]|\\.)*\""), rf'\1"{REDACTED}"'),
)


def scrub_patterns(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# -- the values the current task holds ------------------------------------------------------


class _Held:
    """The secret values one job holds; mutable so tasks spawned inside a job share it."""

    # A context that is never reset (a long-lived thread holding values outside ``scope``)
    # must not grow without bound: beyond this many values the oldest are forgotten.
    LIMIT = 256

    def __init__(self, values: Iterable[str] = (), owner: object = None) -> None:
        self.values: dict[str, None] = dict.fromkeys(values)
        self.owner = owner  # the task that may add to it; None: shared (a ``scope``)
        self._redactor: Redactor | None = None

    def add(self, values: Iterable[str]) -> None:
        new = [v for v in values if v not in self.values]
        if new:
            self.values.update(dict.fromkeys(new))
            for old in list(self.values)[: max(0, len(self.values) - self.LIMIT)]:
                del self.values[old]
            self._redactor = None

    def redactor(self) -> Redactor:
        if self._redactor is None:
            self._redactor = Redactor(self.values)
        return self._redactor

    def __repr__(self) -> str:
        return f"_Held(values={len(self.values)})"


_HELD: ContextVar[_Held | None] = ContextVar("rotator_held_secrets", default=None)
_STATIC = _Held()  # the process's own keys: redacted from every log line


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """A fresh set of held values for one job (tasks it spawns share it)."""
    token = _HELD.set(_Held())
    try:
        yield
    finally:
        _HELD.reset(token)


def hold(*values: Any) -> None:
    """Record secret values the current asyncio task holds, so that anything it stores or
    logs later is redacted of them. Inside ``scope`` every task of the job shares them;
    otherwise a task adds to a copy of what its parent held. Code outside any task (the
    engine always runs in one) holds nothing: a thread's base context lives for ever."""
    strings = secret_strings(list(values))
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    if not strings or task is None:
        return
    held = _HELD.get()
    if held is not None and held.owner in (None, task):
        held.add(strings)
    else:
        _HELD.set(_Held([*(held.values if held else ()), *strings], owner=task))


def hold_process_keys(*values: Any) -> None:
    """Values redacted from every log line of this process (the master and audit keys)."""
    _STATIC.add(secret_strings(list(values)))


def held() -> Redactor:
    """The redactor for what the current task holds."""
    held = _HELD.get()
    return held.redactor() if held is not None else _EMPTY


_EMPTY = Redactor()


def clean(text: str, limit: int, redactor: Redactor | None = None) -> str:
    """Stripped of controls, redacted (held values, credential shapes), at most ``limit``
    characters. Only a bounded prefix is examined, so a huge body costs little."""
    text = strip_controls(text[: limit * 4])
    text = (redactor or held()).redact(text)
    text = scrub_patterns(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def provider_code(code: Any) -> str:
    """A provider error code worth keeping: matches ``CODE_PATTERN`` and quotes no secret;
    anything else is dropped (the status and message still say what happened)."""
    text = str(code or "")
    if not CODE_PATTERN.match(text) or held().redact(text) != text:
        return ""
    return text


def provider_message(message: Any, limit: int = MESSAGE_LIMIT) -> str:
    return clean(str(message or ""), limit)


def describe_failure(exc: BaseException, limit: int = DESCRIBE_LIMIT) -> str:
    """What a failed attempt stores and logs about ``exc``: never the bytes a decode error
    carries, never a held secret value, never control characters."""
    if isinstance(exc, UnicodeError):
        return f"{type(exc).__name__}: the data is not valid text (content not shown)"
    return clean(str(exc) or type(exc).__name__, limit)


# -- structlog ----------------------------------------------------------------------------------

_SECRET_KEYS = frozenset(
    {"password", "passwd", "secret", "client_secret", "token", "access_token", "refresh_token"}
)


class LogScrubber:
    """structlog processor: redact held secret values, the process's keys and credential
    shapes from every string in the event, and blank fields named like credentials."""

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        task, static = held(), _STATIC.redactor()
        for key, value in event.items():
            if key.lower() in _SECRET_KEYS and value not in (None, ""):
                event[key] = REDACTED
            else:
                event[key] = _scrub(value, task, static)
        return event


def _scrub(value: Any, task: Redactor, static: Redactor) -> Any:
    if isinstance(value, str):
        return scrub_patterns(static.redact(task.redact(value)))
    if isinstance(value, Mapping):
        return {k: _scrub(v, task, static) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, task, static) for v in value]
    if isinstance(value, BaseException):
        return _scrub(str(value), task, static)
    return value


__all__ = [
    "CODE_PATTERN",
    "DESCRIBE_LIMIT",
    "MESSAGE_LIMIT",
    "REDACTED",
    "LogScrubber",
    "Redactor",
    "clean",
    "describe_failure",
    "hold",
    "hold_process_keys",
    "held",
    "provider_code",
    "provider_message",
    "scope",
    "scrub_patterns",
    "secret_strings",
    "strip_controls",
]
