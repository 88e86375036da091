"""GPUNodePool: a set of identical GPU nodes that Steward sizes to demand and budget."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from steward.api.quantities import USD, Duration, Percent, PositiveDuration
from steward.api.schema import Rule, StewardModel
from steward.api.v1alpha1.common import (
    CapacityType,
    Conditions,
    CustomResource,
    KindInfo,
    ObjectReference,
    PrinterColumn,
    ShortName,
)


class ProviderType(StrEnum):
    #: kwok-simulated nodes on the local cluster: the reference provider and the demo's.
    KWOK = "Kwok"
    #: Cluster API: scales a MachineDeployment or MachinePool through its scale subresource.
    CLUSTER_API = "ClusterAPI"
    #: Karpenter: adjusts a NodePool's limits and capacity-type requirement.
    KARPENTER = "Karpenter"
    #: Reports only; Steward never changes the pool's size.
    STATIC = "Static"


class Provider(StewardModel):
    """Who creates and removes the pool's nodes."""

    type: ProviderType
    ref: ObjectReference | None = Field(
        default=None, description="The provider's object: a MachineDeployment, a NodePool..."
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!(self.type in ['ClusterAPI', 'Karpenter']) || has(self.ref)",
            message="ref is required for the ClusterAPI and Karpenter providers",
            field="ref",
            holds=lambda p: (
                p.type not in (ProviderType.CLUSTER_API, ProviderType.KARPENTER)
                or p.ref is not None
            ),
        ),
    )


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Taint(StewardModel):
    key: Annotated[str, Field(min_length=1, max_length=317)]
    value: Annotated[str, Field(max_length=63)] = ""
    effect: TaintEffect


class ScaleUp(StewardModel):
    max_step: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=10, description="Most nodes added in one decision."
    )
    cooldown: Duration = Field(
        default=timedelta(minutes=1), description="Least time between two scale-ups."
    )


class ScaleDown(StewardModel):
    idle_time: PositiveDuration = Field(
        default=timedelta(minutes=10),
        description="A node must have had no GPU pods this long before it is removed.",
    )
    max_step: Annotated[int, Field(ge=1, le=1000)] = 1
    cooldown: Duration = Field(default=timedelta(minutes=5))


class GPUNodePoolSpec(StewardModel):
    """What the pool's nodes are, what they cost, and how far it may scale."""

    provider: Provider
    instance_type: ShortName = Field(
        description="Cloud instance type (p4d.24xlarge...); the pricing catalog's key."
    )
    gpu_model: ShortName = Field(description="GPU model of every node, as DCGM reports it.")
    gpus_per_node: Annotated[int, Field(ge=1, le=16)]
    capacity_type: CapacityType = Field(description="Whether the pool's nodes are spot or not.")
    region: ShortName | None = Field(
        default=None, description="Cloud region; selects the grid carbon intensity."
    )
    zone: ShortName | None = None
    price_per_node_hour_usd: USD | None = Field(
        default=None, description="Overrides the pricing catalog's price for instanceType."
    )
    min_nodes: Annotated[int, Field(ge=0, le=10000)] = Field(
        default=0, description="Steward never scales below this."
    )
    max_nodes: Annotated[int, Field(ge=0, le=10000)] = Field(
        description="Steward never scales above this (nor past what the budget can pay)."
    )
    scale_up: ScaleUp = Field(default_factory=ScaleUp)
    scale_down: ScaleDown = Field(default_factory=ScaleDown)
    labels: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict, description="Labels on every node of the pool."
    )
    taints: Annotated[list[Taint], Field(max_length=16)] = Field(default_factory=list)

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.minNodes <= self.maxNodes",
            message="maxNodes must be at least minNodes",
            field="maxNodes",
            holds=lambda s: s.min_nodes <= s.max_nodes,
        ),
    )


class ScaleDecision(StewardModel):
    """The pool's last sizing decision and why it was taken."""

    time: datetime
    from_nodes: Annotated[int, Field(ge=0)]
    to_nodes: Annotated[int, Field(ge=0)]
    reason: Annotated[str, Field(max_length=1024)]


class GPUNodePoolStatus(StewardModel):
    nodes: Annotated[int, Field(ge=0)] = 0
    ready_nodes: Annotated[int, Field(ge=0)] = 0
    desired_nodes: Annotated[int, Field(ge=0)] = 0
    allocated_gpus: Annotated[int, Field(ge=0)] = 0
    total_gpus: Annotated[int, Field(ge=0)] = 0
    utilization_percent: Percent | None = Field(
        default=None, description="Mean DCGM GPU utilisation over the pool's GPUs."
    )
    hourly_cost_usd: USD | None = None
    last_scale_time: datetime | None = None
    last_decision: ScaleDecision | None = None
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    conditions: Conditions = Field(default_factory=list)


class GPUNodePool(CustomResource):
    """A pool of identical GPU nodes. Steward grows it for pending GPU pods it can host, shrinks it
    when nodes idle, and never past what the budget can pay for."""

    kind: Literal["GPUNodePool"] = "GPUNodePool"
    spec: GPUNodePoolSpec
    status: GPUNodePoolStatus | None = None

    crd: ClassVar[KindInfo] = KindInfo(
        plural="gpunodepools",
        short_names=("gnp",),
        scope="Cluster",
        max_name_length=48,
        printer_columns=(
            PrinterColumn("Provider", "string", ".spec.provider.type"),
            PrinterColumn("Capacity", "string", ".spec.capacityType"),
            PrinterColumn("GPU", "string", ".spec.gpuModel"),
            PrinterColumn("Nodes", "integer", ".status.nodes"),
            PrinterColumn("Ready", "integer", ".status.readyNodes"),
            PrinterColumn("Desired", "integer", ".status.desiredNodes"),
            PrinterColumn("GPUs Alloc", "integer", ".status.allocatedGPUs"),
            PrinterColumn("Util %", "number", ".status.utilizationPercent"),
            PrinterColumn("USD/h", "number", ".status.hourlyCostUSD"),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
        ),
    )
