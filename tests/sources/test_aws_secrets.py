"""The ``aws-secrets-manager`` source against moto's Secrets Manager server (``moto_server``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from rotator.config import SecretSpec
from rotator.errors import SecretSourceError
from rotator.sources import SourceContext, pin_version
from rotator.store import RotatorStore
from tests.sources.conftest import Moto, unique

pytestmark = pytest.mark.integration

KEYS = {"access_key_id": "env:AK", "secret_access_key": "file:aws_secret"}


def sm_spec(moto: Moto, secret_id: str, **options: Any) -> SecretSpec:
    raw = {
        "secret_id": secret_id,
        "region": moto.region,
        "endpoint_url": moto.url,
        "credentials": KEYS,
        **options,
    }
    return SecretSpec.model_validate({"source": "aws-secrets-manager", "aws_secrets_manager": raw})


def context(store: RotatorStore, tmp_path: Path, moto: Moto) -> SourceContext:
    (tmp_path / "aws_secret").write_text("testing\n")
    env = {"AK": "testing", "ROTATOR_INSECURE_HOSTS": moto.url.removeprefix("http://")}
    return SourceContext(store, tmp_path, env)


def test_pins_awscurrent_and_names_its_version_id(
    moto: Moto, store: RotatorStore, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    name = unique("prod/sfdc")
    sm = moto.client()
    first_id = sm.create_secret(
        Name=name, SecretString=json.dumps({"username": "etl", "password": "first"})
    )["VersionId"]
    ctx = context(store, tmp_path, moto)

    first = loop.run_until_complete(pin_version("sfdc", sm_spec(moto, name), ctx))
    assert first.fields == {"username": "etl", "password": "first"}
    assert first.origin == f"aws-secrets-manager {name} VersionId {first_id}"

    second_id = sm.put_secret_value(
        SecretId=name, SecretString=json.dumps({"username": "etl", "password": "second"})
    )["VersionId"]
    second = loop.run_until_complete(pin_version("sfdc", sm_spec(moto, name), ctx))
    assert second.origin == f"aws-secrets-manager {name} VersionId {second_id}"
    assert second.version != first.version

    # A fixed VersionId keeps reading the first value.
    fixed = loop.run_until_complete(
        pin_version("sfdc", sm_spec(moto, name, version_id=first_id), ctx)
    )
    assert (fixed.version, fixed.fields) == (first.version, first.fields)


def test_a_given_stage_and_a_raw_string_value(
    moto: Moto, store: RotatorStore, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    name = unique("prod/raw")
    sm = moto.client()
    sm.create_secret(Name=name, SecretString="current-value")
    pending_id = sm.put_secret_value(
        SecretId=name, SecretString="pending-value", VersionStages=["AWSPENDING"]
    )["VersionId"]
    spec = SecretSpec.model_validate(
        {
            "source": "aws-secrets-manager",
            "field": "token",
            "aws_secrets_manager": sm_spec(moto, name, stage="AWSPENDING").aws_secrets_manager,
        }
    )
    pinned = loop.run_until_complete(pin_version("s", spec, context(store, tmp_path, moto)))
    assert pinned.fields == {"token": "pending-value"}
    assert pinned.origin == f"aws-secrets-manager {name} VersionId {pending_id}"


def test_a_missing_secret_fails_clearly(
    moto: Moto, store: RotatorStore, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    name = unique("prod/none")
    with pytest.raises(SecretSourceError) as caught:
        loop.run_until_complete(
            pin_version("s", sm_spec(moto, name), context(store, tmp_path, moto))
        )
    # (AWS answers 400 for this code, moto 404: the code is what matters.)
    assert str(caught.value).startswith(
        f"secret s: aws-secrets-manager {name}: ResourceNotFoundException (HTTP "
    )


def test_plain_http_endpoint_is_refused_unless_listed(
    moto: Moto, store: RotatorStore, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    ctx = SourceContext(store, tmp_path, {"AK": "testing"})
    (tmp_path / "aws_secret").write_text("testing")
    with pytest.raises(SecretSourceError, match="endpoint_url plain http:// to 127.0.0.1"):
        loop.run_until_complete(pin_version("s", sm_spec(moto, "x"), ctx))
