"""A reload resyncs into the schedule only the targets it changed (issue 15.4), and leaves the
schedule as a full sync would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rotator.config import Settings, TargetsConfig, load_targets
from rotator.dispatch import resync_changed, sync_schedule
from tests.core.conftest import Harness

BEFORE = """
secrets: {pw: {source: generate}}
targets:
  same:    {provider: fake, base_url: https://fake.example, resource_id: r1, secret: pw, schedule: 1h}
  slower:  {provider: fake, base_url: https://fake.example, resource_id: r2, secret: pw, schedule: 1h}
  gone:    {provider: fake, base_url: https://fake.example, resource_id: r3, secret: pw, schedule: 1h}
  paused:  {provider: fake, base_url: https://fake.example, resource_id: r4, secret: pw, schedule: 1h}
  renamed: {provider: fake, base_url: https://fake.example, resource_id: r5, secret: pw, schedule: 1h}
"""

AFTER = """
secrets: {pw: {source: generate}}
targets:
  same:    {provider: fake, base_url: https://fake.example, resource_id: r1, secret: pw, schedule: 1h}
  slower:  {provider: fake, base_url: https://fake.example, resource_id: r2, secret: pw, schedule: 2h}
  paused:  {provider: fake, base_url: https://fake.example, resource_id: r4, secret: pw, schedule: 1h, enabled: false}
  renamed: {provider: fake, base_url: https://fake.example, resource_id: r5-new, secret: pw, schedule: 1h}
  new:     {provider: fake, base_url: https://fake.example, resource_id: r6, secret: pw, schedule: 1h}
"""


def _config(tmp_path: Path, text: str) -> TargetsConfig:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return load_targets(path, ["fake"], Settings(insecure_hosts="fake.example:*"))


def test_reload_resyncs_only_changed_targets(harness: Harness, tmp_path: Path) -> None:
    h = harness
    # Given a synced schedule with known due times
    before = _config(tmp_path, BEFORE)
    h.run(sync_schedule(h.store, before, now=1000.0))
    due = {"same": 5000.0, "slower": 6000.0, "gone": 7000.0, "paused": 8000.0, "renamed": 9000.0}
    h.run(h.store.set_next_due(due))
    resynced: list[dict[str, Any]] = []
    real = h.store.resync_schedule

    async def spy(first_due: dict[str, Any]) -> list[str]:
        resynced.append(dict(first_due))
        return await real(first_due)

    h.store.resync_schedule = spy  # type: ignore[method-assign]
    # When the file is reloaded with one target unchanged, one with a new interval, one
    # removed, one disabled, one edited outside its schedule and one added
    after = _config(tmp_path, AFTER)
    added, count = h.run(resync_changed(h.store, before.targets, after, now=2000.0))
    # Then only the targets whose schedule inputs changed are resynced
    assert len(resynced) == 1
    assert set(resynced[0]) == {"slower", "gone", "paused", "new"}
    assert resynced[0]["gone"] is None and resynced[0]["paused"] is None
    assert (added, count) == (["new"], 4)
    # And the schedule is what a full sync would leave: due times kept, removed ones dropped
    names = ["same", "slower", "gone", "paused", "renamed", "new"]
    scores = h.run(h.store.next_due(names))
    assert scores["same"] == 5000.0 and scores["slower"] == 6000.0 and scores["renamed"] == 9000.0
    assert scores["gone"] is None and scores["paused"] is None
    assert scores["new"] is not None and scores["new"] > 2000.0


def test_incremental_and_full_sync_agree(harness: Harness, tmp_path: Path) -> None:
    h = harness
    before, after = _config(tmp_path, BEFORE), _config(tmp_path, AFTER)
    h.run(sync_schedule(h.store, before, now=1000.0))
    h.run(resync_changed(h.store, before.targets, after, now=2000.0))
    incremental = h.run(h.redis.zrange(h.store.keys.schedule, 0, -1))
    h.run(h.redis.delete(h.store.keys.schedule))
    h.run(sync_schedule(h.store, before, now=1000.0))
    h.run(sync_schedule(h.store, after, now=2000.0))
    full = h.run(h.redis.zrange(h.store.keys.schedule, 0, -1))
    assert sorted(incremental) == sorted(full)


def test_nothing_changed_touches_nothing(harness: Harness, tmp_path: Path) -> None:
    h = harness
    config = _config(tmp_path, BEFORE)
    h.run(sync_schedule(h.store, config, now=1000.0))
    again = _config(tmp_path, BEFORE)
    assert h.run(resync_changed(h.store, config.targets, again, now=2000.0)) == ([], 0)


class _Holder:
    def __init__(self, config: TargetsConfig) -> None:
        self.config, self.generation = config, 0

    def get(self) -> TargetsConfig:
        return self.config


def test_runtime_syncs_everything_once_then_only_changes(harness: Harness, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from rotator.runtime import Runtime

    h = harness
    holder = _Holder(_config(tmp_path, BEFORE))
    full: list[int] = []
    partial: list[set[str]] = []
    real_full, real_partial = h.store.sync_schedule, h.store.resync_schedule

    async def spy_full(first_due: dict[str, float]) -> list[str]:
        full.append(len(first_due))
        return await real_full(first_due)

    async def spy_partial(first_due: dict[str, Any]) -> list[str]:
        partial.append(set(first_due))
        return await real_partial(first_due)

    h.store.sync_schedule = spy_full  # type: ignore[method-assign]
    h.store.resync_schedule = spy_partial  # type: ignore[method-assign]
    runtime: Any = SimpleNamespace(
        config=holder, store=h.store, _synced_generation=-1, _synced_targets=None
    )
    # Given the start-up sync (the whole schedule)
    h.run(Runtime.ensure_schedule_synced(runtime))
    assert full == [5] and partial == []
    # When nothing was reloaded, nothing is synced; when the file was, only its changes
    h.run(Runtime.ensure_schedule_synced(runtime))
    holder.config, holder.generation = _config(tmp_path, AFTER), 1
    h.run(Runtime.ensure_schedule_synced(runtime))
    assert full == [5] and partial == [{"slower", "gone", "paused", "new"}]
