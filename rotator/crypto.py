"""Encryption at rest and keyed fingerprints; all primitives come from ``cryptography``.

* Secret values are stored as MultiFernet tokens: the first master key encrypts, every listed key
  decrypts, so the master key itself can be rotated (``rotator keys rotate`` re-encrypts).
* Fingerprints are HMAC-SHA256 under a key derived (HKDF) from the audit key, so a fingerprint in
  a log or audit event says "same value or not" without being a plain, guessable hash.
* The encrypted record names its secret and version and is checked on decryption, so a token
  copied to another secret's slot in Redis is rejected instead of silently used.
* ``seal`` returns the token's raw bytes, not Fernet's base64 text: a quarter less in Redis,
  where a million targets keep their versions at rest (see README "Performance"). ``open`` and
  ``reseal`` take either form (a raw token starts with Fernet's version byte 0x80, a text one
  with ``gAAAAA``), so versions stored before are read as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rotator.errors import DecryptionError as DecryptionError

# An audit key shorter than this is refused (it keys the chain, checkpoints and fingerprints).
MIN_AUDIT_KEY_BYTES = 32


def split_keys(raw: bytes) -> list[bytes]:
    """``ROTATOR_AUDIT_KEY`` as a list, newest first (comma-separated, like the master keys)."""
    return [part.strip() for part in raw.split(b",") if part.strip()]


def key_check(key: bytes, label: str) -> str:
    """A key's check value: a MAC of a constant. It names the key (in Redis, in the chain)
    without revealing it, so a process can tell "same key or not" before writing anything."""
    return hmac.new(derive_key(key, label), b"rotator key check v1", hashlib.sha256).hexdigest()[
        :32
    ]


def derive_key(secret: bytes, label: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label.encode()).derive(secret)


def canonical_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_MASTER_CHECK = b"rotator master key check v1"
# The first byte of every Fernet token (its version field), before base64.
_FERNET_VERSION = b"\x80"


def raw_token(token: bytes) -> bytes:
    """A Fernet token's raw bytes (what ``seal`` stores) from its base64 text."""
    return base64.urlsafe_b64decode(token)


def text_token(token: bytes) -> bytes:
    """The base64 text Fernet reads, from a stored token of either form."""
    if token[:1] == _FERNET_VERSION:
        return base64.urlsafe_b64encode(token)
    return token


class Vault:
    def __init__(self, master_keys: Sequence[str], audit_key: bytes) -> None:
        if not master_keys:
            raise ValueError("at least one master key is required")
        self._newest = Fernet(master_keys[0].encode())
        self._fernet = MultiFernet([self._newest, *(Fernet(k.encode()) for k in master_keys[1:])])
        # Fingerprints use the newest audit key; `keys rotate-audit` rebuilds the indexes.
        newest = (split_keys(audit_key) or [audit_key])[0]
        self._fingerprint_key = derive_key(newest, "rotator fingerprint v1")

    def fingerprint(self, fields: Mapping[str, Any]) -> str:
        return hmac.new(self._fingerprint_key, canonical_json(fields), hashlib.sha256).hexdigest()

    def seal(self, secret: str, version: str, fields: Mapping[str, Any]) -> bytes:
        """The sealed record as a raw Fernet token (see the module docstring)."""
        record = {"secret": secret, "version": version, "fields": dict(fields)}
        return raw_token(self._fernet.encrypt(canonical_json(record)))

    def open(self, secret: str, version: str, token: bytes) -> dict[str, Any]:
        try:
            record = json.loads(self._fernet.decrypt(text_token(token)))
        except (InvalidToken, binascii.Error):
            raise DecryptionError(
                f"secret {secret} {version}: cannot decrypt with the configured master keys"
            ) from None
        if record.get("secret") != secret or record.get("version") != version:
            raise DecryptionError(f"secret {secret} {version}: stored record belongs elsewhere")
        fields = record["fields"]
        assert isinstance(fields, dict)
        return fields

    def master_check(self) -> bytes:
        """The master key's check value: a token of a constant under the newest key."""
        return self._fernet.encrypt(_MASTER_CHECK)

    def opens_check(self, token: bytes) -> bool:
        """Whether one of the configured master keys opens a stored check value."""
        try:
            return self._fernet.decrypt(token) == _MASTER_CHECK
        except InvalidToken:
            return False

    def newest_opens(self, token: bytes) -> bool:
        """Whether the newest master key alone opens a check value (a reseal is under way or
        done for this key)."""
        try:
            return self._newest.decrypt(token) == _MASTER_CHECK
        except InvalidToken:
            return False

    def reseal(self, token: bytes) -> bytes:
        """Re-encrypt under the newest master key (for master-key rotation); raw, as ``seal``
        stores it, whichever form ``token`` had."""
        return raw_token(self._fernet.rotate(text_token(token)))
