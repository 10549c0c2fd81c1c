"""Bad configuration gets an error naming the file, the target and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotator.config import load_settings, load_targets
from rotator.errors import ConfigError
from rotator.providers import provider_names
from rotator.resolve import resolve_reference

GOOD = """
secrets:
  pw: {source: generate, length: 24}
targets:
  one:
    provider: adobe
    base_url: https://platform.adobe.io/data/foundation/flowservice
    resource_id: c1
    secret: pw
    credentials: {client_id: "env:ADOBE_ID", client_secret: "file:adobe.secret"}
    schedule: 30d
    jitter: 1h
  two:
    provider: adobe
    base_url: https://platform.adobe.io/data/foundation/flowservice
    resource_id: c2
    secret: pw
    schedule: "0 3 * * *"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rotator.yaml"
    path.write_text(text)
    return path


def test_valid_file_loads(tmp_path: Path) -> None:
    config = load_targets(write(tmp_path, GOOD), provider_names())
    assert set(config.targets) == {"one", "two"}
    assert config.targets["one"].parsed_schedule is not None
    assert config.targets["one"].parsed_schedule.every == 30 * 86400
    assert config.targets["two"].parsed_schedule is not None
    assert config.targets["two"].parsed_schedule.cron == "0 3 * * *"


def test_every_error_is_listed_with_file_target_and_field(tmp_path: Path) -> None:
    bad = (
        GOOD.replace("schedule: 30d", "schedule: every tuesday")
        .replace("resource_id: c2", "resource_id: ''")
        .replace(
            "provider: adobe\n    base_url: https://platform.adobe.io/data/foundation/flowservice\n    resource_id: c1",
            "provider: adobee\n    base_url: https://platform.adobe.io/data/foundation/flowservice\n    resource_id: c1",
        )
    )
    path = write(tmp_path, bad)
    with pytest.raises(ConfigError) as caught:
        load_targets(path, provider_names())
    messages = [str(i) for i in caught.value.issues]
    assert any(m.startswith(f"{path}: targets.one.schedule:") for m in messages), messages
    assert any(m.startswith(f"{path}: targets.two.resource_id:") for m in messages), messages
    assert any(m.startswith(f"{path}: targets.one.provider: unknown") for m in messages), messages


def test_unknown_provider_and_secret_are_named(tmp_path: Path) -> None:
    bad = GOOD.replace("provider: adobe", "provider: adobee", 1).replace(
        'secret: pw\n    schedule: "0', 'secret: nope\n    schedule: "0'
    )
    with pytest.raises(ConfigError) as caught:
        load_targets(write(tmp_path, bad), provider_names())
    text = str(caught.value)
    assert "targets.one.provider: unknown provider 'adobee'" in text
    assert "targets.two.secret: no secret named 'nope'" in text


def test_inline_credential_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    bad = GOOD.replace('client_secret: "file:adobe.secret"', "client_secret: hunter2-inline")
    with pytest.raises(ConfigError) as caught:
        load_targets(write(tmp_path, bad), provider_names())
    text = str(caught.value)
    assert "targets.one.credentials" in text and "never an inline value" in text
    assert "hunter2-inline" not in text


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "targets:\n  one: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_targets(path, provider_names())
    assert str(caught.value).startswith(f"{path}: line ")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_targets(tmp_path / "absent.yaml", provider_names())
    assert "absent.yaml" in str(caught.value)


def test_settings_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATOR_MASTER_KEY", "not-a-fernet-key")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert "ROTATOR_MASTER_KEY" in text and "not-a-fernet-key" not in text


def test_production_requires_shared_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATOR_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.delenv("ROTATOR_MASTER_KEY", raising=False)
    monkeypatch.delenv("ROTATOR_AUDIT_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_settings().validate_runtime()
    assert "ROTATOR_MASTER_KEY" in str(caught.value)


def test_references_resolve_and_errors_name_them(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("value\n")
    assert resolve_reference("file:s.txt", base_dir=tmp_path) == "value"
    assert resolve_reference("env:X", base_dir=tmp_path, env={"X": "y"}) == "y"
    with pytest.raises(KeyError, match="MISSING_VAR"):
        resolve_reference("env:MISSING_VAR", base_dir=tmp_path, env={})


def test_generate_source_gives_each_field_its_own_value() -> None:
    from rotator.config import SecretSpec
    from rotator.sources.generate import generate

    spec = SecretSpec(
        source="generate",
        fields=["client_secret", "password"],
        length=20,
        static={"username": "svc"},
    )
    value = generate(spec)
    assert value["username"] == "svc"
    assert len(value["client_secret"]) == 20 and len(value["password"]) == 20
    assert value["client_secret"] != value["password"]
    assert generate(spec) != value
