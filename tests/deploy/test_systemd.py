"""deploy/systemd: the units parse (``systemd-analyze verify`` where systemd is installed, a
structural parse everywhere) and carry the hardening and restart policy operators rely on."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DIR = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNITS = ("rotator-worker.service", "rotator-beat.service", "rotator-api.service")
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
    "UMask": "0077",
    "Restart": "on-failure",
}


def parse(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize("unit", UNITS)
def test_unit_structure_and_hardening(unit: str) -> None:
    parsed = parse(DIR / unit)
    assert set(parsed.sections()) == {"Unit", "Service", "Install"}
    service = parsed["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, key
    kind = unit.removeprefix("rotator-").removesuffix(".service")
    state = f"/var/lib/rotator-{kind}"
    assert service["StateDirectory"] == f"rotator-{kind}"
    assert service["ReadWritePaths"] == state
    assert service["Environment"] == f"ROTATOR_STATE_DIR={state}"
    assert service["User"] == "rotator" and service["EnvironmentFile"] == "/etc/rotator/rotator.env"
    assert service["ExecStart"].split()[:2] == ["/opt/rotator/bin/rotator", kind]
    assert parsed["Install"]["WantedBy"] == "multi-user.target"


def test_env_example_has_no_values_for_secrets() -> None:
    for line in (DIR / "rotator.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            if any(word in key for word in ("KEY", "TOKEN", "SECRET")):
                assert value == "", f"{key} has a value in the example"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this environment's rotator.
    rotator = Path(sys.executable).with_name("rotator")
    for unit in UNITS:
        text = (DIR / unit).read_text().replace("/opt/rotator/bin/rotator", str(rotator))
        (tmp_path / unit).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / u) for u in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Unknown keys and unparsable values are only warnings: any output is a failure.
    assert result.stderr.strip() == "" and result.stdout.strip() == ""
