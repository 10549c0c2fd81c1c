"""deploy/docker-compose.api.yml and deploy/Dockerfile.api: the API added to the Compose
stack as an override, with the same hardening as the other services and its state on a
named volume; the image installs exactly the `api` extra."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def api_service() -> tuple[dict[str, Any], dict[str, Any]]:
    compose = yaml.safe_load((DEPLOY / "docker-compose.api.yml").read_text())
    return compose["services"]["api"], compose


def test_api_service_is_hardened_and_keeps_state_on_a_volume() -> None:
    service, compose = api_service()
    assert service["user"] == "10001:10001" and service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["command"][:1] == ["api"]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "api-state:/var/lib/rotator" in service["volumes"]
    assert "api-state" in compose["volumes"]
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    for key, value in service["environment"].items():
        assert not re.search(r"KEY|TOKEN|SECRET", key), f"{key}={value} belongs in rotator.env"
    assert service["env_file"] == ["rotator.env"]


def test_api_image_installs_exactly_the_api_extra() -> None:
    extra = tomllib.loads((Path(DEPLOY.parent) / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["api"]
    text = (DEPLOY / "Dockerfile.api").read_text()
    [install] = [line for line in text.splitlines() if "pip install" in line]
    assert sorted(re.findall(r'"([^"]+)"', install)) == sorted(extra)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users[-1] == "10001:10001"
    assert re.search(r'^ENTRYPOINT \["rotator"\]', text, re.MULTILINE)
