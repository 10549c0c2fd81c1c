"""Secret versions at rest: AES-GCM sealed values and a compact fingerprint index, with what
earlier versions of rotator stored (Fernet tokens, hex fingerprints, the seq key) still read."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet

from rotator.crypto import Vault, canonical_json
from rotator.errors import DecryptionError
from rotator.store.keyring import KeyStore

from .conftest import Harness

FIELDS = {"username": "svc", "password": "correct horse battery staple"}


def _vault(*keys: str) -> Vault:
    return Vault(list(keys), b"audit-key")


def _fernet_forms(key: str, secret: str, version: str, fields: dict[str, str]) -> list[bytes]:
    """How earlier versions of rotator stored a sealed value: Fernet text, then raw bytes."""
    record = {"secret": secret, "version": version, "fields": fields}
    text = Fernet(key.encode()).encrypt(canonical_json(record))
    return [text, base64.urlsafe_b64decode(text)]


def test_seal_is_aes_gcm_29_bytes_over_the_value() -> None:
    vault = _vault(Fernet.generate_key().decode())
    sealed = vault.seal("crm", "v000000000001", FIELDS)
    assert sealed[:1] == b"\x02" and len(sealed) == 1 + 12 + len(canonical_json(FIELDS)) + 16
    assert vault.seal("crm", "v000000000001", FIELDS) != sealed  # a fresh nonce every time
    assert vault.open("crm", "v000000000001", sealed) == FIELDS
    fernet_text, fernet_raw = _fernet_forms(Fernet.generate_key().decode(), "crm", "v1", FIELDS)
    assert len(sealed) < len(fernet_raw) - 70 and len(fernet_raw) < len(fernet_text)


@pytest.mark.parametrize("form", [0, 1], ids=["fernet-text", "fernet-raw"])
def test_values_sealed_by_earlier_versions_still_open_and_reseal_current(form: int) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = _fernet_forms(old, "crm", "v000000000001", FIELDS)[form]
    assert _vault(old).open("crm", "v000000000001", token) == FIELDS
    with pytest.raises(DecryptionError, match="belongs elsewhere"):
        _vault(old).open("erp", "v000000000001", token)
    rotated = _vault(new, old)
    resealed = rotated.reseal("crm", "v000000000001", token)
    assert resealed[:1] == b"\x02"
    assert _vault(new).open("crm", "v000000000001", resealed) == FIELDS
    with pytest.raises(DecryptionError):
        _vault(old).open("crm", "v000000000001", resealed)


def test_every_listed_master_key_opens_the_newest_seals() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_old = _vault(old).seal("crm", "v000000000001", FIELDS)
    both = _vault(new, old)
    assert both.open("crm", "v000000000001", sealed_old) == FIELDS
    assert _vault(new).open("crm", "v000000000002", both.seal("crm", "v000000000002", FIELDS))


@pytest.mark.parametrize(("secret", "version"), [("erp", "v000000000001"), ("crm", "v2")])
def test_a_sealed_value_is_bound_to_its_secret_and_version(secret: str, version: str) -> None:
    vault = _vault(Fernet.generate_key().decode())
    sealed = vault.seal("crm", "v000000000001", FIELDS)
    with pytest.raises(DecryptionError, match="another secret or version"):
        vault.open(secret, version, sealed)


def test_garbage_is_a_decryption_error_in_every_form() -> None:
    vault = _vault(Fernet.generate_key().decode())
    sealed = vault.seal("crm", "v000000000001", FIELDS)
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    for token in (b"\x80not a token", b"gAAAAAnot-a-token", b"", b"\x02", b"\x02short", flipped):
        with pytest.raises(DecryptionError):
            vault.open("crm", "v000000000001", token)


def test_the_store_keeps_sealed_versions_and_reads_a_mix(harness: Harness) -> None:
    store = harness.store
    version, _ = harness.run(store.put_secret_version("crm-login", FIELDS))
    key = store.keys.secret_versions("crm-login")
    assert harness.run(harness.redis.hget(key, version))[:1] == b"\x02"
    # A version written by an earlier rotator (Fernet text) next to it.
    master = store.vault._fernet._fernets[0]  # the vault's own key, as an earlier one used it
    record = {"secret": "crm-login", "version": "v000000000000", "fields": {"password": "old"}}
    harness.run(harness.redis.hset(key, "v000000000000", master.encrypt(canonical_json(record))))
    assert harness.run(store.load_secret_version("crm-login", version)) == FIELDS
    old = harness.run(store.load_secret_version("crm-login", "v000000000000"))
    assert old == {"password": "old"}
    assert harness.run(store.reseal_versions("crm-login")) == 2
    for v in (version, "v000000000000"):
        assert harness.run(harness.redis.hget(key, v))[:1] == b"\x02"


def test_the_fingerprint_index_is_raw_and_holds_the_sequence_number(harness: Harness) -> None:
    store, r = harness.store, harness.redis
    k = store.keys
    v1, fp1 = harness.run(store.put_secret_version("crm-login", FIELDS))
    v2, _ = harness.run(store.put_secret_version("crm-login", {"password": "two"}))
    index = harness.run(r.hgetall(k.secret_fingerprints("crm-login")))
    assert index.pop(b"#latest").startswith(v2.encode() + b"|")  # a digest of its names
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
