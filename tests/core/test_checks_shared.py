"""``check_config`` over a loaded file whose targets share their equal options and credentials
(rotator.config._share_parts): each target still gets its own verdict, named by its own field."""

from __future__ import annotations

from pathlib import Path

from rotator.checks import check_config
from rotator.config import Settings, load_targets


def _target(name: str, credentials: str, options: str) -> str:
    return (
        f"  {name}:\n"
        "    provider: adobe\n"
        "    base_url: https://platform.adobe.io/data/foundation/flowservice\n"
        f"    resource_id: r-{name}\n"
        "    secret: pw\n"
        f"    credentials: {credentials}\n"
        f"    options: {options}\n"
    )


FULL = "{client_id: env:CK_ID, client_secret: env:CK_SECRET}"
HALF = "{client_id: env:CK_ID}"
UNSET = "{client_id: env:CK_ID, client_secret: env:CK_UNSET}"
ORG = '{org_id: "X@AdobeOrg"}'


def test_each_target_gets_its_own_verdict(tmp_path: Path) -> None:
    # Given targets that share options and credentials with others, and some that differ
    path = tmp_path / "rotator.yaml"
    path.write_text(
        "secrets:\n  pw: {source: generate}\ntargets:\n"
        + _target("a1", FULL, ORG)
        + _target("a2", FULL, ORG)
        + _target("b1", HALF, ORG)
        + _target("c1", FULL, "{}")
        + _target("b2", HALF, ORG)
        + _target("d1", UNSET, ORG)
        + _target("d2", UNSET, ORG)
        + _target("a3", FULL, ORG)
    )
    config = load_targets(path, ["adobe"], Settings(audit_key="k" * 32))  # type: ignore[call-arg]
    assert config.targets["a1"].options is config.targets["a2"].options  # shared
    # When checked
    result = check_config(config, offline=True, env={"CK_ID": "i", "CK_SECRET": "s"})
    # Then the errors are exactly those of the targets that have them, in file order
    assert [(issue.location, issue.message.split(" (")[0]) for issue in result.errors] == [
        ("targets.b1.credentials", "credential 'client_secret' is required"),
        ("targets.c1.options", "option 'org_id' is required"),
        ("targets.b2.credentials", "credential 'client_secret' is required"),
        ("targets.d1.credentials.client_secret", "environment variable CK_UNSET is not set"),
        ("targets.d2.credentials.client_secret", "environment variable CK_UNSET is not set"),
    ]
