"""Validating a targets file in blocks of targets, each cached by the digest of its text: after
an edit of one target, only the block holding it is parsed and validated again.

A file of 100,000 targets takes about 4.5 s to parse and validate whole (py-spy: PyYAML's 3
million event objects about 2 s, building the dicts from them 2 s more, the models 1 s); the
first process to load an edited file paid all of it. Here
the ``targets:`` section is cut into blocks of whole targets at lines found by a scan of the
bytes (no YAML parse): a target starts at a line indented like the first target whose text is
a plain key (``name:``). Where blocks end is chosen by the content (a target whose key line's
CRC-32 is 0 modulo ``AVERAGE_BLOCK`` starts a new block; at most ``MAX_BLOCK`` targets a
block), so inserting or removing a target moves no other block's boundary.

A block is stored once it parsed, validated as targets and passed the URL policy, under the
digest of its bytes and of every other input of validation (the snapshot's context: code,
settings, providers, audit key id), HMAC'd like a snapshot with a key of its own
(``rotator.config_snapshot``): ``{p}config:block:{digest}`` = ``MAC || zlib(JSON)``. A block
found is validated again by the models from its JSON; a block whose MAC fails is refused
(logged) and parsed from the file. The part of the file outside the ``targets:`` section is
parsed every time, and the checks across the file (cross-references, notify, file
references) run on the assembled models every time.

Why the result is the file's: each block is parsed on its own by the bounded loader, and a
piece of YAML cut where a quoted scalar or flow collection is still open fails to parse on its
own (unexpected end of stream), so every cut of a file that loads this way falls between
nodes; a stored block is text that parsed on its own before. Anything unusual (anchors,
aliases, tags or merge keys in a piece, document markers or directives, line breaks other
than ``\\n``, a targets value that is not a block mapping, a key outside the plain form) and
anything invalid (a YAML error, a validation error, a policy violation) returns None: the
caller then validates the whole file as before, which names every error by file and field.
The bounds hold: aliases never reach this path, and a block's nesting limit is one level
less than the file's (a block sits one level down).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import TypeAdapter, ValidationError

from rotator import safeyaml
from rotator.config import (
    Name,
    Settings,
    TargetsConfig,
    TargetsFile,
    TargetSpecModel,
    sharing_parts,
    target_url_issues,
    whole_file_issues,
)
from rotator.errors import YAMLRefused
from rotator.urlpolicy import UrlPolicy

AVERAGE_BLOCK = 128  # targets: 800 blocks for 100,000, one of which an edit makes parse again
MAX_BLOCK = 1024

TARGETS: TypeAdapter[dict[str, TargetSpecModel]] = TypeAdapter(dict[Name, TargetSpecModel])

# The patterns find a line by the "\n" before it (the first line is looked at on its own): a
# literal first character lets the regex engine skip to candidates, where a MULTILINE "^" made
# the scan of 32 MB take a second.
_HEADER = rb"targets:[ ]*(?:#[^\n]*)?(?=\n|\Z)"
_HEADERS = re.compile(rb"\n" + _HEADER)
_FIRST_HEADER = re.compile(_HEADER)
_MARKERS = re.compile(rb"\n(?:---|\.\.\.|%)")
_KEY = re.compile(rb"[A-Za-z0-9_][A-Za-z0-9_.@-]*:(?=[ ]|\n|\Z)")
_LINE = re.compile(rb"( *)([^ \n#])")
_LINES = re.compile(rb"\n( *)([^ \n#])")
# Line breaks libyaml knows besides \n (\r, NEL, LS, PS): a line scan over \n would miss them.
_OTHER_BREAKS = (b"\r", b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")


class BlockCache(Protocol):
    """Where validated blocks live (``rotator.config_snapshot.SnapshotCache``)."""

    def context(self, path: Path, known_providers: Sequence[str]) -> bytes: ...

    def block_digest(self, context: bytes, block: bytes, kind: bytes) -> str: ...

    def get_blocks(self, digests: Sequence[str]) -> list[bytes | None]: ...

    def put_blocks(self, blocks: Sequence[tuple[str, bytes]]) -> None: ...


@dataclass(frozen=True)
class Layout:
    """A file cut for block validation: byte ranges of ``data``."""

    head: tuple[tuple[int, int], ...]  # before the ``targets:`` line, after its section
    blocks: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class BlockLoad:
    """A file validated in blocks: the config, its mapping without the targets as JSON, the
    digests of its blocks, all stored (None when one part is not exactly JSON), and how many
    blocks were parsed and reused."""

    config: TargetsConfig
    head: bytes
    digests: list[str] | None
    parsed: int
    reused: int


def layout(data: bytes) -> Layout | None:
    """Where the blocks are, or None when the file does not have the usual shape."""
    if b"\r" in data or (not data.isascii() and any(other in data for other in _OTHER_BREAKS)):
        return None
    if data.startswith((b"---", b"...", b"%")) or _MARKERS.search(data):
        return None
    headers = [m.start() + 1 for m in _HEADERS.finditer(data)]
    if _FIRST_HEADER.match(data):
        headers.insert(0, 0)
    if len(headers) != 1:
        return None
    header = headers[0]
    newline = data.find(b"\n", header)
    if newline < 0:
        return None
    begin = newline + 1  # the section's first line
    first = _first_line(data, begin, len(data))
    if first is None or first[0] == 0:
        return None  # no target, or a column-0 line first: not a block mapping of targets
    indent = first[0]
    head = _first_line(data, 0, header)
    if head is not None and (head[0] != 0 or not _KEY.match(data, head[1])):
        return None  # not a block mapping at column 0: a flow mapping would swallow the rest
    found = _blocks(data, begin, indent)
    if found is None:
        return None
    blocks, end = found
    return Layout(head=((0, header), (end, len(data))), blocks=tuple(blocks))


def _blocks(data: bytes, begin: int, indent: int) -> tuple[list[tuple[int, int]], int] | None:
    """The blocks of the section that starts at ``begin``, and where the section ends."""
    starts = re.compile(rb"\n( {0,%d})(?=[^ \n])" % indent)
    blocks: list[tuple[int, int]] = []
    block_start, count = begin, 0
    end = len(data)
    for match in starts.finditer(data, begin - 1):
        key_start = match.end()
        column = key_start - match.start() - 1
        if 0 < column < indent or data[key_start] == 35:  # 35: "#"
            continue  # a comment, or a line the block's own parse judges
        key = _KEY.match(data, key_start)
        if key is None:
            return None
        if column == 0:
            end = key_start
            break
        if count and (count >= MAX_BLOCK or zlib.crc32(key.group()) % AVERAGE_BLOCK == 0):
            blocks.append((block_start, match.start() + 1))
            block_start, count = match.start() + 1, 0
        count += 1
    if count == 0:
        return None
    blocks.append((block_start, end))
    return blocks, end


def _first_line(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """The indentation and the position of the first character of the first line in
    ``[start, end)`` that is neither blank nor a comment (``start`` begins a line)."""
    match = _LINE.match(data, start, end) or _LINES.search(data, start, end)
    return None if match is None else (len(match.group(1)), match.start(2))


def _parse(data: bytes, span: tuple[int, int], max_depth: int) -> tuple[bool, Any]:
    """One piece through the bounded loader; (False, None) when it is not plain or not YAML."""
    try:
        text = data[span[0] : span[1]].decode("utf-8")
        return safeyaml.load_plain(text, max_depth)
    except (UnicodeDecodeError, yaml.YAMLError, YAMLRefused):
        return False, None


def json_line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def exactly_json(value: Any) -> bool:
    """Whether a JSON round trip gives ``value`` back unchanged: text keys only, and only
    dicts, lists, text, integers, finite floats, booleans and None (no dates, no NaN)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            if any(type(k) is not str for k in item):
                return False
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float:
            if item != item or item in (float("inf"), float("-inf")):
                return False
        elif kind not in (str, int, bool, type(None)):
            return False
    return True


