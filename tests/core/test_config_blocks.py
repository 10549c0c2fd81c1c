"""Targets files validated in blocks of targets (rotator.config_blocks): after an edit only the
edited target's block is parsed again, an invalid edit is still refused naming file and field,
a forged block is refused, and a file of any unusual shape loads exactly as it does whole."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import structlog

from rotator import config_blocks, safeyaml
from rotator.config import Settings, load_targets, validate_targets
from rotator.config_snapshot import SnapshotCache, load_targets_cached
from rotator.errors import ConfigError
from rotator.store.keys import Keys

PROVIDERS = ["adobe", "appflow"]
HEAD = "secrets:\n  pw: {source: generate, length: 24}\n"


def _target(name: str, resource: str = "", schedule: str = "30d") -> str:
    return (
        f"  {name}:\n"
        "    provider: adobe\n"
        "    base_url: https://platform.adobe.io/data/foundation/flowservice\n"
        f"    resource_id: {resource or 'r-' + name}\n"
        "    secret: pw\n"
        '    credentials: {client_id: "env:ADOBE_ID"}\n'
        f"    schedule: {schedule}\n"
    )


def _file(names: list[str], **edits: dict[str, str]) -> str:
    return HEAD + "targets:\n" + "".join(_target(n, **edits.get(n, {})) for n in names)


NAMES = [f"t{n:03d}" for n in range(40)]


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every target its own block (a cut at every target line: the worst case for cuts)."""
    monkeypatch.setattr(config_blocks, "AVERAGE_BLOCK", 1)


def _settings() -> Settings:
    return Settings(audit_key="blocks-test-audit-key-0123456789abcdef")  # type: ignore[call-arg]


def _cache(redis: fakeredis.FakeRedis) -> SnapshotCache:
    return SnapshotCache(redis, Keys("blk:"), _settings())


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rotator.yaml"
    path.write_text(text)
    return path


def _stored_parts(redis: fakeredis.FakeRedis, head: bool) -> list[tuple[bytes, dict[str, Any]]]:
    """(key, JSON) of each stored block of targets, or of each stored head."""
    found = []
    for key in redis.scan_iter(match="blk:config:block:*"):
        stored = redis.get(key)
        assert stored is not None
        part = json.loads(zlib.decompress(stored[32:]))
        if ("secrets" in part) == head:
            found.append((key, part))
    return found


def _outcome(load: Any) -> tuple[str, Any]:
    """("ok", the models as data) or ("error", every issue as text)."""
    try:
        config = load()
    except ConfigError as exc:
        return "error", [str(issue) for issue in exc.issues]
    return "ok", config.model.model_dump()


def _whole(path: Path) -> tuple[str, Any]:
    """The file validated whole, as before blocks (``validate_targets``)."""
    data, mtime = safeyaml.read_file(path, str(path))
    return _outcome(lambda: validate_targets(path, data, mtime, PROVIDERS, _settings())[0])


def _cached(path: Path, cache: SnapshotCache) -> tuple[str, Any]:
    return _outcome(lambda: load_targets_cached(path, PROVIDERS, _settings(), cache))


