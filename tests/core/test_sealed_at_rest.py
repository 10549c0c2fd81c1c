"""Sealed secret versions at rest: raw Fernet bytes in Redis, old base64 tokens still read."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet

from rotator.crypto import Vault
from rotator.errors import DecryptionError
from rotator.store.keyring import KeyStore

from .conftest import Harness

FIELDS = {"username": "svc", "password": "correct horse battery staple"}


def _vault(*keys: str) -> Vault:
    return Vault(list(keys), b"audit-key")


def test_seal_stores_raw_bytes_a_quarter_smaller_than_fernet_text() -> None:
    key = Fernet.generate_key().decode()
    vault = _vault(key)
    sealed = vault.seal("crm", "v000000000001", FIELDS)
    text = base64.urlsafe_b64encode(sealed)
    assert sealed[:1] == b"\x80"  # Fernet's version byte, not base64 text
    assert len(sealed) * 4 <= len(text) * 3 + 3
    assert Fernet(key.encode()).decrypt(text)  # the same token, spelled as Fernet spells it
    assert vault.open("crm", "v000000000001", sealed) == FIELDS


def test_a_token_stored_as_base64_text_before_still_opens_and_reseals_raw() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = _vault(old)
    text = base64.urlsafe_b64encode(before.seal("crm", "v000000000001", FIELDS))
    assert text.startswith(b"gAAAAA")  # what earlier versions of rotator stored
    assert before.open("crm", "v000000000001", text) == FIELDS
    rotated = _vault(new, old)
    resealed = rotated.reseal(text)
    assert resealed[:1] == b"\x80"
    assert _vault(new).open("crm", "v000000000001", resealed) == FIELDS
    assert rotated.reseal(resealed) != resealed  # a raw token reseals too (fresh IV)


@pytest.mark.parametrize("form", ["raw", "text"])
def test_a_sealed_record_still_names_its_secret_and_version(form: str) -> None:
    vault = _vault(Fernet.generate_key().decode())
    sealed = vault.seal("crm", "v000000000001", FIELDS)
    token = sealed if form == "raw" else base64.urlsafe_b64encode(sealed)
    with pytest.raises(DecryptionError, match="belongs elsewhere"):
        vault.open("erp", "v000000000001", token)
    with pytest.raises(DecryptionError, match="belongs elsewhere"):
        vault.open("crm", "v000000000002", token)


def test_garbage_is_a_decryption_error_in_either_form() -> None:
    vault = _vault(Fernet.generate_key().decode())
    for token in (b"\x80not a token", b"gAAAAAnot-a-token", b""):
        with pytest.raises(DecryptionError):
            vault.open("crm", "v000000000001", token)


def test_the_store_keeps_raw_versions_and_reads_a_mix(harness: Harness) -> None:
    store = harness.store
    version, _ = harness.run(store.put_secret_version("crm-login", FIELDS))
    key = store.keys.secret_versions("crm-login")
    stored = harness.run(harness.redis.hget(key, version))
    assert stored[:1] == b"\x80"
    # A version written by an earlier rotator (base64 text) next to it.
    old_version, _ = harness.run(store.put_secret_version("crm-login", {"password": "old"}))
    raw = harness.run(harness.redis.hget(key, old_version))
    harness.run(harness.redis.hset(key, old_version, base64.urlsafe_b64encode(raw)))
    assert harness.run(store.load_secret_version("crm-login", version)) == FIELDS
    assert harness.run(store.load_secret_version("crm-login", old_version)) == {"password": "old"}
    assert harness.run(store.reseal_versions("crm-login")) == 2
    for v in (version, old_version):
        assert harness.run(harness.redis.hget(key, v))[:1] == b"\x80"


def test_the_fingerprint_index_is_raw_and_holds_the_sequence_number(harness: Harness) -> None:
    store, r = harness.store, harness.redis
    k = store.keys
    v1, fp1 = harness.run(store.put_secret_version("crm-login", FIELDS))
    v2, _ = harness.run(store.put_secret_version("crm-login", {"password": "two"}))
    index = harness.run(r.hgetall(k.secret_fingerprints("crm-login")))
    assert index == {
        bytes.fromhex(fp1): v1.encode(),
        bytes.fromhex(store.vault.fingerprint({"password": "two"})): v2.encode(),
        b"#seq": b"2",
    }
    assert not harness.run(r.exists(k.secret_seq("crm-login")))  # one key less per secret
    # The same value again finds its version; a new one takes the next number.
    assert harness.run(store.put_secret_version("crm-login", FIELDS))[0] == v1
    assert harness.run(store.version_with_fingerprint("crm-login", fp1)) == v1
    assert harness.run(store.put_secret_version("crm-login", {"password": "3"}))[0].endswith("3")


def test_an_index_and_sequence_stored_by_an_earlier_version_are_honoured(
    harness: Harness,
) -> None:
    # Given a secret stored the earlier way: hex-keyed index, sequence number in its own key
    store, r = harness.store, harness.redis
    k = store.keys
    v7, fp = harness.run(store.put_secret_version("erp", FIELDS))
    harness.run(r.delete(k.secret_fingerprints("erp")))
    harness.run(r.hset(k.secret_fingerprints("erp"), fp, "v000000000007"))
    harness.run(r.rename(k.secret_versions("erp"), "scratch"))
    harness.run(
        r.hset(k.secret_versions("erp"), "v000000000007", harness.run(r.hget("scratch", v7)))
    )
    harness.run(r.delete("scratch"))
    harness.run(r.set(k.secret_seq("erp"), "7"))
    # When the same value is loaded again, and then a new one
    assert harness.run(store.put_secret_version("erp", FIELDS))[0] == "v000000000007"
    assert harness.run(store.version_with_fingerprint("erp", fp)) == "v000000000007"
    new, _ = harness.run(store.put_secret_version("erp", {"password": "new"}))
    # Then the number continues from the old key, which is kept in step for older processes
    assert new == "v000000000008"
    assert harness.run(r.get(k.secret_seq("erp"))) == b"8"
    harness.run(r.incr(k.secret_seq("erp")))  # a process still on the earlier code took 9
    assert harness.run(store.put_secret_version("erp", {"password": "newer"}))[0].endswith("10")


def test_rebuilding_the_index_after_an_audit_key_rotation_keeps_the_sequence_number(
    harness: Harness,
) -> None:
    store, r = harness.store, harness.redis
    k = store.keys
    for n in range(3):
        harness.run(store.put_secret_version("crm-login", {"password": f"p{n}"}))
    harness.run(r.hset(k.secret_fingerprints("crm-login"), "stale-hex-entry", "v000000000001"))
    keyring = KeyStore(r, k, store.vault)
    assert harness.run(keyring.refingerprint("crm-login")) == 3
    index = harness.run(r.hgetall(k.secret_fingerprints("crm-login")))
    assert index.pop(b"#seq") == b"3" and len(index) == 3
    assert b"stale-hex-entry" not in index
    assert harness.run(store.put_secret_version("crm-login", {"password": "p3"}))[0].endswith("4")
