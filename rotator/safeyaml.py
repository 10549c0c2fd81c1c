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
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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
    data, mtime = read_file(path, label)
    return load_bytes(data, label), mtime


def read_file(path: Path, label: str) -> tuple[bytes, float]:
    """The file's bytes (bounded) and its mtime; ConfigError naming the file."""
    try:
        with path.open("rb") as handle:
            mtime = os.fstat(handle.fileno()).st_mtime
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError([ConfigIssue(label, "(file)", exc.strerror or str(exc))]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError([ConfigIssue(label, "(file)", f"larger than {MAX_FILE_BYTES} bytes")])
    return data, mtime


def load_bytes(data: bytes, label: str) -> Any:
    """``load`` of a file's bytes; ConfigError naming the file and the place."""
    try:
        return load(data.decode("utf-8"))
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
    built = _build(text)
    if built is not _COMPOSE:
        return built
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


_COMPOSE = object()  # "take the composed path"
_MISSING = object()


def _build(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """The document built straight from libyaml's events, one pass, no node graph (which
    took most of the time and a gigabyte for 100,000 targets), refusing deep nesting as
    ``_scan`` does. Plain mappings, sequences and scalars only: a document with anchors,
    aliases, explicit tags, merge keys, complex keys or several documents returns
    ``_COMPOSE`` and takes the composed path, with its alias checks. Scalars resolve and
    construct exactly as in ``yaml.safe_load`` (the loader's own resolver and constructors),
    and equal scalars share one object."""
    loader = _LOADER("")
    try:
        return _build_events(text, loader, max_depth)
    finally:
        loader.dispose()


def load_plain(text: str, max_depth: int = MAX_DEPTH) -> tuple[bool, Any]:
    """``(True, document)`` when ``text`` is plain mappings, sequences and scalars (no anchors,
    aliases, tags, merge keys or second document: what ``load`` builds straight from the
    events), else ``(False, None)``. ``max_depth``: the nesting allowed, less when ``text``
    is a piece of a bigger document (``rotator.config_blocks``). Raises yaml.YAMLError or
    YAMLRefused as ``load`` does."""
    built = _build(text, max_depth)
    return (False, None) if built is _COMPOSE else (True, built)


class _Unbuildable(Exception):
    """The document needs the composed path."""


class _Builder:
    """Collections under construction, innermost last: ``[list]`` or ``[dict, pending key]``."""

    def __init__(self, loader: Any, max_depth: int = MAX_DEPTH) -> None:
        self.loader = loader
        self.max_depth = max_depth
        self.scalars: dict[tuple[str, bool], Any] = {}
        self.stack: list[list[Any]] = []
        self.root: Any = _MISSING

    def scalar(self, event: ScalarEvent) -> Any:
        if event.anchor is not None or event.tag is not None:
            raise _Unbuildable
        key = (event.value, bool(event.implicit[0]))
        value = self.scalars.get(key, _MISSING)
        if value is _MISSING:
            value = self.scalars[key] = _scalar(self.loader, event)
        return value

    def start(self, event: MappingStartEvent | SequenceStartEvent) -> None:
        if event.anchor is not None or event.tag is not None:
            raise _Unbuildable
        if len(self.stack) >= self.max_depth:
            line = event.start_mark.line + 1 if event.start_mark else 0
            raise YAMLRefused(f"nesting deeper than {MAX_DEPTH} levels (line {line})")
        if isinstance(event, MappingStartEvent):
            mapping: dict[Any, Any] = {}
            self.add(mapping)
            self.stack.append([mapping, _MISSING])
        else:
            sequence: list[Any] = []
            self.add(sequence)
            self.stack.append([sequence])

    def add(self, value: Any) -> None:
        if not self.stack:
            self.root = value
            return
        frame = self.stack[-1]
        if len(frame) == 1:
            frame[0].append(value)
        elif frame[1] is _MISSING:
            if isinstance(value, (dict, list)):
                raise _Unbuildable  # a complex key: the constructor's error
            frame[1] = value
        else:
            frame[0][frame[1]] = value
            frame[1] = _MISSING


def _build_events(text: str, loader: Any, max_depth: int = MAX_DEPTH) -> Any:
    builder = _Builder(loader, max_depth)
    documents = 0
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, ScalarEvent):
                builder.add(builder.scalar(event))
            elif isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                builder.start(event)
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                builder.stack.pop()
            elif isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _Unbuildable  # the composer's "expected a single document" error
            elif isinstance(event, AliasEvent):
                raise _Unbuildable
    except _Unbuildable:
        return _COMPOSE
    return None if builder.root is _MISSING else builder.root


_STR_TAG = "tag:yaml.org,2002:str"
_UNBUILT_TAGS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")


def _scalar(loader: Any, event: ScalarEvent) -> Any:
    """A scalar as ``safe_load`` makes it (merge keys and anything odd: ``_Unbuildable``)."""
    tag = loader.resolve(ScalarNode, event.value, event.implicit)
    if tag == _STR_TAG:
        return event.value
    constructor = loader.yaml_constructors.get(tag)
    if constructor is None or tag in _UNBUILT_TAGS:
        raise _Unbuildable
    node = ScalarNode(tag, event.value, event.start_mark, event.end_mark)  # type: ignore[arg-type]
    try:
        return constructor(loader, node)
    except Exception:  # the composed path raises it, with its context
        raise _Unbuildable from None


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


__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "YAMLRefused",
    "load",
    "load_bytes",
    "load_file",
    "load_plain",
    "read_file",
]