def test_an_edit_of_one_target_parses_only_its_block_again(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    # Given a file of 40 targets loaded once (every block parsed and stored)
    path = _write(tmp_path, _file(NAMES))
    first = _cache(redis)
    assert _cached(path, first) == _whole(path)
    assert first.last is not None and first.last.blocks is not None
    parsed, reused = first.last.blocks
    assert reused == 0 and parsed >= 1
    # When one target is edited and another process loads the file
    path.write_text(_file(NAMES, t017={"resource": "edited"}))
    second = _cache(redis)
    outcome = _cached(path, second)
    # Then only the edited target's block was parsed, and the config is the file's
    assert second.last is not None and second.last.blocks == (1, parsed - 1)
    assert outcome == _whole(path)
    assert outcome[1]["targets"]["t017"]["resource_id"] == "edited"


def test_an_edit_parses_one_block_of_many(
    tmp_path: Path, redis: fakeredis.FakeRedis, small_blocks: None
) -> None:
    path = _write(tmp_path, _file(NAMES))
    _cached(path, _cache(redis))
    path.write_text(_file(NAMES, t005={"schedule": "12h"}))
    cache = _cache(redis)
    assert _cached(path, cache) == _whole(path)
    assert cache.last is not None and cache.last.blocks == (1, len(NAMES) - 1)


def test_an_invalid_edit_is_refused_naming_file_and_field(
    tmp_path: Path, redis: fakeredis.FakeRedis, small_blocks: None
) -> None:
    # Given a file whose blocks are all stored
    path = _write(tmp_path, _file(NAMES))
    _cached(path, _cache(redis))
    # When one target gets a schedule that is neither an interval nor a cron
    path.write_text(_file(NAMES, t009={"schedule": "every-tuesday"}))
    outcome = _cached(path, _cache(redis))
    # Then the load is refused with the whole-file errors: file and field named
    assert outcome == _whole(path)
    kind, issues = outcome
    assert kind == "error"
    assert any(f"{path}: targets.t009.schedule:" in issue for issue in issues), issues


def test_a_cross_reference_broken_by_an_edit_is_refused(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    path = _write(tmp_path, _file(NAMES))
    _cached(path, _cache(redis))
    # The head changes (the secret is renamed): every block is reused, yet every target refers
    # to a secret that no longer exists.
    path.write_text(_file(NAMES).replace("  pw: {source", "  other: {source"))
    kind, issues = _cached(path, _cache(redis))
    assert kind == "error" and (kind, issues) == _whole(path)
    assert f"{path}: targets.t000.secret: no secret named 'pw'" in issues


def test_a_forged_block_is_refused_and_parsed_from_the_file(
    tmp_path: Path, redis: fakeredis.FakeRedis, small_blocks: None
) -> None:
    # Given stored blocks
    path = _write(tmp_path, _file(NAMES))
    _cached(path, _cache(redis))
    # When someone with Redis write access but not the audit key rewrites every block to add
    # a target pointing elsewhere (keeping the MAC, which they cannot recompute)
    blocks = _stored_parts(redis, head=False)
    assert len(blocks) == len(NAMES)
    for key, block in blocks:
        stored = redis.get(key)
        assert stored is not None
        (name,) = block
        block["evil"] = dict(block[name], base_url="https://evil.example")
        redis.set(key, stored[:32] + zlib.compress(json.dumps(block).encode()))
    # and the file is edited, so the snapshot misses and the blocks are looked up
    path.write_text(_file(NAMES, t001={"resource": "edited"}))
    cache = _cache(redis)
    with structlog.testing.capture_logs() as logs:
        outcome = _cached(path, cache)
    # Then every forged block is refused and parsed from the file: no "evil" target
    assert outcome == _whole(path)
    assert "evil" not in outcome[1]["targets"]
    assert cache.last is not None and cache.last.blocks == (len(NAMES), 0)
    assert any("config blocks refused" in entry["event"] for entry in logs)


def test_a_forged_block_behind_a_snapshot_is_refused(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    path = _write(tmp_path, _file(NAMES))
    _cached(path, _cache(redis))
    for key in redis.scan_iter(match="blk:config:block:*"):
        stored = redis.get(key)
        assert stored is not None
        redis.set(key, stored[:32] + zlib.compress(b'{"evil":{}}'))
    # The snapshot (authentic) lists the blocks; the blocks are refused, so the file is read
    cache = _cache(redis)
    outcome = _cached(path, cache)
    assert outcome == _whole(path)
    assert cache.last is not None and cache.last.outcome == "miss"
    assert cache.last.blocks is not None and cache.last.blocks[1] == 0


def test_a_snapshot_whose_block_expired_reads_the_file(
    tmp_path: Path, redis: fakeredis.FakeRedis, small_blocks: None
) -> None:
    path = _write(tmp_path, _file(NAMES))
    _cached(path, _cache(redis))
    warm = _cache(redis)
    assert _cached(path, warm) == _whole(path)
    assert warm.last is not None and warm.last.outcome == "hit"
    redis.delete(_stored_parts(redis, head=False)[7][0])
    cache = _cache(redis)
    assert _cached(path, cache) == _whole(path)
    assert cache.last is not None and cache.last.blocks == (1, len(NAMES) - 1)


def test_a_forged_head_is_refused_and_parsed_from_the_file(
    tmp_path: Path, redis: fakeredis.FakeRedis
) -> None:
    # Given a stored head (the file without its targets)
    path = _write(tmp_path, _file(NAMES))
    _cached(path, _cache(redis))
    ((key, head),) = _stored_parts(redis, head=True)
    # When a secret reading rotator's own master key is slipped into it (MAC kept)
    head["secrets"]["pw"] = {"source": "env", "var": "ROTATOR_MASTER_KEY"}
    stored = redis.get(key)
    assert stored is not None
    redis.set(key, stored[:32] + zlib.compress(json.dumps(head).encode()))
    # and the file is edited, so the snapshot misses and the parts are looked up
    path.write_text(_file(NAMES, t002={"resource": "edited"}))
    with structlog.testing.capture_logs() as logs:
        outcome = _cached(path, _cache(redis))
    # Then the head is refused and read from the file
    assert [e["refused"] for e in logs if "config blocks refused" in e["event"]] == [1]
    assert outcome == _whole(path)
    assert outcome[1]["secrets"]["pw"]["source"] == "generate"


def test_a_head_edit_reuses_every_block(tmp_path: Path, redis: fakeredis.FakeRedis) -> None:
    path = _write(tmp_path, _file(NAMES))
    _cached(path, _cache(redis))
    path.write_text(_file(NAMES).replace("length: 24", "length: 40"))
    cache = _cache(redis)
    outcome = _cached(path, cache)
    assert outcome == _whole(path) and outcome[1]["secrets"]["pw"]["length"] == 40
    assert cache.last is not None and cache.last.blocks is not None
    assert cache.last.blocks[0] == 0


TARGET = _target("one")

# Files whose cut at target lines would not be the file: each must load (or fail) exactly as
# the whole file does, whatever the cuts.
UNUSUAL = {
    "quoted scalar across a target line": HEAD
    + "targets:\n"
    + TARGET
    + '    options: {org_id: "X@AdobeOrg", note: "a\n  two: b"}\n'
    + _target("three"),
    "flow mapping before targets swallowing them": (
        "secrets: {pw: {source: generate, alphabet: 'ABCDEFGHIJKLMNOP\ntargets:\n"
        + _target("evil")
        + "'}}\n"
    ),
    "flow mapping before targets closed on a key-like line": (
        "secrets: {pw: {source: generate, alphabet: 'ABCDEFGHIJKLMNOP\ntargets:\n"
        + _target("evil")
        + "notify: x'}}\n"
    ),
    "head flow mapping around the targets line": "secrets: {pw: {source: generate}\n}\ntargets:\n"
    + TARGET,
    "anchor and merge key across targets": HEAD
    + "targets:\n"
    + TARGET.replace("  one:\n", "  one: &base\n")
    + "  two:\n    <<: *base\n    resource_id: r-two\n",
    "document start marker": "---\n" + HEAD + "targets:\n" + TARGET,
    "document end marker then more": HEAD + "targets:\n" + TARGET + "...\n" + _target("two"),
    "CRLF line breaks": (HEAD + "targets:\n" + TARGET).replace("\n", "\r\n"),
    "a line less indented than the targets": HEAD + "targets:\n" + TARGET + " stray: 1\n",
    "duplicate target names": HEAD + "targets:\n" + TARGET + _target("one", resource="second"),
    "two targets sections": HEAD + "targets:\n" + TARGET + "targets:\n" + _target("two"),
    "keep-chomped block scalar at a cut": HEAD
    + "targets:\n"
    + TARGET
    + "    options:\n      note: |+\n        text\n\n\n"
    + _target("two"),
    "comments at every indentation": HEAD
    + "targets:\n# top\n"
    + TARGET
    + "  # between\n"
    + _target("two")
    + "#end\n",
    "head after the targets": "targets:\n" + TARGET + HEAD,
    "targets as a flow mapping": HEAD + "targets: {one: {provider: adobe}}\n",
    "targets as a sequence": HEAD + "targets:\n  - one\n",
    "empty targets": HEAD + "targets:\n",
    "quoted key": HEAD + "targets:\n" + TARGET.replace("  one:", '  "one":'),
    "tag in a target": HEAD + "targets:\n" + TARGET.replace("secret: pw", "secret: !!str pw"),
    "deep nesting in a target": HEAD
    + "targets:\n"
    + TARGET
    + "    options: {deep: "
    + "[" * 70
    + "]" * 70
    + "}\n",
    "nesting at the limit in a target": HEAD
    + "targets:\n"
    + TARGET
    + "    options: {deep: "
    + "[" * 60
    + "]" * 60
    + "}\n",
    "nesting one past the limit in a target": HEAD
    + "targets:\n"
    + TARGET
    + "    options: {deep: "
    + "[" * 61
    + "]" * 61
    + "}\n",
    "alias bomb in a target": HEAD
    + "targets:\n"
    + TARGET
    + "    options:\n      a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"      {c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ),
    "invalid target name": HEAD + "targets:\n" + TARGET.replace("  one:", "  bad/name:"),
    "unknown provider": HEAD + "targets:\n" + TARGET.replace("provider: adobe", "provider: nope"),
    "not UTF-8 in a target": HEAD + "targets:\n" + TARGET.replace("r-one", "r-\udcff"),
}


@pytest.mark.parametrize("name", sorted(UNUSUAL))
def test_unusual_files_load_exactly_as_whole(
    name: str, tmp_path: Path, redis: fakeredis.FakeRedis, small_blocks: None
) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_bytes(UNUSUAL[name].encode("utf-8", "surrogateescape"))
    expected = _whole(path)
    assert _cached(path, _cache(redis)) == expected
    assert _cached(path, _cache(redis)) == expected  # and again, from whatever was stored
    assert _outcome(lambda: load_targets(path, PROVIDERS, _settings())) == expected  # no cache


def test_the_cuts_fall_only_at_target_lines(small_blocks: None) -> None:
    text = (HEAD + "targets:\n# c\n" + TARGET + _target("two") + "notify: {}\n").encode()
    cut = config_blocks.layout(text)
    assert cut is not None
    pieces = [text[a:b] for a, b in cut.blocks]
    assert pieces == [b"# c\n" + TARGET.encode(), _target("two").encode()]
    assert [text[a:b] for a, b in cut.head] == [HEAD.encode(), b"notify: {}\n"]


def test_inserting_a_target_moves_no_other_cut() -> None:
    names = [f"t{n:04d}" for n in range(2000)]
    text_before = _file(names).encode()
    text_after = _file(names[:1000] + ["new"] + names[1000:]).encode()
    before, after = config_blocks.layout(text_before), config_blocks.layout(text_after)
    assert before is not None and after is not None
    blocks_before = {text_before[a:b] for a, b in before.blocks}
    blocks_after = {text_after[a:b] for a, b in after.blocks}
    assert len(before.blocks) > 4
    assert len(blocks_after - blocks_before) == 1  # only the block that got "new" is new
