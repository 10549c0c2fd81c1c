"""Cut the operations rotator drives out of a vendor's OpenAPI file, with every schema they
reference, into a small JSON file kept here (the full specs are 250-400 KB).

    python tests/specs/extract.py SPEC.yaml|json OUT.json REPO COMMIT PATH "METHOD /path" ...

Run it again against a newer commit of the vendor's repository to refresh a vendored file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["$ref"]} if isinstance(value.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(refs(v) for v in value))
    return set()


def extract(spec: dict[str, Any], operations: list[str]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for operation in operations:
        method, path = operation.split(" ", 1)
        paths.setdefault(path, {})[method.lower()] = spec["paths"][path][method.lower()]
    components: dict[str, dict[str, Any]] = {}
    pending = refs(paths)
    while pending:
        # "#/components/<kind>/<name>[/...]": keep the whole component the pointer lands in.
        kind, name = pending.pop().split("/")[2:4]
        if name in components.setdefault(kind, {}):
            continue
        components[kind][name] = spec["components"][kind][name]
        pending |= refs(components[kind][name])
    return {"paths": paths, "components": components}


def main(argv: list[str]) -> None:
    source, out, repo, commit, path, *operations = argv
    spec = yaml.safe_load(Path(source).read_text())  # JSON is YAML too
    body = extract(spec, operations)
    vendored = {"source": {"repo": repo, "commit": commit, "path": path}, **body}
    Path(out).write_text(json.dumps(vendored, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
