"""The README's code map names every top-level module and package of rotator/ (one line each),
so a new module cannot land without saying where its concern lives."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_code_map_lists_every_module_and_package() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Code map", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^  (\S+)\s", section, re.MULTILINE))
    package = ROOT / "rotator"
    modules = {p.name for p in package.glob("*.py") if p.name not in ("__init__.py", "py.typed")}
    packages = {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()}
    missing = sorted((modules | packages) - listed)
    assert missing == []
