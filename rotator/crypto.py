"""Encryption at rest and keyed fingerprints; all primitives come from ``cryptography``.

* Secret values are sealed with AES-256-GCM under a key derived (HKDF) from a master key: the
  first master key seals, every listed key opens, so the master key itself can be rotated
  (``rotator keys rotate`` re-seals). A sealed value is ``0x02 || nonce (12) || ciphertext ||
  tag (16)``, 29 bytes over the value's JSON; the Fernet tokens stored before (raw bytes from
  ``0x80``, or base64 text from ``gAAAAA``) cost 57 bytes plus padding plus a JSON record naming
  secret and version, and base64 on top. A million targets keep their versions at rest, so this
  is most of rotator's Redis memory (README "Performance"). Both older forms still open.
* The sealed value is bound to its secret and version (GCM's associated data; the Fernet record
  named them inside), so a value copied to another secret's or version's slot in Redis is
  rejected instead of silently used.
* Fingerprints are HMAC-SHA256 under a key derived (HKDF) from the audit key, so a fingerprint in
  a log or audit event says "same value or not" without being a plain, guessable hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
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
# The first byte of an AES-GCM sealed value; its nonce length.
_SEALED_V2 = b"\x02"
_NONCE = 12


def _binding(secret: str, version: str) -> bytes:
    """GCM associated data: what a sealed value belongs to."""
    return b"rotator sealed v2\x00" + secret.encode() + b"\x00" + version.encode()


def _text_token(token: bytes) -> bytes:
    """The base64 text Fernet reads, from a stored Fernet token of either form."""
    if token[:1] == _FERNET_VERSION:
        return base64.urlsafe_b64encode(token)
    return token


class Vault:
    def __init__(self, master_keys: Sequence[str], audit_key: bytes) -> None:
        if not master_keys:
            raise ValueError("at least one master key is required")
        self._newest = Fernet(master_keys[0].encode())
        self._fernet = MultiFernet([self._newest, *(Fernet(k.encode()) for k in master_keys[1:])])
        self._sealers = [
            AESGCM(derive_key(base64.urlsafe_b64decode(k.encode()), "rotator seal v2"))
            for k in master_keys
        ]
        # Fingerprints use the newest audit key; `keys rotate-audit` rebuilds the indexes.
        newest = (split_keys(audit_key) or [audit_key])[0]
        self._fingerprint_key = derive_key(newest, "rotator fingerprint v1")

    def fingerprint(self, fields: Mapping[str, Any]) -> str:
        return hmac.new(self._fingerprint_key, canonical_json(fields), hashlib.sha256).hexdigest()

    def seal(self, secret: str, version: str, fields: Mapping[str, Any]) -> bytes:
        """``fields`` sealed under the newest master key, bound to ``secret`` and ``version``."""
        nonce = os.urandom(_NONCE)
        sealed = self._sealers[0].encrypt(
            nonce, canonical_json(dict(fields)), _binding(secret, version)
        )
        return _SEALED_V2 + nonce + sealed

    def open(self, secret: str, version: str, token: bytes) -> dict[str, Any]:
        if token[:1] == _SEALED_V2:
            return self._open_v2(secret, version, token)
        try:
            record = json.loads(self._fernet.decrypt(_text_token(token)))
        except (InvalidToken, binascii.Error):
            raise DecryptionError(
                f"secret {secret} {version}: cannot decrypt with the configured master keys"
            ) from None
        if record.get("secret") != secret or record.get("version") != version:
            raise DecryptionError(f"secret {secret} {version}: stored record belongs elsewhere")
        fields = record["fields"]
        assert isinstance(fields, dict)
        return fields

    def _open_v2(self, secret: str, version: str, token: bytes) -> dict[str, Any]:
        nonce, sealed = token[1 : 1 + _NONCE], token[1 + _NONCE :]
        for sealer in self._sealers:
            try:
                fields = json.loads(sealer.decrypt(nonce, sealed, _binding(secret, version)))
            except (InvalidTag, ValueError):
                continue
            assert isinstance(fields, dict)
            return fields
        raise DecryptionError(
            f"secret {secret} {version}: cannot decrypt with the configured master keys "
            "(or it was sealed for another secret or version)"
        )

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

    def reseal(self, secret: str, version: str, token: bytes) -> bytes:
        """Open with any configured master key and seal again under the newest (for master-key
        rotation); a value stored in an older form comes out in the current one."""
        return self.seal(secret, version, self.open(secret, version, token))
