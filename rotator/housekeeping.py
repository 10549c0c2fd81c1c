"""Periodic housekeeping: retention of ended jobs and secret versions, the scheduled archive.

Redis runs with ``noeviction`` (see ``rotator.store.retention``), so whatever rotator adds has
to go away again. The dispatch task (``rotator.tasks.dispatch``, every few seconds from beat)
calls ``housekeep`` after dispatching; each periodic task runs at most once per interval across
all dispatchers, whoever first takes its turn key (``SET NX`` with the interval as TTL):

==========  ================================  ===============================================
task        interval                          work
==========  ================================  ===============================================
retention   ROTATOR_HOUSEKEEPING_INTERVAL     delete jobs ended before ROTATOR_JOB_RETENTION;
                                              prune each secret to ROTATOR_SECRET_VERSIONS_KEPT
archive     ROTATOR_AUDIT_ARCHIVE_INTERVAL    move audit events older than
            ('' = never)                      ROTATOR_AUDIT_RETENTION to ROTATOR_AUDIT_ARCHIVE_DIR
==========  ================================  ===============================================

Archiving is blocking file and Redis work through the audit package's public API; the dispatch
task runs it on its Celery thread (``archive_audit``), never on the shared event loop. The
archive directory must be the same for every process that may dispatch (a shared volume), or
``rotator audit verify --archive-dir`` would find the archive split across hosts.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import redis
import structlog

from rotator.audit import ARCHIVE_DIRNAME, ArchiveResult, AuditReader
from rotator.config import Settings, TargetsConfig, parse_interval
from rotator.connections import sync_redis
from rotator.embedded import redis_url_for
from rotator.store import RotatorStore
from rotator.store.keys import Keys

log = structlog.get_logger("rotator.housekeeping")


@dataclass(frozen=True)
class Retention:
    """The retention settings, parsed once."""

    job_retention: float  # seconds after a job ended
    versions_kept: int  # newest versions kept per secret (plus any still named)
    interval: float  # seconds between retention runs
    archive_interval: float | None  # seconds between audit archive runs; None: never

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        return cls(
            job_retention=parse_interval(settings.job_retention),
            versions_kept=settings.secret_versions_kept,
            interval=parse_interval(settings.housekeeping_interval),
            archive_interval=(
                parse_interval(settings.audit_archive_interval)
                if settings.audit_archive_interval
                else None
            ),
        )


@dataclass
class HousekeepingResult:
    ran: bool = False  # this call took the retention turn
    expired_jobs: int = 0
    pruned_versions: int = 0
    archive_due: bool = False  # this call took the archive turn: run ``archive_audit``


async def housekeep(
    store: RotatorStore, config: TargetsConfig, retention: Retention, now: float | None = None
) -> HousekeepingResult:
    now = time.time() if now is None else now
    result = HousekeepingResult()
    if await store.take_turn("retention", retention.interval):
        result.ran = True
        result.expired_jobs = await store.expire_ended_jobs(now - retention.job_retention)
        users = secret_users(config)
        for secret in await store.secrets_over_cap(list(users), retention.versions_kept):
            result.pruned_versions += await store.prune_secret_versions(
                secret, users[secret], retention.versions_kept
            )
        if result.expired_jobs or result.pruned_versions:
            log.info(
                "retention applied",
                expired_jobs=result.expired_jobs,
                pruned_versions=result.pruned_versions,
            )
    if retention.archive_interval is not None:
        result.archive_due = await store.take_turn("archive", retention.archive_interval)
    return result


def secret_users(config: TargetsConfig) -> dict[str, list[str]]:
    """Secret name -> the targets that rotate it (secrets no target uses included)."""
    users: dict[str, list[str]] = defaultdict(list)
    for name in config.secrets:
        users[name] = []
    for name, target in config.targets.items():
        users[target.secret].append(name)
    return dict(users)


def archive_directory(settings: Settings) -> Path:
    return settings.audit_archive_dir or settings.state_dir / ARCHIVE_DIRNAME


def archive_audit(settings: Settings, now: float | None = None) -> ArchiveResult | None:
    """Archive audit events older than ``ROTATOR_AUDIT_RETENTION`` (blocking; not on a loop).

    A failure is logged, not raised: the stream stays intact and the next turn tries again."""
    now = time.time() if now is None else now
    directory = archive_directory(settings)
    client = sync_redis(redis_url_for(settings), socket_timeout=settings.redis_socket_timeout)
    try:
        reader = AuditReader(client, Keys(settings.key_prefix), settings.audit_key_bytes())
        result = reader.archive(now - parse_interval(settings.audit_retention), directory)
    except (OSError, redis.RedisError) as exc:
        log.error("scheduled audit archive failed", error=type(exc).__name__, dir=str(directory))
        return None
    finally:
        client.close()
    if result.archived or result.removed:
        log.info(
            "audit archived",
            events=result.archived,
            removed=result.removed,
            last_seq=result.last_seq,
            files=result.files,
        )
    return result


__all__ = [
    "HousekeepingResult",
    "Retention",
    "archive_audit",
    "archive_directory",
    "housekeep",
    "secret_users",
]
