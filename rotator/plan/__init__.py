"""``rotator plan``: a preflight and dry run that never writes (see ``planner``).

``planner``   the per-target steps and the plan they produce
``changes``   which fields an update would change, per provider (names only)
``budget``    rotations due within the horizon versus the providers' documented rate limits
``readonly``  the read-only provider context, journal, state reader and secret versions
"""

from __future__ import annotations

from rotator.plan.planner import NewSecret, Planner, Problem, TargetPlan
from rotator.plan.readonly import (
    NoPlanState,
    PlanState,
    PlanWriteRefused,
    ReadOnlyContext,
    RedisPlanState,
)

__all__ = [
    "NewSecret",
    "NoPlanState",
    "PlanState",
    "PlanWriteRefused",
    "Planner",
    "Problem",
    "ReadOnlyContext",
    "RedisPlanState",
    "TargetPlan",
]
