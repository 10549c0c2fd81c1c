"""How an attempt ends: retried, failed, dead, unverified, or refused before it began.

``Engine`` (``rotator.engine``) runs the attempt; these are the paths out of it. Each writes the
job's state durably first and its audit event second: a terminal event is sealed into the job
(``audit_owed``) before the state changes, so a crash in between is repaired by the next
delivery (``_refused``), and a forged owed event is refused rather than chained. What is
retried, and after how long, is ``rotator.retry``'s one decision.

A terminal event of a failed, dead, conflicted or unverified job (and a quarantined job's) is
also handed to the notifier (``_notify``), bounded in time, after the job's state is durable;
whatever goes wrong there is logged and swallowed, never raised into the rotation. A repeat
(the owed event written by a later delivery) is deduplicated by the queue per job and event.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import structlog

from rotator import metrics
from rotator.attempt import Attempt
from rotator.errors import AuditUnavailable, WriteNotDurable
from rotator.models import BeginRefused, Job, JobState, Outcome
from rotator.notify.events import JOB_ENDINGS, Notice
from rotator.protocols import AuditSink, JobStore
from rotator.retry import Retry, verifying_since

if TYPE_CHECKING:
    from rotator.audit import AuditEvent
    from rotator.engine import EngineOptions

log = structlog.get_logger("rotator.engine")

# Queueing a notice is one Redis script; a notification path slower than this is abandoned.
NOTIFY_TIMEOUT = 2.0


class Endings:
    """The engine's ending paths; ``Engine`` inherits them."""

    store: JobStore
    audit: AuditSink
    options: EngineOptions

    async def _refused(self, job: Job, refused: BeginRefused) -> Outcome:
        if refused.reason == "terminal" and refused.audit_owed:
            # The worker that ended this job died before writing its terminal event.
            owed = await self.audit.open_owed(job.id, refused.audit_owed)
            if owed is None:  # forged: refused and reported by the audit log, never chained
                await self.store.settle(job.id)
            else:
                await self._write_owed(job.id, owed)
            return Outcome.SKIPPED
        if refused.reason == "terminal":
            await self.store.settle(job.id)  # ended, nothing owed: it has no business being due
            return Outcome.SKIPPED
        if refused.reason != "busy":
            return Outcome.SKIPPED
        # Be due when the job can start, not at a claim's visibility deadline: our own attempt
        # on a worker that may have died ends with its lease; another job's is polled for.
        lease_left = refused.lease_ms / 1000
        own = refused.detail == job.id
        wait = lease_left if own else min(lease_left, self.options.busy_retry_delay)
        await self.store.defer(job.id, time.time() + wait + 0.25)
        return Outcome.SKIPPED if own else Outcome.DEFERRED

    async def _failed(self, ctx: Attempt, exc: Exception) -> Outcome:
        job = ctx.job
        error_class = type(exc).__name__
        message = _describe(exc)
        fields: dict[str, Any] = {"last_error": message, "last_error_class": error_class}
        now = time.time()
        since = verifying_since(ctx.journal, ctx.job.verifying_since)
        applied_for = None if since is None else max(0.0, now - since)
        if since is not None:
            fields["verifying_since"] = since
        elapsed = max(0.0, now - job.created_at)
        decision = self.options.retry.decide(exc, job.attempts, applied_for, elapsed)
        if isinstance(decision, Retry):
            metrics.retried(ctx.provider_name, error_class, decision.state)
            await self.store.reschedule(ctx.lease, now + decision.delay, decision.state, fields)
            verifying = decision.state is JobState.VERIFYING
            then = "the update may be live, verify again in" if verifying else "retry in"
            await self._emit_quiet(
                ctx.event(
                    "job.verify_scheduled" if verifying else "job.retry_scheduled",
                    outcome="retry",
                    error_class=error_class,
                    detail=f"{message}; {then} {decision.delay:.1f}s",
                )
            )
            log.info(
                "rotation rescheduled", job_id=job.id, state=decision.state, delay=decision.delay
            )
            return Outcome.RETRY
        state = decision.state
        detail = message
        if state is JobState.UNVERIFIED:
            detail = (
                f"{message}; not verified after {applied_for or 0:.0f}s: the update may be live, "
                f"{ctx.version or job.secret_version} stays pending for the next job to check"
            )
        # Keep `pending` when an update may have reached the provider: the next job checks
        # whether it is live before moving on.
        await self._end(
            ctx,
            state,
            ctx.event(f"job.{state}", outcome=str(state), error_class=error_class, detail=detail),
            clear_pending=since is None and ctx.journal.get("intent") is None,
            job_fields=fields,
        )
        # The credential was not rotated: a scheduled target must not wait a whole period.
        await self.store.due_again_after_failure(
            job.target, time.time() + self.options.failure_retry_interval
        )
        log.warning(
            "rotation ended without success",
            job_id=job.id,
            target=job.target,
            state=str(state),
            error_class=error_class,
            error=message,
        )
        return Outcome(str(state))

    async def _end(self, ctx: Attempt, state: JobState, event: AuditEvent, **finish: Any) -> bool:
        """Finish the job with its terminal audit event owed, then write the event.

        The job's state is durable first; the event follows. Until it is written the job stays
        due, so a crash in between is repaired by the next delivery (see ``_refused``).

        Returns False when the finish was asked to be ``durable`` (a promotion) and too few
        replicas acknowledged it: the job ended on the primary, which is what everyone reads
        now, but a failover could bring it back as running (the next attempt then promotes
        again from the durable intent); the caller must not act on it.
        """
        owed = self.audit.seal_owed(event)  # signed: a forged owed event is never chained
        await ctx.release_lease()
        durable = True
        try:
            await self.store.finish(
                ctx.lease, state, audit_owed=owed, settle_within=self.options.lease_ttl, **finish
            )
        except WriteNotDurable as exc:
            log.warning("job end not replicated in time", job_id=ctx.job.id, error=str(exc))
            durable = False
        await self._write_owed(ctx.job.id, event)
        return durable

    async def _write_owed(self, job_id: str, event: AuditEvent) -> None:
        await self._notify(event)
        try:
            await self.audit.emit(event)
        except AuditUnavailable:
            log.error("terminal audit event still owed; a later delivery writes it", job_id=job_id)
            return
        await self.store.settle(job_id)

    async def _notify(self, event: AuditEvent) -> None:
        """Queue a notice for a terminal event the webhooks hear about; never raises."""
        kind = JOB_ENDINGS.get(event.event)
        if kind is None:
            return
        try:
            async with asyncio.timeout(NOTIFY_TIMEOUT):
                await self.options.notifier.notify(Notice.from_event(kind, event))
        except Exception as exc:  # a failing notification path never fails a rotation
            log.warning(
                "notification not queued",
                job_id=event.job_id,
                notice_event=str(kind),
                error=type(exc).__name__,
            )

    async def _emit_quiet(self, event: AuditEvent) -> None:
        """For terminal bookkeeping events: the job state is already durable in Redis."""
        try:
            await self.audit.emit(event)
        except AuditUnavailable:
            log.error("audit event could not be written", audit_event=event.event)


def _describe(exc: Exception) -> str:
    # Bounded, control-free and redacted of every secret the attempt held, in any form.
    from rotator.redaction import describe_failure

    return describe_failure(exc)
