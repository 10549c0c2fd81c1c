"""The ``vault`` source against a real OpenBao dev server (``bao server -dev``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from rotator.config import SecretSpec
from rotator.errors import SecretSourceError, TransportError
from rotator.sources import SourceContext, pin_version
from rotator.store import RotatorStore
from tests.sources.conftest import Bao, unique
from tools.common import free_port

pytestmark = pytest.mark.integration


def vault_spec(bao: Bao, path: str, **options: Any) -> SecretSpec:
    raw = {"address": bao.url, "path": path, "credentials": {"token": "env:T"}, **options}
    return SecretSpec.model_validate({"source": "vault", "vault": raw})


def context(store: RotatorStore, tmp_path: Path, bao: Bao, **env: str) -> SourceContext:
    insecure = bao.url.removeprefix("http://")
    return SourceContext(
        store, tmp_path, {"T": bao.root_token, "ROTATOR_INSECURE_HOSTS": insecure, **env}
    )


def test_pins_the_newest_kv_version_and_names_it(
    bao: Bao, store: RotatorStore, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    path = unique("apps/sfdc")
    bao.put(path, {"user": "etl", "pass": "first", "note": "not sent"})
    spec = vault_spec(bao, path, fields={"username": "user", "password": "pass"})
    ctx = context(store, tmp_path, bao)

    first = loop.run_until_complete(pin_version("sfdc", spec, ctx))
    assert first.fields == {"username": "etl", "password": "first"}
    assert first.origin == f"vault secret/{path} version 1"
    # The same KV version again is the same rotator version.
    again = loop.run_until_complete(pin_version("sfdc", spec, ctx))
    assert (again.version, again.fingerprint) == (first.version, first.fingerprint)

    bao.put(path, {"user": "etl", "pass": "second"})
    second = loop.run_until_complete(pin_version("sfdc", spec, ctx))
    assert second.origin == f"vault secret/{path} version 2"
    assert second.version != first.version
    assert loop.run_until_complete(store.load_secret_version("sfdc", first.version)) == {
        "username": "etl",
        "password": "first",
    }
    assert "first" not in repr(first) and "second" not in repr(second)


def test_a_fixed_kv_version_stays_pinned_after_newer_writes(
    bao: Bao, store: RotatorStore, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    path = unique("apps/fixed")
    bao.put(path, {"password": "v1"})
    bao.put(path, {"password": "v2"})
    pinned = loop.run_until_complete(
        pin_version("s", vault_spec(bao, path, version=1), context(store, tmp_path, bao))
    )
    assert pinned.fields == {"password": "v1"}
    assert pinned.origin == f"vault secret/{path} version 1"


def test_approle_login_from_file_references(
    bao: Bao, store: RotatorStore, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    # Given an AppRole whose policy reads one path, and its ids in files beside the targets file
    root = bao.client()
    mount = unique("approle")
    root.sys.enable_auth_method("approle", path=mount)
    path = unique("apps/approle")
    policy = unique("read")
    root.sys.create_or_update_acl_policy(
        policy, f'path "secret/data/{path}" {{ capabilities = ["read"] }}'
    )
    root.auth.approle.create_or_update_approle(
        "rotator", token_policies=[policy], mount_point=mount
    )
    role_id = root.auth.approle.read_role_id("rotator", mount_point=mount)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("rotator", mount_point=mount)["data"][
        "secret_id"
    ]
    (tmp_path / "role_id").write_text(role_id)
    (tmp_path / "secret_id").write_text(secret_id + "\n")
    bao.put(path, {"password": "via-approle"})
    spec = vault_spec(
        bao,
        path,
        auth="approle",
        auth_mount=mount,
        credentials={"role_id": "file:role_id", "secret_id": "file:secret_id"},
    )

    # When the source pins, Then it logged in and read the value
    pinned = loop.run_until_complete(pin_version("s", spec, context(store, tmp_path, bao)))
    assert pinned.fields == {"password": "via-approle"}
    # And the login token was revoked after the read: none is left on the role's accessor list
    accessors = root.list("auth/token/accessors")["data"]["keys"]
    policies = [root.auth.token.lookup_accessor(a)["data"]["policies"] for a in accessors]
    assert not [p for p in policies if policy in p]


def test_a_token_without_access_fails_the_job_without_echoing_the_token(
    bao: Bao, store: RotatorStore, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    path = unique("apps/denied")
    bao.put(path, {"password": "x"})
    weak = bao.client().auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    ctx = context(store, tmp_path, bao, T=weak)
    with pytest.raises(SecretSourceError) as caught:
        loop.run_until_complete(pin_version("s", vault_spec(bao, path), ctx))
    assert str(caught.value) == (
        f"secret s: vault secret/{path}: permission denied (token or policy) (HTTP 403)"
    )
    assert weak not in str(caught.value)


def test_a_missing_path_or_key_is_a_clear_failure(
    bao: Bao, store: RotatorStore, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    ctx = context(store, tmp_path, bao)
    with pytest.raises(SecretSourceError, match=r"not found \(or that version is deleted\)"):
        loop.run_until_complete(pin_version("s", vault_spec(bao, unique("nowhere")), ctx))
    path = unique("apps/keys")
    bao.put(path, {"password": "x"})
    with pytest.raises(SecretSourceError, match=f"vault secret/{path} version 1 has no key user"):
        loop.run_until_complete(pin_version("s", vault_spec(bao, path, fields=["user"]), ctx))


def test_plain_http_is_refused_unless_the_operator_lists_the_host(
    bao: Bao, store: RotatorStore, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    ctx = SourceContext(store, tmp_path, {"T": bao.root_token})
    with pytest.raises(SecretSourceError, match="vault.address plain http:// to 127.0.0.1"):
        loop.run_until_complete(pin_version("s", vault_spec(bao, "any"), ctx))


def test_an_unreachable_server_is_transient(
    bao: Bao, store: RotatorStore, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    port = free_port()  # nothing listens there
    spec = SecretSpec.model_validate(
        {
            "source": "vault",
            "vault": {
                "address": f"http://127.0.0.1:{port}",
                "path": "x",
                "credentials": {"token": "env:T"},
            },
        }
    )
    ctx = SourceContext(store, tmp_path, {"T": "t", "ROTATOR_INSECURE_HOSTS": f"127.0.0.1:{port}"})
    with pytest.raises(TransportError, match="no answer"):
        loop.run_until_complete(pin_version("s", spec, ctx))
