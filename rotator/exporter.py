"""Gauges of the deployment, read from Redis on each scrape (``rotator exporter``).

These describe shared state, so one exporter serves them, not every worker:

=========================================  ======================================================
metric                                     meaning
=========================================  ======================================================
rotator_credential_age_seconds             target, provider: since the last successful rotation
                                           (absent until the target's first one)
rotator_next_due_seconds                   target: until its next scheduled rotation (negative:
                                           late)
rotator_target_overdue                     target: 1 when the credential is older than its
                                           schedule's interval plus the grace, or its schedule
                                           entry is late by more than the grace
rotator_overdue_targets                    how many targets are overdue
rotator_due_jobs                           jobs whose run time has come (the due queue)
rotator_due_oldest_age_seconds             how long the oldest of those has waited
rotator_dead_letter_jobs                   dead-lettered jobs
rotator_quarantined_jobs                   kind=job|broker: unparseable jobs and broker envelopes
rotator_audit_spool_segments               failed audit writes waiting in the spool (one segment
                                           per failed batch write)
rotator_audit_spool_bytes                  size of the spool
rotator_last_dispatch_timestamp_seconds    unix time of the last dispatch pass (0: never)
rotator_dispatch_interval_seconds          ROTATOR_DISPATCH_INTERVAL (alerts compare against it)
rotator_exporter_scrape_error              1 when Redis could not be read for this scrape
=========================================  ======================================================
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rotator.config import Settings
from rotator.store.keys import Keys

EXPORTER_METRICS = (
    "rotator_credential_age_seconds",
    "rotator_next_due_seconds",
    "rotator_target_overdue",
    "rotator_overdue_targets",
    "rotator_due_jobs",
    "rotator_due_oldest_age_seconds",
    "rotator_dead_letter_jobs",
    "rotator_quarantined_jobs",
    "rotator_audit_spool_segments",
    "rotator_audit_spool_bytes",
    "rotator_last_dispatch_timestamp_seconds",
    "rotator_dispatch_interval_seconds",
    "rotator_exporter_scrape_error",
)


def overdue_grace(settings: Settings) -> float:
    """Late by more than this is overdue: a few dispatch passes, and never under a minute."""
    return max(60.0, 3 * settings.dispatch_interval)


def spool_size(path: Path) -> tuple[int, int]:
    """(segments, bytes) of the audit spool under ``path`` (0, 0 when there is none)."""
    try:
        files = [p for p in path.iterdir() if p.is_file() and p.suffix == ".jsonl"]
    except OSError:
        return 0, 0
    return len(files), sum(p.stat().st_size for p in files)


class RedisCollector:
    """A prometheus-client collector: one round of reads per scrape, nothing cached."""

    def __init__(self, settings: Settings, client: Any, config: Any) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.client = client
        self.config = config  # rotator.runtime.ConfigHolder: the targets and their schedules

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        error = GaugeMetricFamily("rotator_exporter_scrape_error", "1: Redis could not be read")
        try:
            yield from self._collect(time.time())
            error.add_metric([], 0)
        except Exception:  # the scrape still answers, with the error gauge set
            error.add_metric([], 1)
        yield error

    def _collect(self, now: float) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        targets = self.config.get().targets
        names = sorted(targets)
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(self.keys.target(name), "rotated_at")
            pipe.zscore(self.keys.schedule, name)
        pipe.zcount(self.keys.due, "-inf", now)
        pipe.zrangebyscore(self.keys.due, "-inf", now, start=0, num=1, withscores=True)
        pipe.zcard(self.keys.dead)
        pipe.hlen(self.keys.quarantine)
        pipe.llen(self.keys.broker_quarantine)
        pipe.get(self.keys.last_dispatch)
        replies = pipe.execute()

        age = GaugeMetricFamily(
            "rotator_credential_age_seconds",
            "Seconds since the last successful rotation",
            labels=["target", "provider"],
        )
        due_in = GaugeMetricFamily(
            "rotator_next_due_seconds", "Seconds until the next rotation", labels=["target"]
        )
        late = GaugeMetricFamily("rotator_target_overdue", "1: overdue", labels=["target"])
        grace = overdue_grace(self.settings)
        overdue = 0
        for i, name in enumerate(names):
            rotated_at, next_due = replies[2 * i], replies[2 * i + 1]
            spec = targets[name]
            is_late = False
            if rotated_at:
                seconds = now - float(rotated_at)
                age.add_metric([name, spec.provider], seconds)
                schedule = spec.parsed_schedule
                every = getattr(schedule, "every", None)
                is_late = every is not None and seconds > every + grace
            if next_due is not None:
                due_in.add_metric([name], float(next_due) - now)
                is_late = is_late or float(next_due) < now - grace
            late.add_metric([name], 1 if is_late else 0)
            overdue += is_late
        yield from (age, due_in, late)
        yield _gauge("rotator_overdue_targets", "Targets overdue", overdue)

        depth, oldest, dead, quarantined, broker_quarantined, last = replies[len(names) * 2 :]
        yield _gauge("rotator_due_jobs", "Jobs whose run time has come", depth)
        oldest_age = now - float(oldest[0][1]) if oldest else 0.0
        yield _gauge("rotator_due_oldest_age_seconds", "Wait of the oldest due job", oldest_age)
        yield _gauge("rotator_dead_letter_jobs", "Dead-lettered jobs", dead)
        kinds = GaugeMetricFamily(
            "rotator_quarantined_jobs", "Quarantined jobs and envelopes", labels=["kind"]
        )
        kinds.add_metric(["job"], quarantined)
        kinds.add_metric(["broker"], broker_quarantined)
        yield kinds
        from rotator.audit.spool import SPOOL_DIRNAME

        segments, size = spool_size(self.settings.state_dir / SPOOL_DIRNAME)
        yield _gauge("rotator_audit_spool_segments", "Failed audit writes spooled", segments)
        yield _gauge("rotator_audit_spool_bytes", "Audit spool size", size)
        yield _gauge(
            "rotator_last_dispatch_timestamp_seconds",
            "Unix time of the last dispatch",
            float(last) if last else 0.0,
        )
        yield _gauge(
            "rotator_dispatch_interval_seconds",
            "Configured dispatch interval",
            self.settings.dispatch_interval,
        )


def _gauge(name: str, help_text: str, value: float) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, help_text, value=value)


def exporter_registry(settings: Settings) -> Any:
    """A registry holding only the Redis gauges (no process metrics of the exporter itself)."""
    from prometheus_client import CollectorRegistry

    from rotator.connections import sync_redis
    from rotator.embedded import redis_url_for
    from rotator.runtime import ConfigHolder

    client = sync_redis(redis_url_for(settings), socket_timeout=5, socket_connect_timeout=5)
    registry = CollectorRegistry()
    registry.register(RedisCollector(settings, client, ConfigHolder(settings, lenient=True)))
    return registry
