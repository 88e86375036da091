"""CostPolicy: how the governor may act on the workloads a policy selects.

Policies are cluster-scoped. When several select the same workload, the one with the highest
``priority`` decides each area (spot, node pools, compression, budget actions) it sets; ties go to
the policy whose name sorts first. A policy in mode ``Off`` selects nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from steward.api.quantities import USD, Duration, Fraction, Percent, PositiveDuration
from steward.api.schema import Rule, StewardModel, UniqueList
from steward.api.v1alpha1.common import (
    Conditions,
    CustomResource,
    KindInfo,
    LabelSelector,
    PolicyMode,
    PrinterColumn,
    Priority,
    ScopeSelector,
)
from steward.api.v1alpha1.compressionjob import CompressionMethods, ObjectiveWeights


class TrainingSpotRule(StewardModel):
    """When checkpointed training moves to spot, and when it comes back."""

    enabled: bool = True
    priorities: Annotated[UniqueList[Priority], Field(max_length=4)] = Field(
        default_factory=lambda: [Priority.LOW, Priority.NORMAL],
        description="Priorities of the jobs that may be moved to spot.",
    )
    max_checkpoint_interval: PositiveDuration = Field(
        default=timedelta(hours=1),
        description="Jobs that checkpoint less often than this lose too much work; not moved.",
    )
    min_savings_percent: Percent = Field(
        default=10,
        description="Move only when spot, counting work lost to preemptions and checkpoint "
        "overhead, is expected to save at least this much.",
    )
    max_preemptions: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=3, description="Back to on-demand after this many preemptions."
    )
    fallback_after: PositiveDuration = Field(
        default=timedelta(minutes=15),
        description="Back to on-demand after waiting this long for spot capacity.",
    )
    deadline_margin: Duration = Field(
        default=timedelta(hours=1),
        description="Back to on-demand when the deadline is closer than the remaining run time "
        "plus this margin.",
    )


class InferenceSpotRule(StewardModel):
    """How much of a service's capacity above its on-demand base may run on spot."""

    enabled: bool = True
    max_spot_percent: Percent = 50


class SpotRules(StewardModel):
    training: TrainingSpotRule | None = None
    inference: InferenceSpotRule | None = None


class NodePoolRules(StewardModel):
    """Limits the governor applies on top of each GPUNodePool's own."""

    pool_selector: LabelSelector | None = Field(
        default=None, description="GPUNodePools (by their labels) the rules apply to; empty: all."
    )
    max_scale_up_step: Annotated[int, Field(ge=1, le=1000)] | None = None
    scale_down_idle_time: PositiveDuration | None = None
    spot_fallback_after: PositiveDuration = Field(
        default=timedelta(minutes=10),
        description="Spot-eligible pods wait this long for spot nodes before on-demand takes them.",
    )
    budget_cap: bool = Field(
        default=True,
        description="Never grow a pool past what the remaining budget pays for until period end.",
    )
    predictive: bool = Field(default=False, description="Pre-scale from the recent demand series.")


class BudgetStateTrigger(StrEnum):
    WARNING = "Warning"
    EXCEEDED = "Exceeded"


class CompressionTriggers(StewardModel):
    """When to compress a served model, and what the result must show to be promoted."""

    cost_per_1k_requests_above_usd: USD | None = None
    gpu_utilization_below_percent: Percent | None = None
    budget_state_at_least: BudgetStateTrigger | None = None
    methods: CompressionMethods
    max_accuracy_drop: Fraction = 0.01
    weights: ObjectiveWeights = Field(default_factory=ObjectiveWeights)
    auto_promote: bool = False
    cooldown: PositiveDuration = Field(
        default=timedelta(hours=24), description="Least time between two jobs for one service."
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.costPer1kRequestsAboveUSD) || has(self.gpuUtilizationBelowPercent) "
            "|| has(self.budgetStateAtLeast)",
            message="set at least one trigger: costPer1kRequestsAboveUSD, "
            "gpuUtilizationBelowPercent or budgetStateAtLeast",
            field="",
            holds=lambda t: any(
                v is not None
                for v in (
                    t.cost_per_1k_requests_above_usd,
                    t.gpu_utilization_below_percent,
                    t.budget_state_at_least,
                )
            ),
        ),
    )


class BudgetActionRules(StewardModel):
    """How the budget ladder's actions are carried out on the selected workloads."""

    suspend_priorities: Annotated[UniqueList[Priority], Field(max_length=4)] = Field(
        default_factory=lambda: [Priority.LOW],
        description="SuspendLowPriority suspends training of these priorities, at a checkpoint.",
    )
    block_priorities: Annotated[UniqueList[Priority], Field(max_length=4)] = Field(
        default_factory=lambda: [Priority.LOW, Priority.NORMAL, Priority.HIGH],
        description="BlockNewWork holds new training of these priorities until the budget allows.",
    )
    cooldown: Duration = Field(
        default=timedelta(minutes=5), description="Least time between two actions on a workload."
    )
    max_actions_per_cycle: Annotated[int, Field(ge=1, le=10000)] = 20


class CostPolicySpec(StewardModel):
    mode: PolicyMode = Field(
        default=PolicyMode.DRY_RUN,
        description="Enforce acts; DryRun decides and records Events and metrics only; Off idles.",
    )
    priority: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=0, description="Higher wins where policies overlap; ties go to the first name."
    )
    selector: ScopeSelector = Field(default_factory=ScopeSelector)
    spot: SpotRules | None = None
    node_pools: NodePoolRules | None = None
    compression: CompressionTriggers | None = None
    budget_actions: BudgetActionRules = Field(default_factory=BudgetActionRules)


class CostPolicyStatus(StewardModel):
    matched_workloads: Annotated[int, Field(ge=0)] = 0
    last_cycle_time: datetime | None = None
    actions_last_cycle: Annotated[int, Field(ge=0)] = 0
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    conditions: Conditions = Field(default_factory=list)


class CostPolicy(CustomResource):
    """Rules for the governor: spot placement, node-pool limits, compression triggers and how the
    budget ladder's actions apply, for the workloads it selects."""

    kind: Literal["CostPolicy"] = "CostPolicy"
    spec: CostPolicySpec
    status: CostPolicyStatus | None = None

    crd: ClassVar[KindInfo] = KindInfo(
        plural="costpolicies",
        short_names=("cpol",),
        scope="Cluster",
        printer_columns=(
            PrinterColumn("Mode", "string", ".spec.mode"),
            PrinterColumn("Priority", "integer", ".spec.priority"),
            PrinterColumn("Matched", "integer", ".status.matchedWorkloads"),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
        ),
    )
