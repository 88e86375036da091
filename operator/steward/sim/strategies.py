"""Where each policy puts a job's next attempt: the baselines, and Steward's own rule.

Steward's choice is :func:`steward.policy.training.next_capacity`, the function the operator's
TrainingJob controller calls, over a real :class:`TrainingJobSpec` built from the trace job
(:func:`job_spec`) with the governor's directive overlaid. As in the operator, a job without
checkpoints never goes to spot (the CRD refuses a spot TrainingJob without one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from steward.api.directive import GovernorDirective
from steward.api.v1alpha1.common import CapacityType
from steward.api.v1alpha1.trainingjob import TrainingJobSpec
from steward.policy.training import EndReason, capacity_move, next_capacity, overlay
from steward.sim.budgets import moment
from steward.sim.mapping import SimMapping
from steward.sim.model import SimJob


class Want(StrEnum):
    """What a policy asks for a job's next attempt."""

    ON_DEMAND = "on-demand"
    SPOT = "spot"  # spot, waiting for capacity if there is none
    SPOT_OR_ON_DEMAND = "spot-now-or-on-demand"  # spot if free right now, else on-demand


@dataclass
class History:
    """What happened to a job's earlier attempts (the decision code's input)."""

    ended: list[EndReason] = field(default_factory=list)


class Strategy:
    """A policy: its name, whether a preemption keeps checkpointed progress, whether Steward's
    governor runs (Budgets, CostPolicies), what to ask for given the job's directive, and how
    long to wait for spot before asking again (``None``: forever)."""

    name = "strategy"
    keeps_checkpoints = True
    governed = False

    def __init__(self, mapping: SimMapping) -> None:
        self.mapping = mapping

    def want(
        self, job: SimJob, history: History, now: float, directive: GovernorDirective | None = None
    ) -> Want:
        raise NotImplementedError

    def wait_limit(
        self, job: SimJob, now: float, directive: GovernorDirective | None = None
    ) -> float | None:
        return None

    def stop_for(
        self,
        job: SimJob,
        history: History,
        now: float,
        *,
        on_spot: bool,
        directive: GovernorDirective | None,
    ) -> EndReason | None:
        """Why a running job should stop at its next checkpoint for its directive (suspended,
        or moved to the other capacity), if it should; only governed policies have one."""
        return None


class OnDemandOnly(Strategy):
    """Every job on on-demand capacity."""

    name = "on-demand"

    def want(
        self, job: SimJob, history: History, now: float, directive: GovernorDirective | None = None
    ) -> Want:
        return Want.ON_DEMAND


class NaiveSpot(Strategy):
    """Spot whenever capacity is free at the moment, else on-demand; a preemption restarts the
    job from scratch (no checkpoints)."""

    name = "naive-spot"
    keeps_checkpoints = False

    def want(
        self, job: SimJob, history: History, now: float, directive: GovernorDirective | None = None
    ) -> Want:
        return Want.SPOT_OR_ON_DEMAND if job.spot_eligible else Want.ON_DEMAND


class CheckpointedSpot(Strategy):
    """Spot-eligible jobs only on spot, waiting as long as it takes; every spot job checkpoints
    at the mapping's interval and resumes from its last checkpoint; no fallback."""

    name = "spot-checkpoint"

    def want(
        self, job: SimJob, history: History, now: float, directive: GovernorDirective | None = None
    ) -> Want:
        return Want.SPOT if job.spot_eligible else Want.ON_DEMAND


class Steward(Strategy):
    """The operator's rule: ``next_capacity`` over the job's TrainingJob spec with the
    governor's directive overlaid (``overlay``), as the TrainingJob controller reads it."""

    name = "steward"
    governed = True

    def __init__(self, mapping: SimMapping) -> None:
        super().__init__(mapping)
        self._specs: dict[str, TrainingJobSpec] = {}

    def want(
        self, job: SimJob, history: History, now: float, directive: GovernorDirective | None = None
    ) -> Want:
        if not job.checkpointed:
            return Want.ON_DEMAND
        spec = overlay(self.spec(job), directive)
        capacity, _ = next_capacity(spec, history.ended, moment(now))
        return Want.SPOT if capacity == CapacityType.SPOT else Want.ON_DEMAND

    def wait_limit(
        self, job: SimJob, now: float, directive: GovernorDirective | None = None
    ) -> float | None:
        """The operator ends a spot attempt that waited ``fallbackAfter``, or sooner when the
        deadline comes within ``fallbackAfter``."""
        fallback = overlay(self.spec(job), directive).capacity.fallback_after.total_seconds()
        limit = now + fallback
        if job.deadline is not None:
            limit = min(limit, max(job.deadline - fallback, now))
        return limit

    def stop_for(
        self,
        job: SimJob,
        history: History,
        now: float,
        *,
        on_spot: bool,
        directive: GovernorDirective | None,
    ) -> EndReason | None:
        """As the TrainingJob controller: suspended by the directive, or ``capacity_move``
        over the overlaid spec."""
        if directive is not None and directive.suspend:
            return EndReason.SUSPENDED
        spec = overlay(self.spec(job), directive)
        if capacity_move(spec, on_spot=on_spot, history=history.ended, now=moment(now)):
            return EndReason.RESCHEDULED
        return None

    def spec(self, job: SimJob) -> TrainingJobSpec:
        """The TrainingJob spec the job runs under (see :func:`job_spec`)."""
        spec = self._specs.get(job.name)
        if spec is None:
            spec = self._specs[job.name] = job_spec(job, self.mapping)
        return spec


def job_spec(job: SimJob, mapping: SimMapping) -> TrainingJobSpec:
    """A trace job as a TrainingJob spec: SpotWithFallback (the mapping's ``fallbackAfter`` and
    ``maxPreemptions``) when spot-eligible and checkpointed, else OnDemand; a checkpoint every
    ``checkpoint_interval_seconds`` when it checkpoints; its priority and deadline. Its GPUs
    (rounded up, 1 to 16 on one worker) only feed the governor's savings estimate."""
    spot = job.spot_eligible and job.checkpointed
    interval = int(mapping.checkpoint_interval_seconds)
    return TrainingJobSpec.model_validate(
        {
            "template": {"spec": {"containers": [{"name": "trace", "image": "trace"}]}},
            "gpusPerWorker": min(max(math.ceil(job.gpus), 1), 16),
            "priority": job.priority,
            "checkpoint": {"path": "/checkpoints", "interval": f"{interval}s"}
            if job.checkpointed
            else None,
            "capacity": {
                "type": "SpotWithFallback" if spot else "OnDemand",
                "maxPreemptions": mapping.max_preemptions,
                "fallbackAfter": f"{int(mapping.fallback_after_seconds)}s",
            },
            "deadline": moment(job.deadline).isoformat() if job.deadline is not None else None,
        }
    )


STRATEGIES: Final = {s.name: s for s in (OnDemandOnly, NaiveSpot, CheckpointedSpot, Steward)}
