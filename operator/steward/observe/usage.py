"""Query results -> the typed :class:`~steward.cost.usage.Usage` of one window. Pure."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Final

from steward.api.constants import CAPACITY_LABEL_SPOT, LABEL_CAPACITY_TYPE
from steward.api.v1alpha1.common import CapacityType
from steward.cost.catalog import NodeIdentity
from steward.cost.usage import (
    GPUSamples,
    Grid,
    NodeUsage,
    PodKey,
    PodOwner,
    PodUsage,
    Usage,
    WorkloadRef,
)
from steward.observe.prometheus import Labels, Results, Series
from steward.policy.placement import GPU_PRODUCT_LABEL, CapacityLabels

INSTANCE_TYPE_LABEL: Final = "node.kubernetes.io/instance-type"
REGION_LABEL: Final = "topology.kubernetes.io/region"
TRAINING: Final = "TrainingJob"
SERVING: Final = "InferenceService"


def metric_label(key: str) -> str:
    """A Kubernetes label key as kube-state-metrics names it (``label_node_kubernetes_io_...``)."""
    return "label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def build_usage(
    results: Results,
    grid: Grid,
    *,
    capacity_labels: CapacityLabels,
    required_jobs: Sequence[str],
    max_sample_age_seconds: float,
) -> Usage:
    """Assemble the window: nodes with their identity, pods with their workload, GPUs with
    holders and energy, request counters, and which steps every required source covered."""
    owners = _owners(results)
    return Usage(
        grid=grid,
        nodes=_nodes(results, capacity_labels),
        pods=_pods(results, owners),
        gpus=_gpus(results),
        requests={_pod_key(s.labels): s.values for s in results.get("pod_requests", [])},
        covered=_covered(
            results.get("scrape_age", []), grid, required_jobs, max_sample_age_seconds
        ),
        latency=_latency(results.get("pod_latency", [])),
        owners=owners,
    )


def _latency(series: list[Series]) -> dict[PodKey, dict[float, dict[int, float]]]:
    """Per pod, per bucket bound (``+Inf`` as infinity): the bucket's counter samples."""
    buckets: dict[PodKey, dict[float, dict[int, float]]] = defaultdict(dict)
    for one in series:
        key = _pod_key(one.labels)
        try:
            bound = float(one.labels.get("le", ""))
        except ValueError:
            continue  # not a histogram bucket
        if key[1]:
            buckets[key][bound] = dict(one.values)
    return dict(buckets)


def _nodes(results: Results, capacity_labels: CapacityLabels) -> tuple[NodeUsage, ...]:
    labels: dict[str, Labels] = {}
    newest: dict[str, int] = {}
    for series in results.get("node_labels", []):
        name, last = series.labels.get("node", ""), max(series.values, default=-1)
        # The newest label set wins: a node relabelled in the window is priced as it is now.
        if name and last >= newest.get(name, -1):
            labels[name], newest[name] = series.labels, last
    nodes = []
    for series in results.get("node_gpus", []):
        name = series.labels.get("node", "")
        if not name:
            continue
        own = labels.get(name, {})
        gpus = max(series.values.values(), default=0.0)
        identity = NodeIdentity(
            instance_type=own.get(metric_label(INSTANCE_TYPE_LABEL), ""),
            region=own.get(metric_label(REGION_LABEL), ""),
            capacity=_capacity(own, capacity_labels),
            gpu_model=own.get(metric_label(GPU_PRODUCT_LABEL), ""),
            gpus=gpus,
        )
        nodes.append(NodeUsage(name, identity, series.values))
    return tuple(sorted(nodes, key=lambda n: n.name))


def _capacity(labels: Labels, capacity_labels: CapacityLabels) -> CapacityType:
    """Spot if the platform's capacity label, or Steward's own, says so."""
    platform = labels.get(metric_label(capacity_labels.key))
    own = labels.get(metric_label(LABEL_CAPACITY_TYPE))
    if platform == capacity_labels.spot or own == CAPACITY_LABEL_SPOT:
        return CapacityType.SPOT
    return CapacityType.ON_DEMAND


def _owners(results: Results) -> dict[PodKey, PodOwner]:
    """Every pod labelled as a Steward workload's: a TrainingJob's attempt or a service's share
    (with the model variant it serves, where its pods say)."""
    owners: dict[PodKey, PodOwner] = {}
    for series in results.get("pod_workloads", []):
        key, labels = _pod_key(series.labels), series.labels
        name = labels.get("label_steward_ai_workload", "")
        if labels.get("label_steward_ai_attempt"):
            owners[key] = PodOwner(WorkloadRef(TRAINING, key[0], name))
        elif labels.get("label_steward_ai_share"):
            variant = labels.get("label_steward_ai_variant", "")
            owners[key] = PodOwner(WorkloadRef(SERVING, key[0], name), variant)
    return owners


def _pods(results: Results, owners: dict[PodKey, PodOwner]) -> tuple[PodUsage, ...]:
    pods = []
    for series in results.get("pod_gpus", []):
        key = _pod_key(series.labels)
        node = series.labels.get("node", "")
        if not node or not key[1]:
            continue
        owner = owners.get(key)
        workload = owner.workload if owner else WorkloadRef("", key[0], key[1])
        pods.append(PodUsage(key[0], key[1], node, workload, series.values))
    return tuple(sorted(pods, key=lambda p: p.key))


def _gpus(results: Results) -> tuple[GPUSamples, ...]:
    node_of: dict[str, str] = {}
    holders: dict[str, dict[int, PodKey]] = defaultdict(dict)
    merged: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for name in ("gpu_energy", "gpu_power", "gpu_utilization"):
        for series in results.get(name, []):
            uuid = series.labels.get("UUID", "")
            if not uuid:
                continue
            node_of.setdefault(uuid, series.labels.get("node", ""))
            key = _pod_key(series.labels)
            target = merged[uuid][name]
            for index, value in series.values.items():
                # One GPU shows as one series per holder; the counter is the GPU's own.
                target[index] = max(value, target.get(index, value))
                if key[1]:
                    holders[uuid][index] = key
    return tuple(
        GPUSamples(
            uuid=uuid,
            node=node_of[uuid],
            holders=holders.get(uuid, {}),
            energy_millijoules=merged[uuid].get("gpu_energy", {}),
            power_watts=merged[uuid].get("gpu_power", {}),
            utilization_percent=merged[uuid].get("gpu_utilization", {}),
        )
        for uuid in sorted(merged)
    )


def _covered(
    ages: list[Series], grid: Grid, required_jobs: Sequence[str], max_age: float
) -> frozenset[int]:
    """Steps at which every required job had a successful scrape at most ``max_age`` old."""
    by_job = {series.labels.get("job", ""): series.values for series in ages}
    steps = range(grid.steps + 1)
    return frozenset(
        i
        for i in steps
        if all(by_job.get(job, {}).get(i, max_age + 1) <= max_age for job in required_jobs)
    )


def _pod_key(labels: Labels) -> PodKey:
    return (labels.get("namespace", ""), labels.get("pod", ""))
