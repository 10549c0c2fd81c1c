"""The rotation state machine. Plain asyncio: no Celery and no Redis imports.

One attempt of one job, under the target's fenced lease::

    begin (lease + attempts + running, atomically)
      -> pin the secret version (stored encrypted BEFORE any provider call; reused by retries)
      -> stage it as the target's `pending`
      -> read the remote resource
         * already carries our version (earlier response lost)   -> verify, promote
         * changed since our recorded intent / first read          -> conflict (never overwrite)
      -> journal the intent (expected remote version), audit it  -> update (If-Match / CAS)
      -> journal the result -> re-read and verify -> promote pending to current, release

The pinned version, the intent and the promotion are *durable* writes: with
``ROTATOR_REDIS_MIN_REPLICAS`` set, each waits for that many Redis replicas, and one that is
not replicated in time (``WriteNotDurable``) is treated as not written: no remote write
follows it, and the attempt retries (``rotator.store.base`` has the mechanism).

While the attempt runs, a heartbeat renews the short lease (``rotator.lease``) and every remote
write first checks that the lease covers it. A worker killed anywhere leaves the job in the due
set with its lease's expiry as score (one ``lease_ttl`` after its last heartbeat); the next
attempt finds the pinned version and the journalled intent and converges from the remote state
instead of guessing. Retry delays go back into the due set (never Celery countdowns).

The engine sees its collaborators through the Protocols in ``rotator.protocols`` (a job store,
an audit sink) and the provider interface. Every failure goes to ``rotator.retry``, whose one
decision says retry (after how long) or stop (failed or dead); targets are resolved by
``rotator.resolve`` and secret versions pinned by ``rotator.sources``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from rotator import metrics
from rotator.attempt import Attempt, JobJournal
from rotator.breaker import Breaker, NoBreaker, admit, note_outcome, start_tally
from rotator.config import TargetsConfig, TargetSpecModel
from rotator.endings import Endings
from rotator.errors import (
    AuditUnavailable,
    ConflictDetected,
    LeaseLost,
    MalformedJob,
    ProviderError,
    StaleVersion,
    VerificationFailed,
    VersionConflict,
    WriteNotDurable,
)
from rotator.lease import LeaseKeeper
from rotator.models import BeginRefused, JobState, Outcome, Reason, version_seq
from rotator.notify.events import NoNotifier
from rotator.protocols import AuditSink, JobStore, Notifier, audit_event_type
from rotator.providers.base import (
    ApplyResult,
    Evidence,
    Provider,
    RemoteState,
    SecretPayload,
    TargetSpec,
    Want,
    redact,
)
from rotator.resolve import resolve_target, target_model
from rotator.retry import RetryPolicy, may_have_applied
from rotator.sources import SourceContext, pin_version
from rotator.sources.store import stored_fingerprint

if TYPE_CHECKING:
    pass

log = structlog.get_logger("rotator.engine")


@dataclass
class EngineOptions:
    lease_ttl: float = 30.0
    # Lease time a remote write needs (the HTTP call deadline); less left refuses the write.
    remote_write_time: float = 15.0
    busy_retry_delay: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    environ: Mapping[str, str] | None = None  # for credential env: references (tests inject)
    breaker: Breaker = field(default_factory=NoBreaker)  # per provider host (rotator.breaker)
    # A scheduled target whose job ended failed/dead/unverified comes due again this soon.
    failure_retry_interval: float = 3600.0
    # Failed, dead, conflicted, unverified and quarantined jobs are queued for the webhooks
    # (rotator.notify); queueing failures are logged and swallowed (see Endings._notify).
    notifier: Notifier = field(default_factory=NoNotifier)


ConfigSource = Callable[[], TargetsConfig]


class Engine(Endings):
    def __init__(
        self,
        store: JobStore,
        audit: AuditSink,
        providers: Callable[[str], Provider],
        config: ConfigSource,
        options: EngineOptions | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.providers = providers
        self.config = config
        self.options = options or EngineOptions()

    # -- entry point ---------------------------------------------------------------------

    @metrics.observe_rotation
    async def process(self, job_id: str) -> Outcome:
        """Run one attempt of a job. Safe to call for any id any number of times."""
        try:
            job = await self.store.load_job(job_id)
        except MalformedJob as exc:
            await self.store.quarantine(job_id, exc.reason)
            quarantined = audit_event_type()(
                "job.quarantined", job_id=job_id, outcome="failed", detail=exc.reason
            )
            await self._emit_quiet(quarantined)
            await self._notify(quarantined)
            log.warning("job quarantined", job_id=job_id, reason=exc.reason)
            return Outcome.QUARANTINED

        begun = await self.store.begin(job_id, job.target, self.options.lease_ttl)
        if isinstance(begun, BeginRefused):
            return await self._refused(job, begun)
        metrics.lease_taken(job)

        lease, job = begun.lease, begun.job
        journal = JobJournal(self.store, lease, self.options.lease_ttl, begun.journal)
        started = time.monotonic()
        ctx = Attempt(job=job, lease=lease, journal=journal, started=started)
        ctx.keeper = LeaseKeeper(
            self.store, lease, self.options.lease_ttl, write_time=self.options.remote_write_time
        )
        try:
            async with ctx.keeper:  # heartbeat; a lost lease cancels the attempt (LeaseLost)
                outcome = await self._attempt(ctx, begun.target_state)
            await note_outcome(self.options.breaker, ctx)
            return outcome
        except LeaseLost:
            log.warning("lease lost; another attempt owns the target", job_id=job.id)
            await self._emit_quiet(ctx.event("lease.lost", outcome="retry"))
            return Outcome.SKIPPED
        except ConflictDetected as exc:
            await note_outcome(self.options.breaker, ctx)
            await self._end(
                ctx,
                JobState.CONFLICT,
                ctx.event(
                    "job.conflict",
                    outcome="conflict",
                    remote_version_before=exc.before,
                    remote_version_after=exc.after,
                    error_class="Conflict",
                    detail=exc.detail,
                ),
                clear_pending=True,
                job_fields={"last_error": exc.detail, "last_error_class": "Conflict"},
            )
            return Outcome.CONFLICT
        except Exception as exc:  # every failure must end in a job state
            await note_outcome(self.options.breaker, ctx)
            return await self._failed(ctx, exc)

    # -- one attempt -----------------------------------------------------------------------

    async def _attempt(self, ctx: Attempt, target_state: dict[str, str]) -> Outcome:
        job, journal = ctx.job, ctx.journal
        config = self.config()
        spec = target_model(config, job.target)
        ctx.provider_name = spec.provider
        metrics.bind_attempt(job.target, spec.provider)
        await self.audit.replay_spool()
        await self.audit.emit(ctx.event("job.started"))

        provider = self.providers(spec.provider)
        target = await resolve_target(job.target, spec, config, self.options.environ)
        version, fingerprint, pin = await self._pin_version(ctx, spec, config)
        ctx.version, ctx.fingerprint = version, fingerprint
        want = Want(version, fingerprint, job.id)

        current = target_state.get("current") or None
        noop = current == version and journal.get("intent") is None
        stale = bool(current) and version_seq(version) < version_seq(current or "")
        steps: dict[str, dict[str, Any]] = {}
        pointers: dict[str, str] = {}
        if pin is not None:
            steps["secret"] = pin
        if not noop and not stale and target_state.get("pending") != version:
            # Staged with the pin, in one write: both before the first remote write.
            steps["staged"] = {
                "version": version,
                "previous_pending": target_state.get("pending") or None,
                "previous_pending_job": target_state.get("pending_job") or None,
            }
            pointers = {"pending": version, "pending_job": job.id}
        if steps:
            await journal.record_many(
                steps,
                job_fields={"secret_version": version} if pin is not None else None,
                target_fields=pointers,
                durable=pin is not None,  # the version every retry reuses must survive a failover
            )
        if pin is not None:
            await self.audit.emit(ctx.event("secret.loaded", detail=pin.get("origin")))
        if stale:
            raise StaleVersion(f"{version} is older than the target's current {current}")
        if noop:
            await self._end(
                ctx,
                JobState.COMPLETED,
                ctx.event("job.noop", outcome="noop", detail="version is already current"),
            )
            return Outcome.NOOP

        # Fail fast, before the first provider call, while the host's breaker is open.
        ctx.breaker_host = await admit(self.options.breaker, target.provider, target.base_url)
        ctx.calls = start_tally()
        live = await provider.read(target, journal)
        await self.audit.emit(ctx.event("remote.read", remote_version_before=live.version))
        await self._recover_stale_pending(ctx, provider, live, target_state, spec)

        applied_version = _str_or_none((journal.get("applied") or {}).get("remote_version"))
        if provider.carries(live, want, applied_version) is not Evidence.OURS:
            applied_version = await self._update(ctx, provider, target, live, want, spec)

        after = await provider.read(target, journal)
        verdict = provider.carries(after, want, applied_version)
        if verdict is Evidence.NOT_OURS:
            raise VerificationFailed(
                "re-read after the update does not show it", provider=spec.provider
            )
        await self.audit.emit(
            ctx.event(
                "update.verified",
                remote_version_before=live.version,
                remote_version_after=after.version,
            )
        )
        durable = await self._end(
            ctx,
            JobState.COMPLETED,
            ctx.event(
                "job.completed",
                outcome="success",
                remote_version_after=after.version,
                detail=f"promoted {version} to current (previous: {current or '-'})",
            ),
            promote_version=version,
            remote_version=after.version,
            job_fields={"last_error": "", "last_error_class": ""},
            durable=True,
        )
        if not durable:
            # A failover could still undo the promotion (the next attempt would promote again
            # from the durable intent); cleanup such as deleting the old connection must wait.
            log.warning("post-promotion cleanup skipped: promotion not replicated", job_id=job.id)
            return Outcome.COMPLETED
        try:
            await provider.after_promote(target, journal)
        except Exception as exc:  # cleanup must never undo a promotion
            log.warning("post-promotion cleanup failed", job_id=job.id, error=type(exc).__name__)
        return Outcome.COMPLETED

    async def _update(
        self,
        ctx: Attempt,
        provider: Provider,
        target: TargetSpec,
        live: RemoteState,
        want: Want,
        spec: TargetSpecModel,
    ) -> str | None:
        """Compare-before-write, journal the intent, apply. Returns the remote version after."""
        job, journal = ctx.job, ctx.journal
        intent = journal.get("intent")
        first = job.first_remote_version
        maybe_applied = journal.earlier_update_may_have_applied()
        replaying = False
        if intent is not None and live.version != intent.get("expected"):
            blind = provider.carries(live, want, None) is Evidence.UNKNOWN
            if blind and provider.replay_safe and maybe_applied:
                # The API cannot show whose change this is; re-sending with the same
                # idempotency key replays our earlier update if it was ours (AppFlow).
                replaying = True
            else:
                raise ConflictDetected(
                    f"remote changed out of band after our intent: {intent.get('expected')} -> "
                    f"{live.version}",
                    _str_or_none(intent.get("expected")),
                    live.version,
                )
        elif intent is None and first is not None and live.version != first:
            raise ConflictDetected(
                f"remote changed out of band since the job first read it: {first} -> "
                f"{live.version}",
                first,
                live.version,
            )

        try:
            await journal.record(
                "intent",
                {
                    "expected": live.version,
                    "attempt": job.attempts,
                    "at": time.time(),
                    # Carried forward: an update that may have landed stays possible evidence.
                    "prior_maybe_applied": maybe_applied,
                },
                job_fields=None if first is not None else {"first_remote_version": live.version},
                durable=True,
            )
        except WriteNotDurable:
            # Too few replicas have the intent: no update is sent, and the journal says so, or
            # the intent would count as an update that may have applied.
            await journal.record("apply_failed", {"attempt": job.attempts, "maybe_applied": False})
            raise
        # Fail closed: if the audit cannot be written, no update is attempted, and the journal
        # says so, or the intent would count as an update that may have applied.
        try:
            await self.audit.emit(ctx.event("update.intent", remote_version_before=live.version))
        except AuditUnavailable:
            await journal.record("apply_failed", {"attempt": job.attempts, "maybe_applied": False})
            raise

        fields = ctx.fields
        if fields is None or ctx.version != want.version_id:
            fields = await self.store.load_secret_version(spec.secret, want.version_id)
        secret = SecretPayload(fields, want.version_id, want.fingerprint)
        try:
            result: ApplyResult = await provider.apply(target, secret, live, want, journal)
        except VersionConflict as exc:
            again = await provider.read(target, journal)
            if provider.carries(again, want, None) is Evidence.OURS:
                result = ApplyResult(version=again.version)
            else:
                raise ConflictDetected(
                    f"compare-before-write refused the update ({exc.code or exc.status}); "
                    f"remote is {again.version}, not ours",
                    live.version,
                    again.version,
                ) from None
        except ProviderError as exc:
            redact(exc, secret)  # whatever the adapter: never let a quoted value travel on
            await journal.record(
                "apply_failed",
                {
                    "attempt": job.attempts,
                    "maybe_applied": may_have_applied(exc),
                    "error": type(exc).__name__,
                },
            )
            raise
        if replaying:
            after = await provider.read(target, journal)
            if after.version != live.version:
                # Not a replay: the change we saw was someone else's, and ours replaced it.
                await self.audit.emit(
                    ctx.event(
                        "update.replaced_foreign_change",
                        remote_version_before=live.version,
                        remote_version_after=after.version,
                        detail="an out-of-band change was overwritten: the provider cannot "
                        "show whose change it was and our earlier update may have been lost",
                    )
                )
        await journal.record("applied", {"remote_version": result.version, "at": time.time()})
        await self.audit.emit(
            ctx.event(
                "update.applied",
                remote_version_before=live.version,
                remote_version_after=result.version,
            )
        )
        return result.version

    async def _recover_stale_pending(
        self,
        ctx: Attempt,
        provider: Provider,
        live: RemoteState,
        target_state: Mapping[str, str],
        spec: TargetSpecModel,
    ) -> None:
        """A pending version left by an earlier job that died after updating may be live: if
        the remote shows it, promote it first so rotator never loses track of the live secret.
        """
        staged = ctx.journal.get("staged") or {}
        stale, pending_job = staged.get("previous_pending"), staged.get("previous_pending_job")
        if not stale or not pending_job or pending_job == ctx.job.id or stale == ctx.version:
            return
        if ctx.journal.get("recovered") or target_state.get("current") == stale:
            return  # an earlier attempt of this job promoted it already
        fingerprint = await stored_fingerprint(self.store, spec.secret, stale)
        if fingerprint is None:
            return
        old = Want(stale, fingerprint, pending_job)
        if provider.carries(live, old, None) is Evidence.OURS:
            current = target_state.get("current") or ""
            await self.store.stage(
                ctx.lease,
                self.options.lease_ttl,
                {"current": stale, "previous": current, "rotated_at": time.time()},
                {"recovered": {"version": stale, "from_job": pending_job}},
            )
            await self.audit.emit(
                ctx.event(
                    "version.recovered",
                    secret_version=stale,
                    fingerprint=fingerprint,
                    remote_version_after=live.version,
                    detail="an earlier job's update was live; promoted it before continuing",
                )
            )

    async def _pin_version(
        self, ctx: Attempt, spec: TargetSpecModel, config: TargetsConfig
    ) -> tuple[str, str, dict[str, Any] | None]:
        """The job's secret version, chosen once: (version, fingerprint, the journal record to
        write when it was chosen just now; None when an earlier attempt's is reused). The value
        is stored encrypted already; the caller journals the record before any remote write."""
        job, journal = ctx.job, ctx.journal
        recorded = journal.get("secret")
        if job.secret_version and recorded:
            return job.secret_version, str(recorded["fingerprint"]), None
        sources = SourceContext(self.store, config.credentials_dir, self.options.environ)
        pinned = await pin_version(
            spec.secret,
            config.secrets[spec.secret],
            sources,
            job.requested_version,
            targets={job.target: (spec.provider, spec.options)},
        )
        ctx.fields = pinned.fields  # when the source produced it: no decrypting read-back
        origin = {"origin": pinned.origin} if pinned.origin else {}  # a remote source's version
        record = {"version": pinned.version, "fingerprint": pinned.fingerprint, **origin}
        return pinned.version, pinned.fingerprint, record


def _str_or_none(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


__all__ = [
    "ConflictDetected",
    "Engine",
    "EngineOptions",
    "JobJournal",
    "Outcome",
    "Reason",
    "VerificationFailed",
]
