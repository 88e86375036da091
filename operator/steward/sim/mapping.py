"""How trace fields become Steward's objects: explicit, documented configuration.

Every default here is stated in docs/simulator.md; ``steward simulate --mapping FILE`` overrides
any of them from YAML.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field

from steward.api.v1alpha1.common import Priority


class Checkpointing(StrEnum):
    """Which jobs save checkpoints."""

    ALL = "all"
    SPOT_ELIGIBLE = "spot-eligible"
    NONE = "none"


class TickCounts(StrEnum):
    """What a JSON tick trace's numbers count."""

    #: Instances unavailable (preempted) out of the trace's largest count: SkyPilot's own
    #: simulator reads a 1-node trace's 1 as "preempted" (``spot_available = not trace[tick]``).
    UNAVAILABLE = "unavailable"
    AVAILABLE = "available"


class SimMapping(BaseModel):
    """Trace fields to simulated jobs, capacity, prices and energy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spot_qos: tuple[str, ...] = Field(
        default=("BE",),
        description="openb QoS classes that tolerate interruption (best-effort -> spot-eligible).",
    )
    spot_job_types: tuple[str, ...] = Field(
        default=("Spot",), description="Alibaba spot-trace job types that are spot-eligible."
    )
    priorities: dict[str, Priority] = Field(
        default={
            "BE": Priority.LOW, "Burstable": Priority.NORMAL, "LS": Priority.HIGH,
            "Guaranteed": Priority.HIGH, "Spot": Priority.LOW, "HP": Priority.HIGH,
        },
        description="openb QoS class or Alibaba job type -> TrainingJob priority (else Normal).",
    )  # fmt: skip
    namespace_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels of every job's namespace (the namespace is the job's group).",
    )
    governor_interval_seconds: Annotated[float, Field(gt=0)] = Field(
        default=900.0,
        description="Steward: how often budgets are accounted and the governor decides.",
    )
    checkpointing: Checkpointing = Checkpointing.SPOT_ELIGIBLE
    checkpoint_interval_seconds: Annotated[float, Field(gt=0)] = 1800.0
    checkpoint_overhead_seconds: Annotated[float, Field(ge=0)] = 60.0
    restart_latency_seconds: Annotated[float, Field(ge=0)] = 300.0
    deadline_slack: Annotated[float, Field(ge=1)] | None = Field(
        default=3.0, description="Deadline = arrival + slack x work; null: no deadlines."
    )
    min_work_seconds: Annotated[float, Field(ge=0)] = Field(
        default=60.0, description="Shorter jobs are left out (pods that never really ran)."
    )
    tick_counts: TickCounts = Field(
        default=TickCounts.UNAVAILABLE,
        description="JSON tick traces (SkyPilot, SpotHedge): what each number counts.",
    )
    gpus_per_trace_unit: Annotated[float, Field(gt=0)] = Field(
        default=8.0, description="GPUs of one instance counted by the spot trace."
    )
    capacity_scale: Annotated[float, Field(gt=0)] = Field(
        default=1.0, description="Multiplies the spot trace's counts (a cluster larger than it)."
    )
    gpu_model: str = Field(default="NVIDIA-H100-80GB-HBM3", description="Power curve to use.")
    utilization_percent: Annotated[float, Field(ge=0, le=100)] = 85.0
    pue: Annotated[float, Field(ge=1)] = 1.2
    grams_co2e_per_kwh: Annotated[float, Field(ge=0)] = 400.0
    fallback_after_seconds: Annotated[float, Field(ge=0)] = Field(
        default=900.0,
        description="Steward's spec.capacity.fallbackAfter given to every spot-eligible job.",
    )
    max_preemptions: Annotated[int, Field(ge=0)] = Field(
        default=5, description="Steward's spec.capacity.maxPreemptions."
    )

    def priority_of(self, kind: str) -> Priority:
        """The priority of a job of QoS class or job type ``kind``."""
        return self.priorities.get(kind, Priority.NORMAL)


def load_mapping(path: Path | None) -> SimMapping:
    """The mapping in ``path`` (YAML), or the defaults."""
    if path is None:
        return SimMapping()
    return SimMapping.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
