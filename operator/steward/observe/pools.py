"""What the autoscaler reads off listed Pods and Nodes: pending GPU pods and each node's use.

A pod counts on a node while it is bound there and not finished. A pod is *non-evictable* (its
node is never removed under it) when nothing would recreate it (no owner), when it says so
(``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`` or ``karpenter.sh/do-not-disrupt:
"true"``), or when it is a static (mirror) pod; DaemonSet pods are not counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from steward.api.constants import GPU_RESOURCE
from steward.policy.autoscaling import PendingPod, PoolNode

Raw = dict[str, Any]
_FINISHED: Final = ("Succeeded", "Failed")
_MIRROR: Final = "kubernetes.io/config.mirror"


def gpus_requested(pod: Raw) -> int:
    """GPUs the pod requests (limits where requests are missing; init containers: the max)."""
    spec = pod.get("spec") or {}

    def of(container: Raw) -> int:
        resources = container.get("resources") or {}
        value = (resources.get("requests") or {}).get(GPU_RESOURCE)
        value = value if value is not None else (resources.get("limits") or {}).get(GPU_RESOURCE)
        return int(value or 0)

    main = sum(of(c) for c in spec.get("containers") or [])
    init = max((of(c) for c in spec.get("initContainers") or []), default=0)
    return max(main, init)


def pending_gpu_pods(
    pods: Sequence[Raw], budgets_of: Callable[[Raw], tuple[str, ...]]
) -> list[PendingPod]:
    """Unbound, unfinished GPU pods not being deleted, each with the budgets covering it."""
    pending = []
    for pod in pods:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        gpus = gpus_requested(pod)
        phase = (pod.get("status") or {}).get("phase")
        if gpus <= 0 or spec.get("nodeName") or phase != "Pending" or meta.get("deletionTimestamp"):
            continue
        pending.append(
            PendingPod(
                key=(meta["namespace"], meta["name"]),
                gpus=gpus,
                since=_parse(meta["creationTimestamp"]),
                node_selector=dict(spec.get("nodeSelector") or {}),
                affinity_terms=_required_terms(spec),
                tolerations=tuple(spec.get("tolerations") or ()),
                budgets=budgets_of(pod),
            )
        )
    return pending


def pool_nodes(
    nodes: Sequence[Raw], pods: Sequence[Raw], idle_since: Mapping[str, datetime]
) -> tuple[PoolNode, ...]:
    """Each of ``nodes`` with the GPUs its pods hold; ``idle_since`` says since when a node
    without GPU pods has been seen idle."""
    on: dict[str, list[Raw]] = defaultdict(list)
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and (pod.get("status") or {}).get("phase") not in _FINISHED:
            on[node].append(pod)
    result = []
    for node in nodes:
        name = str(node["metadata"]["name"])
        allocated = sum(gpus_requested(p) for p in on[name])
        pinned = tuple(f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                       for p in on[name] if _non_evictable(p))  # fmt: skip
        result.append(
            PoolNode(
                name=name,
                ready=_ready(node),
                gpus=int(
                    ((node.get("status") or {}).get("allocatable") or {}).get(GPU_RESOURCE) or 0
                ),
                allocated_gpus=allocated,
                idle_since=idle_since.get(name) if allocated == 0 else None,
                non_evictable=pinned,
            )
        )
    return tuple(result)


def _non_evictable(pod: Raw) -> bool:
    meta = pod["metadata"]
    annotations = meta.get("annotations") or {}
    owners = meta.get("ownerReferences") or []
    if any(o.get("kind") == "DaemonSet" for o in owners):
        return False
    return (
        not owners
        or _MIRROR in annotations
        or annotations.get("cluster-autoscaler.kubernetes.io/safe-to-evict") == "false"
        or annotations.get("karpenter.sh/do-not-disrupt") == "true"
    )


def _ready(node: Raw) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _required_terms(spec: Raw) -> tuple[tuple[Mapping[str, Any], ...], ...]:
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = affinity.get("nodeSelectorTerms") or []
    return tuple(tuple(term.get("matchExpressions") or ()) for term in terms)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