def load_blocks(
    path: Path,
    data: bytes,
    mtime: float,
    known_providers: Sequence[str],
    settings: Settings,
    cache: BlockCache | None,
) -> BlockLoad | None:
    """The validated file, reusing the blocks validated before; None: validate it whole.
    Without a cache the blocks are only validated one at a time: the parsed text of one
    block is alive at a time next to the models, not the whole file's (70 MB less at
    100,000 targets)."""
    cut = layout(data)
    if cut is None:
        return None
    label = str(path)
    (before, after) = cut.head
    if cache is None:  # validated in blocks for the memory only: nothing looked up or stored
        digests = [""] * (1 + len(cut.blocks))
        stored: list[bytes | None] = [None] * (1 + len(cut.blocks))
    else:
        context = cache.context(path, known_providers)
        head_text = b"%d\n" % (before[1] - before[0]) + data[slice(*before)] + data[slice(*after)]
        digests = [cache.block_digest(context, head_text, b"head")]
        digests += [cache.block_digest(context, data[a:b], b"block") for a, b in cut.blocks]
        stored = cache.get_blocks(digests)
    policy = settings.url_policy()
    targets: dict[str, TargetSpecModel] = {}
    storable = True
    parsed = 0
    pending: list[tuple[str, bytes]] = []  # blocks to store
    with sharing_parts():
        found: tuple[TargetsFile, bytes | None] | None = _stored_head(stored[0])
        if found is None:
            found = _validate_head(data, cut.head)
            if found is None:
                return None
            if found[1] is not None and cache is not None:
                pending.append((digests[0], zlib.compress(found[1], 1)))
        model, head_json = found
        for index, (span, digest) in enumerate(zip(cut.blocks, digests[1:], strict=True), 1):
            block = _stored_block(stored[index])
            stored[index] = None  # each body freed once its models are made
            if block is None:
                made = _validate_block(data, span, label, policy, cache is not None)
                if made is None:
                    return None
                block, line = made
                parsed += 1
                if line is None:
                    storable = False
                elif cache is not None:
                    pending.append((digest, zlib.compress(line, 1)))
            targets.update(block)
    if pending and cache is not None:
        cache.put_blocks(pending)
        del pending
    fields_set = set(model.model_fields_set) | {"targets"}
    sections = {name: getattr(model, name) for name in TargetsFile.model_fields}
    sections["targets"] = targets
    whole = TargetsFile.model_construct(fields_set, **sections)
    if whole_file_issues(path, whole, known_providers, settings):
        return None
    config = TargetsConfig(path, whole, mtime, settings.credentials_root(path))
    blocks = digests[1:] if storable and head_json is not None else None
    return BlockLoad(config, head_json or b"", blocks, parsed, len(cut.blocks) - parsed)


