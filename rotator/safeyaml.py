"""Parsing the targets file with bounded work: no alias bombs, no stack-deep nesting.

YAML aliases (``*a``) let a 500-byte file describe a structure of billions of nodes ("billion
laughs"): PyYAML shares the aliased objects, so loading is quick, but validating or serialising
the result walks every expanded node. And libyaml's composer recurses once per nesting level in
C: a few hundred kilobytes of ``[[[[`` crash the process with a segmentation fault, not an
exception. So before anything is composed, one pass over libyaml's event stream (iterative,
about a seventh of the load time) refuses nesting deeper than ``MAX_DEPTH``; and when the file
uses aliases at all, the composed node graph is measured as if every alias were expanded, and
refused beyond ``max(MIN_EXPANDED_NODES, EXPANSION_FACTOR x distinct nodes)``. Anchors and merge
keys (``<<: *defaults``) used the ordinary way stay well inside that bound.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from rotator.errors import ConfigError, ConfigIssue, YAMLRefused

# 100,000 targets take about 27 MB; a bigger targets file is a mistake or an attack.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64  # a real targets file nests 5 or 6 levels
MIN_EXPANDED_NODES = 1_000_000
EXPANSION_FACTOR = 4

# libyaml's loader where available: 3-4x faster on files of 100,000 targets.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_file(path: Path, label: str) -> tuple[Any, float]:
    """The parsed targets file and its mtime; ConfigError naming the file and the place."""
    try:
        with path.open("rb") as handle:
            mtime = os.fstat(handle.fileno()).st_mtime
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError([ConfigIssue(label, "(file)", exc.strerror or str(exc))]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError([ConfigIssue(label, "(file)", f"larger than {MAX_FILE_BYTES} bytes")])
    try:
        return load(data.decode("utf-8")), mtime
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(label, "(file)", f"not UTF-8 (byte {exc.start})")]) from None
    except YAMLRefused as exc:
        raise ConfigError([ConfigIssue(label, "(file)", str(exc))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([ConfigIssue(label, where, str(problem))]) from None


def load(text: str) -> Any:
    """``yaml.safe_load`` with the bounds above. Raises yaml.YAMLError or YAMLRefused."""
    has_aliases = _scan(text)
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if has_aliases:
            _check_expansion(node)
        try:
            return loader.construct_document(node)
        except RecursionError:  # recursive aliases (&a [*a]) that slipped past the walk
            raise YAMLRefused("the document refers to itself through aliases") from None
    finally:
        loader.dispose()


def _scan(text: str) -> bool:
    """Refuse deep nesting; say whether the document uses aliases."""
    depth = 0
    aliases = False
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise YAMLRefused(f"nesting deeper than {MAX_DEPTH} levels (line {line})")
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
        elif isinstance(event, AliasEvent):
            aliases = True
    return aliases


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: Node) -> None:
    """Count the nodes the document has once every alias is expanded (memoised per node, so
    the count itself is linear in the distinct nodes); refuse a bomb or a cycle."""
    distinct = _distinct(root)
    limit = max(MIN_EXPANDED_NODES, EXPANSION_FACTOR * distinct)
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            visiting.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > limit:
                raise YAMLRefused(
                    f"aliases expand the document beyond {limit} nodes "
                    f"({distinct} written): refused as an alias bomb"
                )
            sizes[key] = size
        elif key in visiting:
            raise YAMLRefused("the document refers to itself through aliases")
        elif key not in sizes:
            visiting.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _distinct(root: Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(_children(node))
    return len(seen)


__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "YAMLRefused", "load", "load_file"]
