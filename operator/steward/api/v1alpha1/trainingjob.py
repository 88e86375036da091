"""TrainingJob: a (possibly multi-worker) GPU training run that Steward places and keeps alive."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from steward.api.quantities import ZERO, KgCO2e, KWh, NonNegativeDecimal, PositiveDuration
from steward.api.schema import Rule, StewardModel
from steward.api.v1alpha1.common import (
    CapacityType,
    Conditions,
    CostBreakdown,
    CustomResource,
    DNSSubdomain,
    KindInfo,
    PrinterColumn,
    Priority,
    ShortName,
)


class PodTemplate(StewardModel):
    """A pod template (``core/v1 PodTemplateSpec``) with at least one container.

    Steward adds GPU requests, placement and checkpoint wiring; everything else is passed through
    to the pods as written.
    """

    metadata: dict[str, Any] = Field(default_factory=dict, description="Labels and annotations.")
    spec: PodSpec


class PodSpec(StewardModel):
    """A ``core/v1 PodSpec``; only ``containers`` is checked here, the apiserver checks the rest."""

    model_config = ConfigDict(extra="allow")

    containers: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=16)]


class ResumeStrategy(StrEnum):
    """How a restarted worker learns that it should resume."""

    ENV = "Env"
    ARGUMENT = "Argument"


class Resume(StewardModel):
    """How the workload is told to resume from its last checkpoint.

    ``Env`` sets ``STEWARD_CHECKPOINT_DIR`` and ``STEWARD_RESUME=1`` on every container.
    ``Argument`` also appends ``argument`` (with ``{path}`` replaced by the checkpoint path) to
    the first container's args when the job restarts.
    """

    strategy: ResumeStrategy = ResumeStrategy.ENV
    argument: Annotated[str, Field(max_length=256)] | None = None

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.strategy != 'Argument' || has(self.argument)",
            message="argument is required when strategy is Argument",
            field="argument",
            holds=lambda r: r.strategy != ResumeStrategy.ARGUMENT or r.argument is not None,
        ),
    )


class Checkpoint(StewardModel):
    """Where and how often the workload checkpoints; what makes it safe to interrupt."""

    path: Annotated[str, Field(pattern=r"^/", max_length=1024)] = Field(
        description="Absolute path of the checkpoint directory inside the containers."
    )
    interval: PositiveDuration = Field(description="How often the workload writes a checkpoint.")
    claim_name: DNSSubdomain | None = Field(
        default=None,
        description="PersistentVolumeClaim mounted at path, so checkpoints outlive nodes.",
    )
    write_duration: PositiveDuration | None = Field(
        default=None,
        description="How long one checkpoint takes to write; the cost model counts it as overhead.",
    )
    resume: Resume = Field(default_factory=Resume)


class CapacityStrategy(StrEnum):
    ON_DEMAND = "OnDemand"
    SPOT = "Spot"
    SPOT_WITH_FALLBACK = "SpotWithFallback"


class CapacityPreference(StewardModel):
    """Which capacity the job may run on, and when it gives up on spot."""

    type: CapacityStrategy = CapacityStrategy.ON_DEMAND
    max_preemptions: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=3, description="SpotWithFallback: preemptions tolerated before moving to on-demand."
    )
    fallback_after: PositiveDuration = Field(
        default=timedelta(minutes=15),
        description="SpotWithFallback: longest wait for spot capacity before moving to on-demand.",
    )


class TrainingJobSpec(StewardModel):
    """What to run, on how many GPUs, and how it may be placed and interrupted."""

    template: PodTemplate
    workers: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=1, description="Number of workers (pods); more than one runs an Indexed Job."
    )
    gpus_per_worker: Annotated[int, Field(ge=1, le=16)] = 1
    gpu_model: ShortName | None = Field(
        default=None, description="GPU model the job needs, e.g. NVIDIA-H100-80GB-HBM3."
    )
    checkpoint: Checkpoint | None = None
    capacity: CapacityPreference = Field(default_factory=CapacityPreference)
    deadline: datetime | None = Field(
        default=None, description="When the job must be done; a deadline at risk forces on-demand."
    )
    priority: Priority = Priority.NORMAL
    cost_center: ShortName | None = Field(
        default=None, description="Who pays; budgets can select by it."
    )
    suspend: bool = Field(default=False, description="Stop the workers (at a checkpoint).")

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.capacity.type == 'OnDemand' || has(self.checkpoint)",
            message="spot capacity needs a checkpoint, so that a preempted job can resume",
            field="checkpoint",
            holds=lambda s: (
                s.capacity.type == CapacityStrategy.ON_DEMAND or s.checkpoint is not None
            ),
        ),
    )


class TrainingJobPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUSPENDED = "Suspended"
    BLOCKED = "Blocked"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class TrainingJobStatus(StewardModel):
    """What happened to the job, and what it cost."""

    phase: TrainingJobPhase = TrainingJobPhase.PENDING
    capacity_type: CapacityType | None = Field(
        default=None, description="Capacity the current workers run on."
    )
    attempt: Annotated[int, Field(ge=0)] = Field(
        default=0, description="Current attempt; each runs as one Job named <name>-<attempt>."
    )
    job_name: str | None = Field(default=None, description="Name of the current batch/v1 Job.")
    preemptions: Annotated[int, Field(ge=0)] = 0
    interruptions: Annotated[int, Field(ge=0)] = Field(
        default=0, description="On-demand attempts ended by node disruption (not preemptions)."
    )
    restarts: Annotated[int, Field(ge=0)] = Field(
        default=0, description="Attempts after the first; each resumes from the last checkpoint."
    )
    gpu_hours: NonNegativeDecimal = ZERO
    lost_gpu_hours: NonNegativeDecimal = Field(
        default=ZERO,
        description="GPU-hours of work redone after preemptions (since last checkpoint).",
    )
    cost: CostBreakdown = Field(default_factory=CostBreakdown)
    energy_kwh: KWh = ZERO
    carbon_kg_co2e: KgCO2e = ZERO
    accounted_until: datetime | None = Field(
        default=None, description="End of the newest window counted into cost and energy."
    )
    start_time: datetime | None = None
    completion_time: datetime | None = None
    last_decision: str | None = Field(default=None, description="Why Steward last acted on it.")
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    conditions: Conditions = Field(default_factory=list)


class TrainingJob(CustomResource):
    """A GPU training run. Steward runs it as a batch/v1 Job and moves it between spot and
    on-demand capacity, resuming from checkpoints after preemptions."""

    kind: Literal["TrainingJob"] = "TrainingJob"
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None

    crd: ClassVar[KindInfo] = KindInfo(
        plural="trainingjobs",
        short_names=("tj",),
        scope="Namespaced",
        # Child Jobs are named "<name>-<attempt>" and Job names become label values (<= 63).
        max_name_length=52,
        printer_columns=(
            PrinterColumn("Phase", "string", ".status.phase"),
            PrinterColumn("Capacity", "string", ".status.capacityType"),
            PrinterColumn("GPUs", "integer", ".spec.gpusPerWorker", "GPUs per worker"),
            PrinterColumn("Workers", "integer", ".spec.workers"),
            PrinterColumn("Preemptions", "integer", ".status.preemptions"),
            PrinterColumn("Restarts", "integer", ".status.restarts"),
            PrinterColumn("Cost USD", "number", ".status.cost.totalUSD"),
            PrinterColumn("Priority", "string", ".spec.priority", priority=1),
            PrinterColumn("Cost Center", "string", ".spec.costCenter", priority=1),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
        ),
    )


PodTemplate.model_rebuild()