def _stored_head(body: bytes | None) -> tuple[TargetsFile, bytes] | None:
    """The models of an authenticated stored head (the file without its targets)."""
    if body is None:
        return None
    try:
        line = zlib.decompress(body)
        return TargetsFile.model_validate_json(line), line
    except (ValidationError, zlib.error):
        return None


def _validate_head(
    data: bytes, spans: tuple[tuple[int, int], ...]
) -> tuple[TargetsFile, bytes | None] | None:
    """The file without its targets section (before it and after it, each parsed on its
    own), validated, with its JSON (None when JSON cannot carry it exactly)."""
    head: dict[str, Any] = {}
    for span in spans:
        plain, part = _parse(data, span, safeyaml.MAX_DEPTH)
        if not plain or not isinstance(part, (dict, type(None))) or "targets" in (part or {}):
            return None
        head.update(part or {})
    try:
        model = TargetsFile.model_validate(head)
    except ValidationError:
        return None
    return model, json_line(head) if exactly_json(head) else None


def _stored_block(body: bytes | None) -> dict[str, TargetSpecModel] | None:
    """The models of an authenticated stored block (None: parse it from the file)."""
    if body is None:
        return None
    try:
        return TARGETS.validate_json(zlib.decompress(body))
    except (ValidationError, zlib.error):
        return None


def _validate_block(
    data: bytes, span: tuple[int, int], label: str, policy: UrlPolicy, encode: bool
) -> tuple[dict[str, TargetSpecModel], bytes | None] | None:
    """A block parsed, validated and checked against the URL policy, with its JSON (None
    when JSON cannot carry it exactly); None when anything is wrong with it."""
    plain, raw = _parse(data, span, safeyaml.MAX_DEPTH - 1)
    if not plain or not isinstance(raw, dict) or not raw:
        return None
    try:
        block = TARGETS.validate_python(raw)
    except ValidationError:
        return None
    if target_url_issues(label, block, policy):
        return None
    return block, json_line(raw) if encode and exactly_json(raw) else None


__all__ = [
    "AVERAGE_BLOCK",
    "MAX_BLOCK",
    "TARGETS",
    "BlockCache",
    "BlockLoad",
    "Layout",
    "exactly_json",
    "json_line",
    "layout",
    "load_blocks",
]
