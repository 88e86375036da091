"""Where each policy puts a job's next attempt: the baselines, and Steward's own rule.

Steward's choice is :func:`steward.policy.training.next_capacity`, the function the operator's
TrainingJob controller calls, over a real :class:`TrainingJobSpec` built from the trace job
(SpotWithFallback with the mapping's ``fallbackAfter`` and ``maxPreemptions``, its deadline,
a checkpoint when the job checkpoints). As in the operator, a job without checkpoints never
goes to spot (the CRD refuses a spot TrainingJob without one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from steward.api.v1alpha1.common import CapacityType
from steward.api.v1alpha1.trainingjob import TrainingJobSpec
from steward.policy.training import EndReason, next_capacity
from steward.sim.mapping import SimMapping
from steward.sim.model import SimJob

#: Simulation time 0 as a moment, for the decision code's datetimes.
EPOCH: Final = datetime(2020, 1, 1, tzinfo=UTC)


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
    """A policy: its name, whether a preemption keeps checkpointed progress, what to ask for,
    and how long to wait for spot before asking again (``None``: forever)."""

    name = "strategy"
    keeps_checkpoints = True

    def __init__(self, mapping: SimMapping) -> None:
        self.mapping = mapping

    def want(self, job: SimJob, history: History, now: float) -> Want:
        raise NotImplementedError

    def wait_limit(self, job: SimJob, now: float) -> float | None:
        return None


class OnDemandOnly(Strategy):
    """Every job on on-demand capacity."""

    name = "on-demand"

    def want(self, job: SimJob, history: History, now: float) -> Want:
        return Want.ON_DEMAND


class NaiveSpot(Strategy):
    """Spot whenever capacity is free at the moment, else on-demand; a preemption restarts the
    job from scratch (no checkpoints)."""

    name = "naive-spot"
    keeps_checkpoints = False

    def want(self, job: SimJob, history: History, now: float) -> Want:
        return Want.SPOT_OR_ON_DEMAND if job.spot_eligible else Want.ON_DEMAND


class CheckpointedSpot(Strategy):
    """Spot-eligible jobs only on spot, waiting as long as it takes; every spot job checkpoints
    at the mapping's interval and resumes from its last checkpoint; no fallback."""

    name = "spot-checkpoint"

    def want(self, job: SimJob, history: History, now: float) -> Want:
        return Want.SPOT if job.spot_eligible else Want.ON_DEMAND


class Steward(Strategy):
    """The operator's rule: SpotWithFallback through ``next_capacity``."""

    name = "steward"

    def __init__(self, mapping: SimMapping) -> None:
        super().__init__(mapping)
        self._specs: dict[str, TrainingJobSpec] = {}

    def want(self, job: SimJob, history: History, now: float) -> Want:
        if not (job.spot_eligible and job.checkpointed):
            return Want.ON_DEMAND
        capacity, _ = next_capacity(self._spec(job), history.ended, EPOCH + timedelta(seconds=now))
        return Want.SPOT if capacity == CapacityType.SPOT else Want.ON_DEMAND

    def wait_limit(self, job: SimJob, now: float) -> float | None:
        """The operator ends a spot attempt that waited ``fallbackAfter``, or sooner when the
        deadline comes within ``fallbackAfter``."""
        limit = now + self.mapping.fallback_after_seconds
        if job.deadline is not None:
            limit = min(limit, max(job.deadline - self.mapping.fallback_after_seconds, now))
        return limit

    def _spec(self, job: SimJob) -> TrainingJobSpec:
        spec = self._specs.get(job.name)
        if spec is None:
            spec = TrainingJobSpec.model_validate(
                {
                    "template": {"spec": {"containers": [{"name": "trace", "image": "trace"}]}},
                    "checkpoint": {"path": "/checkpoints", "interval": "30m"},
                    "capacity": {
                        "type": "SpotWithFallback",
                        "maxPreemptions": self.mapping.max_preemptions,
                        "fallbackAfter": f"{int(self.mapping.fallback_after_seconds)}s",
                    },
                    "deadline": (
                        (EPOCH + timedelta(seconds=job.deadline)).isoformat()
                        if job.deadline is not None
                        else None
                    ),
                }
            )
            self._specs[job.name] = spec
        return spec


STRATEGIES: Final = {s.name: s for s in (OnDemandOnly, NaiveSpot, CheckpointedSpot, Steward)}
