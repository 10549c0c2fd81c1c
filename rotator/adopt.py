"""``first_rotation: adopt``: take over a target without writing to it.

A target added with ``adopt`` is read once (through a client that refuses every request that
could write, the same guard ``rotator plan`` uses), and its live remote version is recorded as
the target's state with outcome ``adopted``; no secret version is stored and nothing is sent.
Its first rotation then comes at its next scheduled time. A failed read is logged and audited
as ``target.adopt_failed``; the target still waits for its schedule (never a surprise write).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from rotator.audit import AuditEvent
from rotator.errors import RotatorError
from rotator.plan.readonly import EmptyJournal, ReadOnlyContext
from rotator.providers import load_provider
from rotator.resolve import resolve_target

if TYPE_CHECKING:
    from rotator.runtime import Runtime

log = structlog.get_logger("rotator.adopt")


async def adopt_targets(runtime: Runtime, names: list[str]) -> list[str]:
    """Adopt each of ``names`` whose spec says ``first_rotation: adopt``; returns those adopted."""
    config = runtime.config.get()
    specs = config.targets
    wanted = [n for n in names if n in specs and specs[n].first_rotation == "adopt"]
    if not wanted:
        return []
    settings = runtime.settings
    context = ReadOnlyContext(
        timeout=settings.http_timeout,
        max_response_bytes=settings.http_max_response_bytes,
        url_policy=settings.url_policy(),
        # The reads count against the same budgets and use the same tokens as the workers'.
        tokens=runtime.providers.tokens,
        rate_limiter=runtime.providers.rate_limiter,
    )
    adopted = []
    try:
        for name in wanted:
            spec = config.targets[name]
            try:
                target = await resolve_target(name, spec, config)
                live = await load_provider(spec.provider, context).read(target, EmptyJournal())
            except (RotatorError, KeyError, OSError) as exc:
                log.warning("adopt failed", target=name, error=type(exc).__name__)
                await runtime.audit.emit(
                    AuditEvent(
                        "target.adopt_failed",
                        target=name,
                        provider=spec.provider,
                        actor="schedule",
                        outcome="failed",
                        detail=f"{type(exc).__name__}: {exc}",
                    )
                )
                continue
            if await runtime.store.mark_adopted(name, live.version, time.time()):
                adopted.append(name)
                await runtime.audit.emit(
                    AuditEvent(
                        "target.adopted",
                        target=name,
                        provider=spec.provider,
                        actor="schedule",
                        outcome="adopted",
                        remote_version_before=live.version,
                        detail="live version recorded as current; nothing written",
                    )
                )
    finally:
        await context.aclose()
    return adopted
