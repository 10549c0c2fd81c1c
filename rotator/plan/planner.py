"""The planner: for each target, would a rotation succeed right now, and what would it do?

Per target, in order, each step only when the one before it allows:

1. configuration: every credential reference resolves (``rotator.resolve.resolve_reference``),
   the CA bundle is readable;
2. the new secret: its source pins a version against ``DryVersions`` (the sources' own code,
   so their rules apply), which says which stored version the value maps to and stores nothing;
   a ``generate`` source is reported as "a new value would be generated";
3. the resource: the adapter's own ``read`` through a ``ReadOnlyContext``. Its errors are the
   adapters' own rules: a missing option or credential (``require``), a rejected credential
   (``AuthError``), a missing resource (``NotFound``);
4. what would change: ``rotator.plan.changes`` from the live state and the new value's field
   names, and whether the new value differs from the live one, by the live marker's
   fingerprint (``Want.marker`` carries the first 12 hex digits of the value's HMAC), by the
   live state itself (UiPath), or by rotator's record of the current version (AppFlow);
5. when it is next due, and whether the rotations due within the horizon fit the provider's
   documented rate limits (``rotator.plan.budget``).

Nothing is written: no Redis command but reads, no request but reads and token grants (the
context refuses the rest), no journal record, no stored version, no audit event.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rotator.config import TargetsConfig, TargetSpecModel
from rotator.errors import (
    AuthError,
    BadRequest,
    DecryptionError,
    MalformedJob,
    NotFound,
    PlanWriteRefused,
    ProviderError,
    SecretSourceError,
    TLSVerificationFailed,
    TransportError,
)
from rotator.plan import budget
from rotator.plan.changes import BLIND, Changes, NewValue, preview
from rotator.plan.readonly import DryVersions, EmptyJournal, PlanState
from rotator.providers import load_provider
from rotator.providers.base import Provider, ProviderContext, RemoteState, TargetSpec
from rotator.resolve import resolve_reference, resolve_target_sync
from rotator.sources import SourceContext, pin_version
from rotator.suggest import did_you_mean

# Want.marker: rotator:<version id>:<fingerprint[:12]>:<job id[:12]>
_MARKER = re.compile(r"^rotator:([^:]+):([0-9a-f]{1,12}):")


@dataclass(frozen=True)
class Problem:
    kind: str  # credential, option, source, auth, not_found, unreachable, provider, rate_budget
    message: str


@dataclass
class NewSecret:
    source: str
    status: str  # generated | stored (the version exists) | new (would be stored) | unknown
    version: str | None = None
    fingerprint: str | None = field(default=None, repr=False)
    value: NewValue | None = None


@dataclass
class TargetPlan:
    target: str
    provider: str
    resource_id: str
    problems: list[Problem] = field(default_factory=list)
    authenticated: bool | None = None
    resource_version: str | None = None
    live_version: str | None = None  # the secret version the live resource carries
    live_evidence: str = "none"  # marker | state | record | none
    new_source: str = ""
    new_status: str = "unknown"
    new_version: str | None = None
    differs: bool | None = None
    differs_reason: str = ""
    changes: list[str] = field(default_factory=list)
    next_due: float | None = None
    due_note: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


class Planner:
    def __init__(
        self,
        config: TargetsConfig,
        state: PlanState,
        context: ProviderContext,
        *,
        env: Mapping[str, str] | None = None,
        horizon: float = 86400.0,
        concurrency: int = 8,
        now: float | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.context = context
        self.env = env
        self.horizon = horizon
        self.now = time.time() if now is None else now
        self._limit = asyncio.Semaphore(concurrency)
        self._adapters: dict[str, Provider] = {}

    async def plan(self, names: Sequence[str] = ()) -> list[TargetPlan]:
        """Plans for ``names`` (every target when empty); ``KeyError`` names an unknown one."""
        targets = self.config.targets
        chosen = list(names) or sorted(targets)
        unknown = [n for n in chosen if n not in targets]
        if unknown:
            hint = did_you_mean(unknown[0], targets)
            names = ", ".join(map(repr, unknown))
            raise KeyError(f"no target named {names} in {self.config.path}{hint}")
        records = await self.state.target_states(chosen)
        # Every target counts for the rate budget: they share it, selected or not.
        scheduled = await self.state.next_due(sorted(targets))
        due = budget.first_due(targets, scheduled, self.now)
        over = budget.check(targets, due, self.now, self.horizon)
        plans = await asyncio.gather(
            *(self._bounded(name, records.get(name, {}), due.get(name)) for name in chosen)
        )
        for plan in plans:
            plan.due_note = self._due_note(targets[plan.target], scheduled.get(plan.target))
            if plan.target in over:
                plan.problems.append(Problem("rate_budget", over[plan.target]))
        return list(plans)

    async def _bounded(self, name: str, record: dict[str, str], due: float | None) -> TargetPlan:
        async with self._limit:
            return await self._plan_one(name, record, due)

    async def _plan_one(self, name: str, record: dict[str, str], due: float | None) -> TargetPlan:
        spec = self.config.targets[name]
        plan = TargetPlan(name, spec.provider, spec.resource_id, next_due=due)
        if record.get("pending"):
            plan.notes.append(f"a rotation to {record['pending']} is in progress")
        target = self._resolve(name, spec, plan)
        new = await self._new_secret(spec, plan)
        if target is None:
            return plan
        live = await self._read(target, plan)
        if live is None:
            return plan
        plan.resource_version = live.version
        self._live_version(plan, live, record)
        if new is None or new.value is None:
            return plan
        changes = preview(target, live, new.value)
        plan.changes = changes.fields
        plan.problems.extend(Problem("secret", p) for p in changes.problems)
        plan.differs, plan.differs_reason = await self._differs(spec, new, live, changes, record)
        if plan.differs is False:
            plan.notes.append("the new value is already live: a rotation would change nothing")
        return plan

    @staticmethod
    def _due_note(spec: TargetSpecModel, scheduled: float | None) -> str:
        if not spec.enabled:
            return "disabled"
        if spec.parsed_schedule is None:
            return "on demand only"
        if scheduled is not None:
            return "scheduled"
        if spec.parsed_schedule.every is not None and spec.first_rotation == "now":
            return "at the next sync, within jitter"
        return "first run at its next scheduled time (not yet synced)"

    # -- 1. configuration -----------------------------------------------------------------

    def _resolve(self, name: str, spec: TargetSpecModel, plan: TargetPlan) -> TargetSpec | None:
        # Every reference first, so one plan lists every unresolvable one (resolve_target
        # stops at the first).
        for key, ref in sorted(spec.credentials.items()):
            try:
                resolve_reference(ref, base_dir=self.config.credentials_dir, env=self.env)
            except KeyError as exc:
                plan.problems.append(Problem("credential", f"credential {key!r}: {exc.args[0]}"))
        if plan.problems:
            return None
        target = resolve_target_sync(name, spec, self.config, self.env)
        if target.ca_bundle and not os.access(target.ca_bundle, os.R_OK):
            message = f"ca_bundle {target.ca_bundle} is not readable"
            plan.problems.append(Problem("credential", message))
            return None
        if spec.provider == "appflow" and spec.options.get("credentials") == "default-chain":
            plan.notes.append(
                "credentials: default-chain: requests are signed with the default AWS "
                "credential chain of the machine that runs the worker"
            )
        return target

    # -- 2. the new secret ----------------------------------------------------------------

    async def _new_secret(self, spec: TargetSpecModel, plan: TargetPlan) -> NewSecret | None:
        secret = self.config.secrets[spec.secret]
        plan.new_source = secret.source
        if secret.source == "store" and not self.state.available:
            plan.notes.append("no state store reachable: stored versions cannot be checked")
            return None
        versions = DryVersions(self.state)
        ctx = SourceContext(versions, base_dir=self.config.path.parent, env=self.env)
        try:
            pinned = await pin_version(spec.secret, secret, ctx)
            fields = versions.offered.get(spec.secret) or pinned.fields
            if fields is None and pinned.version:
                fields = await self.state.stored_fields(spec.secret, pinned.version)
        except (SecretSourceError, DecryptionError, MalformedJob) as exc:
            plan.problems.append(Problem("source", str(exc)))
            return None
        value = NewValue(tuple(sorted(fields or {})), fields)
        if secret.source == "generate":
            new = NewSecret(secret.source, "generated", value=value)
        else:
            status = "stored" if pinned.version else "new"
            version = pinned.version or None
            new = NewSecret(secret.source, status, version, pinned.fingerprint, value)
        plan.new_status, plan.new_version = new.status, new.version
        return new

    # -- 3. the resource ------------------------------------------------------------------

    def _adapter(self, provider: str) -> Provider:
        adapter = self._adapters.get(provider)
        if adapter is None:
            adapter = self._adapters[provider] = load_provider(provider, self.context)
        return adapter

    async def _read(self, target: TargetSpec, plan: TargetPlan) -> RemoteState | None:
        try:
            live = await self._adapter(target.provider).read(target, EmptyJournal())
        except AuthError as exc:
            plan.authenticated = False
            plan.problems.append(Problem("auth", f"cannot authenticate: {exc}"))
        except NotFound as exc:
            plan.authenticated = True
            plan.problems.append(Problem("not_found", f"resource {target.resource_id!r}: {exc}"))
        except BadRequest as exc:
            # require() raises with no provider status: a missing option or credential.
            kind = "option" if not exc.status else "provider"
            plan.problems.append(Problem(kind, str(exc)))
        except (TransportError, TLSVerificationFailed) as exc:
            plan.problems.append(Problem("unreachable", str(exc)))
        except (ProviderError, PlanWriteRefused) as exc:
            plan.problems.append(Problem("provider", str(exc)))
        else:
            plan.authenticated = True
            return live
        return None

    # -- 4. live versus new ---------------------------------------------------------------

    @staticmethod
    def _live_version(plan: TargetPlan, live: RemoteState, record: Mapping[str, str]) -> None:
        match = _MARKER.match(live.marker or "")
        if match:
            plan.live_version, plan.live_evidence = match.group(1), "marker"
        elif plan.provider in BLIND and record.get("current"):
            plan.live_version, plan.live_evidence = record["current"], "record"
        elif live.marker:
            plan.live_evidence = "state"

    async def _differs(
        self,
        spec: TargetSpecModel,
        new: NewSecret,
        live: RemoteState,
        changes: Changes,
        record: Mapping[str, str],
    ) -> tuple[bool | None, str]:
        if new.status == "generated":
            return True, "a new value would be generated"
        if changes.differs is not None:
            return changes.differs, "the live state compared with the new value"
        if not new.fingerprint:
            return None, "no fingerprint key available (ROTATOR_AUDIT_KEY) to compare with"
        match = _MARKER.match(live.marker or "")
        if match:
            return new.fingerprint[:12] != match.group(2), "by the live marker's fingerprint"
        if spec.provider in BLIND:
            current = record.get("current")
            if not current or self.state.vault is None:
                return None, "the API hides credentials and rotator has no record of them"
            try:
                fields = await self.state.stored_fields(spec.secret, current)
            except (DecryptionError, MalformedJob):
                return None, f"rotator's record of {current} cannot be read"
            same = self.state.vault.fingerprint(fields) == new.fingerprint
            return not same, "by rotator's record of the current version (the API hides it)"
        return True, "the live value carries no rotator marker (set or changed outside rotator)"


__all__ = ["NewSecret", "Planner", "Problem", "TargetPlan"]
