"""Redis key layout: every key rotator writes, in one place.

All keys share one prefix (``ROTATOR_KEY_PREFIX``, default ``rotator:``) so several deployments
or test runs can share one Redis database and each can remove exactly its own keys.

No key name is built anywhere else: code reaches Redis through ``Keys``, and the Lua scripts
(``rotator/store/lua/``) receive every key they touch as KEYS, never a prefix to build on.

==============================  =======  ===================================================
key                             type     contents
==============================  =======  ===================================================
{p}job:{job_id}                 hash     job record (see rotator.models.Job); no secrets
{p}job:{job_id}:journal         hash     step -> JSON of what the step recorded (intent first)
{p}jobs:due                     zset     job_id -> unix time the job should next run
                                         (new, retry backoff, or lease expiry while running)
{p}jobs:index                   zset     job_id -> created time (listing, newest first)
{p}jobs:dead                    zset     job_id -> time it was dead-lettered
{p}jobs:quarantine              hash     job_id -> JSON {reason, raw} for unparseable jobs
{p}broker:quarantine            list     JSON {reason, queue, size, at, raw_b64, truncated} of
                                         broker envelopes a worker could not decode, newest
                                         first, bounded (written by rotator.broker)
{p}target:{name}                hash     stage pointers: current, previous, pending,
                                         pending_job, rotated_at, last_job, last_outcome,
                                         remote_version; fence: the fencing-token counter
                                         (a ``target:{name}:fence`` key before: no longer read)
{p}target:{name}:active         string   id of the target's queued/running job (dedupe)
{p}target:{name}:lease          string   "{fence}:{nonce}:{job_id}" with a TTL (renewed by the
                                         attempt's heartbeat): one rotation at a time
{p}schedule                     zset     target -> unix time of its next scheduled rotation
{p}secret:{name}:versions       hash     version_id -> Fernet token of the JSON value record
{p}secret:{name}:fingerprints   hash     HMAC fingerprint (32 raw bytes; 64 hex digits when
                                         stored by earlier versions) -> version_id (dedupe of
                                         reloads); field ``#seq``: last version sequence number;
                                         field ``#latest``: the newest committed version and a
                                         keyed digest of its field names
{p}secret:{name}:seq            string   last version sequence number as earlier versions kept
                                         it; never created now, kept in step while it exists
{p}audit                        stream   audit events, fields ``event`` (canonical JSON with
                                         ``seq``) and ``hash`` (HMAC chain; see rotator.audit);
                                         written only by the Lua script in rotator.store.audit
{p}audit:head                   hash     seq, hash, id of the newest audit event; archived_seq,
                                         archived_hash (chain anchor after archiving); max_lag,
                                         max_lead (seconds, event time vs. storage time)
{p}audit:target:{name}          zset     stream id -> audit seq: per-target index
{p}audit:job:{job_id}           list     stream ids of one job's events, in chain order
{p}breaker:{provider}@{host}   hash     circuit breaker of one provider host: state (open),
                                         window_start, calls, failures, opened_at, probe_at
                                         (see rotator.store.breaker), with a TTL
{p}ratelimit:{host}:{class}     zset     sliding log of one client-side rate budget: grant id ->
                                         grant time (Redis server clock), per provider host and
                                         method class (read, write, auth); pruned past the longest
                                         window, with a TTL (rotator.store.ratelimit)
{p}token:{digest}               string   the shared bearer token of one credential set (digest of
                                         provider, token URL, client id, scope: never the
                                         secret), sealed with the master key (Fernet), expiring
                                         a safety margin before the token (rotator.store.tokens)
{p}token:{digest}:lock          string   random nonce of the one process minting that token,
                                         with a TTL; released by compare-and-delete
{p}housekeeping:{task}          string   set with a TTL by whichever dispatcher runs a
                                         periodic task (``retention``, ``archive``): one run
                                         per interval across all dispatchers
{p}api:idempotency:{digest}     string   JSON of an HTTP API response stored under an
                                         Idempotency-Key (digest of token name + key), TTL
{p}keys:check                   hash     key check values: master (Fernet token of a constant),
                                         audit_kid/audit_epoch/audit:{n} (see rotator.keycheck)
{p}keys:reseal                  hash     progress of `rotator keys rotate` (resumable)
{p}dispatch:last                string   unix time of the last dispatch pass (rotator.metrics)
{p}notify:due                   zset     delivery id -> unix time it is next due (new, retry
                                         backoff, rate limit, or a claim's visibility window)
{p}notify:deliveries            hash     delivery id -> JSON {webhook, notice, attempts}; its
                                         length bounds the queue (ROTATOR_NOTIFY_MAX_QUEUED)
{p}notify:dedupe:{digest}       string   set with the dedupe window as TTL once a notice for
                                         (subject, event) was queued: digest of both
{p}notify:rate:{webhook}        string   GCRA theoretical arrival time of the webhook's next
                                         delivery (rate limit shared by every process), TTL
{p}notify:failed                list     JSON of deliveries that gave up, newest first, bounded
{p}config:snapshot:{digest}     string   MAC || zlib(JSON) of a validated targets file, keyed
                                         by the digest of its bytes and the settings that
                                         decide validity, TTL (see rotator.config_snapshot)
{p}config:snapshot:{digest}:lock  string random token of the process validating that file
                                         while the others wait for its snapshot, TTL 60 s
{p}config:block:{digest}        string   MAC || zlib(JSON) of a block of targets that
                                         validated, keyed by the digest of its text and the
                                         same settings, TTL (see rotator.config_blocks)
==============================  =======  ===================================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "rotator:"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def journal(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:journal"

    @property
    def due(self) -> str:
        return f"{self.prefix}jobs:due"

    @property
    def job_index(self) -> str:
        return f"{self.prefix}jobs:index"

    @property
    def dead(self) -> str:
        return f"{self.prefix}jobs:dead"

    @property
    def quarantine(self) -> str:
        return f"{self.prefix}jobs:quarantine"

    @property
    def broker_quarantine(self) -> str:
        return f"{self.prefix}broker:quarantine"

    def target(self, name: str) -> str:
        return f"{self.prefix}target:{name}"

    def active(self, name: str) -> str:
        return f"{self.prefix}target:{name}:active"

    def lease(self, name: str) -> str:
        return f"{self.prefix}target:{name}:lease"

    @property
    def schedule(self) -> str:
        return f"{self.prefix}schedule"

    def config_snapshot(self, digest: str) -> str:
        return f"{self.prefix}config:snapshot:{digest}"

    def config_block(self, digest: str) -> str:
        return f"{self.prefix}config:block:{digest}"

    def config_snapshot_lock(self, digest: str) -> str:
        return f"{self.config_snapshot(digest)}:lock"

    def secret_versions(self, name: str) -> str:
        return f"{self.prefix}secret:{name}:versions"

    def secret_fingerprints(self, name: str) -> str:
        return f"{self.prefix}secret:{name}:fingerprints"

    def secret_seq(self, name: str) -> str:
        return f"{self.prefix}secret:{name}:seq"

    @property
    def audit(self) -> str:
        return f"{self.prefix}audit"

    @property
    def audit_head(self) -> str:
        return f"{self.prefix}audit:head"

    def audit_target(self, name: str) -> str:
        return f"{self.prefix}audit:target:{name}"

    def audit_job(self, job_id: str) -> str:
        return f"{self.prefix}audit:job:{job_id}"

    def breaker(self, host: str) -> str:
        return f"{self.prefix}breaker:{host}"

    def rate_budget(self, name: str) -> str:
        return f"{self.prefix}ratelimit:{name}"

    def token(self, digest: str) -> str:
        return f"{self.prefix}token:{digest}"

    def token_lock(self, digest: str) -> str:
        return f"{self.prefix}token:{digest}:lock"

    def housekeeping(self, task: str) -> str:
        return f"{self.prefix}housekeeping:{task}"

    def api_idempotency(self, digest: str) -> str:
        return f"{self.prefix}api:idempotency:{digest}"

    @property
    def key_check(self) -> str:
        return f"{self.prefix}keys:check"

    @property
    def last_dispatch(self) -> str:
        return f"{self.prefix}dispatch:last"

    @property
    def notify_due(self) -> str:
        return f"{self.prefix}notify:due"

    @property
    def notify_deliveries(self) -> str:
        return f"{self.prefix}notify:deliveries"

    def notify_dedupe(self, digest: str) -> str:
        return f"{self.prefix}notify:dedupe:{digest}"

    def notify_rate(self, webhook: str) -> str:
        return f"{self.prefix}notify:rate:{webhook}"

    @property
    def notify_failed(self) -> str:
        return f"{self.prefix}notify:failed"

    @property
    def reseal(self) -> str:
        return f"{self.prefix}keys:reseal"

    def secret_versions_pattern(self) -> str:
        """SCAN pattern of every ``secret:{name}:versions`` key (glob characters escaped)."""
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.prefix)
        return f"{escaped}secret:*:versions"
