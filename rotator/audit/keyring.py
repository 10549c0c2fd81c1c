"""The audit keys: one per epoch, newest first, and what is signed with them.

``ROTATOR_AUDIT_KEY`` is a comma-separated list, newest first (like ``ROTATOR_MASTER_KEY``).
Each key is named by its *kid*, a check value (``crypto.key_check``: a MAC of a constant), never
by the key itself. The chain is written with the newest key; an ``audit.key_rotated`` event,
chained with the old key, names the kid of the key every later event is chained with (the
key epoch), so ``verify`` walks across rotations as long as the old keys stay listed.

Besides the chain, the keys sign (HMAC, Vault-audit style) three records that live where an
attacker with write access could otherwise edit them:

==========  ===================================================================================
label       what is signed
==========  ===================================================================================
anchor      the chain anchor after archiving (``archived_seq``/``archived_hash``/kid) in Redis
checkpoint  a verified head (seq, hash, time) kept outside Redis (``rotator audit checkpoint``)
owed        a job's terminal event kept in the job hash until it is chained (``audit_owed``)
==========  ===================================================================================

A signature carries the signer's kid; any listed key is accepted, so records signed before a
rotation still verify.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from rotator.audit.events import chain_key
from rotator.crypto import MIN_AUDIT_KEY_BYTES, canonical_json, derive_key, key_check, split_keys

KID_LABEL = "rotator audit key id v1"
SIGN_LABEL = "rotator audit signature v1"
ROTATED_EVENT = "audit.key_rotated"


def audit_kid(key: bytes) -> str:
    return key_check(key, KID_LABEL)


class AuditKeyring:
    """The configured audit keys, newest first, by kid."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one audit key is required")
        self.keys = list(keys)
        self.kids = [audit_kid(k) for k in self.keys]
        self._chain = {kid: chain_key(k) for kid, k in zip(self.kids, self.keys, strict=True)}
        self._sign = {
            kid: derive_key(k, SIGN_LABEL) for kid, k in zip(self.kids, self.keys, strict=True)
        }

    @classmethod
    def parse(cls, raw: bytes) -> AuditKeyring:
        return cls(split_keys(raw) or [raw])

    @property
    def kid(self) -> str:
        """The kid of the newest key: the one new events are chained with."""
        return self.kids[0]

    @property
    def oldest_kid(self) -> str:
        return self.kids[-1]

    def chain(self, kid: str | None = None) -> bytes | None:
        """The chain key of ``kid`` (default: the newest), None when that key is not listed."""
        return self._chain.get(kid or self.kid)

    def too_short(self) -> bool:
        return any(len(k) < MIN_AUDIT_KEY_BYTES for k in self.keys)

    def sign(self, label: str, record: Mapping[str, Any]) -> dict[str, str]:
        """``{"kid", "mac"}`` over ``label`` and the canonical record, with the newest key."""
        return {"kid": self.kid, "mac": self._mac(self._sign[self.kid], label, record)}

    def signed(self, label: str, record: Mapping[str, Any], kid: str, mac: str) -> bool:
        """Whether ``mac`` is a signature of the record by a listed key named ``kid``."""
        key = self._sign.get(kid)
        if key is None or not isinstance(mac, str):
            return False
        return hmac.compare_digest(self._mac(key, label, record), mac)

    @staticmethod
    def _mac(key: bytes, label: str, record: Mapping[str, Any]) -> str:
        return hmac.new(
            key, label.encode() + b"\n" + canonical_json(record), hashlib.sha256
        ).hexdigest()
