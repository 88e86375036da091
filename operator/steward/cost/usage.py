"""What was used in one accounting window, sample by sample: the input of the accounting.

The observe layer fills these from Prometheus; the accounting and the simulator read them.
Samples sit on a grid: the window ``(start, start + steps * step]`` is evaluated at
``t_i = start + i * step`` for ``i`` in ``1..steps``, and the sample at ``t_i`` stands for the
interval ``(t_i - step, t_i]``. Index 0 (``t_0 = start``) is read too, so counters have a value
to take the first difference from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from steward.cost.catalog import NodeIdentity

#: Step index -> value. Missing indices are steps with no sample.
Series = Mapping[int, float]
#: (namespace, pod)
PodKey = tuple[str, str]


@dataclass(frozen=True)
class Grid:
    """The evaluation times of one window."""

    start: datetime
    step_seconds: int
    steps: int

    def time(self, index: int) -> datetime:
        return self.start + timedelta(seconds=index * self.step_seconds)

    @property
    def end(self) -> datetime:
        return self.time(self.steps)

    def first_step_after(self, moment: datetime) -> int:
        """The first step index whose interval starts at or after ``moment`` (at least 1)."""
        elapsed = (moment - self.start).total_seconds()
        whole = int(-(-elapsed // self.step_seconds))  # ceiling
        return max(whole, 0) + 1


@dataclass(frozen=True)
class WorkloadRef:
    """The Steward workload a pod belongs to; ``kind`` is empty for pods of no workload."""

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class PodOwner:
    """What a pod of a Steward workload belongs to (read from its labels, GPUs or not)."""

    workload: WorkloadRef
    #: The model variant a serving pod serves (its ``steward.ai/variant`` label), "" if none.
    variant: str = ""


@dataclass(frozen=True)
class NodeUsage:
    """A GPU node: what prices it, and its GPU capacity at every step it existed."""

    name: str
    identity: NodeIdentity
    gpus: Series


@dataclass(frozen=True)
class PodUsage:
    """A running pod holding GPUs on ``node``: GPUs held at every step it ran."""

    namespace: str
    pod: str
    node: str
    workload: WorkloadRef
    gpus: Series

    @property
    def key(self) -> PodKey:
        return (self.namespace, self.pod)


@dataclass(frozen=True)
class GPUSamples:
    """One physical GPU: who held it, and its energy counter, power and utilisation per step."""

    uuid: str
    node: str
    holders: Mapping[int, PodKey] = field(default_factory=dict)
    energy_millijoules: Series = field(default_factory=dict)
    power_watts: Series = field(default_factory=dict)
    utilization_percent: Series = field(default_factory=dict)


@dataclass(frozen=True)
class Usage:
    """Everything one window observed. ``covered`` holds the steps whose data is complete and
    fresh; only those are accounted (see the accounting module)."""

    grid: Grid
    nodes: tuple[NodeUsage, ...]
    pods: tuple[PodUsage, ...]
    gpus: tuple[GPUSamples, ...]
    requests: Mapping[PodKey, Series]
    covered: frozenset[int]
    #: Per pod: request latency histogram buckets, bound (seconds) -> cumulative counter.
    latency: Mapping[PodKey, Mapping[float, Series]] = field(default_factory=dict)
    #: Every pod of a Steward workload seen in the window, with or without GPUs (a serving
    #: pod on CPUs still counts requests and latency for its service).
    owners: Mapping[PodKey, PodOwner] = field(default_factory=dict)

    def workloads_of_pods(self) -> dict[PodKey, WorkloadRef]:
        """Each known pod's workload: from :attr:`owners`, else from its GPU usage."""
        found = {pod.key: pod.workload for pod in self.pods}
        found.update((key, owner.workload) for key, owner in self.owners.items())
        return found
