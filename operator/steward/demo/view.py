"""What the demo shows: one read of the cluster (workloads, nodes, the Budget, Steward's
Events), taken by the display every second. Reads only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from steward.act.kube import (
    BUDGETS,
    COMPRESSION_JOBS,
    EVENTS,
    INFERENCE_SERVICES,
    NODES,
    PODS,
    REPORTING_CONTROLLER,
    TRAINING_JOBS,
    Kube,
    Resource,
)
from steward.act.kwoknodes import LABEL_KARPENTER_CAPACITY
from steward.api.constants import GPU_RESOURCE, LABEL_NODE_POOL
from steward.demo.scenario import BUDGET, TEAM

Raw = dict[str, Any]


@dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    phase: str
    capacity: str
    detail: str
    usd: float


@dataclass(frozen=True)
class Node:
    name: str
    pool: str
    capacity: str
    gpus_used: int
    gpus: int


@dataclass(frozen=True)
class Event:
    """One Event Steward recorded (``series`` counts repeats, shown once)."""

    key: str
    time: str
    kind: str
    name: str
    reason: str
    note: str
    warning: bool


@dataclass(frozen=True)
class BudgetView:
    limit_usd: float
    spent_usd: float
    percent: float
    state: str
    actions: tuple[str, ...]
    kwh: float


@dataclass(frozen=True)
class View:
    workloads: list[Workload] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    budget: BudgetView | None = None
    events: list[Event] = field(default_factory=list)


class Reader:
    """Reads the demo's objects (and a :class:`View` of them) through one :class:`Kube`."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def team(self, resource: Resource) -> list[Raw]:
        """The team's objects of ``resource``."""
        return [o for o in self.kube.list(resource) if o["metadata"].get("namespace") == TEAM]

    def budget(self) -> Raw:
        return self.kube.request("GET", BUDGETS.path(None, BUDGET))

    def pods(self) -> list[Raw]:
        return self.team(PODS)

    def read(self) -> View:
        return View(
            workloads=self._workloads(),
            nodes=_nodes(self.kube.list(NODES), self.pods()),
            budget=_budget(self.budget()),
            events=self.steward_events(),
        )

    def steward_events(self) -> list[Event]:
        """Every Event Steward recorded, oldest first."""
        mine = [
            e
            for e in self.kube.list(EVENTS)
            if e.get("reportingController") == REPORTING_CONTROLLER
        ]
        return sorted((_event(e) for e in mine), key=lambda e: e.time)

    def _workloads(self) -> list[Workload]:
        rows = [_training(o) for o in self.team(TRAINING_JOBS)]
        rows += [_service(o) for o in self.team(INFERENCE_SERVICES)]
        rows += [_compression(o) for o in self.team(COMPRESSION_JOBS)]
        return rows


def _training(obj: Raw) -> Workload:
    status = obj.get("status") or {}
    detail = f"attempt {status.get('attempt', 0)}, {status.get('preemptions', 0)} preempted"
    return Workload(
        "TrainingJob",
        obj["metadata"]["name"],
        status.get("phase", "Pending"),
        status.get("capacityType") or "-",
        detail,
        float((status.get("cost") or {}).get("totalUSD", 0)),
    )


def _service(obj: Raw) -> Workload:
    status = obj.get("status") or {}
    active = (status.get("activeModel") or {}).get("variant", "original")
    detail = f"model {active}, GPUs {status.get('gpuUtilizationPercent', '-')}% busy"
    return Workload(
        "InferenceService",
        obj["metadata"]["name"],
        status.get("phase", "Pending"),
        f"{status.get('replicas', 0)} replica(s)",
        detail,
        float((status.get("cost") or {}).get("totalUSD", 0)),
    )


def _compression(obj: Raw) -> Workload:
    status = obj.get("status") or {}
    chosen = status.get("chosenVariant") or "-"
    detail = f"chosen {chosen}, promoted {bool(status.get('promoted'))}"
    return Workload(
        "CompressionJob", obj["metadata"]["name"], status.get("phase", "Pending"), "-", detail, 0.0
    )


def _nodes(nodes: list[Raw], pods: list[Raw]) -> list[Node]:
    used: dict[str, int] = {}
    for pod in pods:
        if (pod.get("status") or {}).get("phase") not in ("Running", "Pending"):
            continue
        node = pod["spec"].get("nodeName")
        for container in pod["spec"]["containers"]:
            gpus = ((container.get("resources") or {}).get("limits") or {}).get(GPU_RESOURCE)
            if node and gpus:
                used[node] = used.get(node, 0) + int(gpus)
    rows = []
    for node in nodes:
        labels = node["metadata"].get("labels") or {}
        name = node["metadata"]["name"]
        gpus = int(node.get("status", {}).get("capacity", {}).get(GPU_RESOURCE, 0))
        rows.append(
            Node(
                name,
                labels.get(LABEL_NODE_POOL, "-"),
                labels.get(LABEL_KARPENTER_CAPACITY, "-"),
                used.get(name, 0),
                gpus,
            )
        )
    return rows


def _budget(obj: Raw) -> BudgetView:
    spec, status = obj["spec"], obj.get("status") or {}
    limit = float(spec["limits"]["usd"])
    spent = float((status.get("spent") or {}).get("usd") or 0)
    return BudgetView(
        limit_usd=limit,
        spent_usd=spent,
        percent=100 * spent / limit if limit else 0.0,
        state=str(status.get("state", "-")),
        actions=tuple(status.get("activeActions") or ()),
        kwh=float((status.get("spent") or {}).get("kwh") or 0),
    )


def _event(raw: Raw) -> Event:
    regarding = raw.get("regarding") or {}
    return Event(
        key=raw["metadata"]["uid"],
        time=raw.get("eventTime") or raw["metadata"].get("creationTimestamp", ""),
        kind=regarding.get("kind", ""),
        name=regarding.get("name", ""),
        reason=raw.get("reason", ""),
        note=raw.get("note", ""),
        warning=raw.get("type") == "Warning",
    )
