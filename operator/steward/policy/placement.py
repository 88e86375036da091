"""Where capacity-typed work may run: node affinity and tolerations for spot or on-demand.

Clouds label spot nodes differently. A :class:`CapacityLabels` names one platform's label and
its values; :data:`PLATFORMS` holds the well-known ones. Steward's placement for a capacity type
is a required node-affinity term on the chosen platform's label, plus tolerations for every
known spot taint (tolerating a taint no node carries is harmless; missing one leaves work
Pending). The user's own affinity, selectors and tolerations are kept and combined with it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final

from steward.api.constants import CAPACITY_LABEL_ON_DEMAND, CAPACITY_LABEL_SPOT, LABEL_CAPACITY_TYPE
from steward.api.v1alpha1.common import CapacityType
from steward.snapshot import NodeRecord


@dataclass(frozen=True)
class CapacityLabels:
    """How one platform marks a node's capacity type.

    ``on_demand`` is None where on-demand nodes simply lack the label (GKE, AKS): on-demand work
    then requires the label to be absent.
    """

    key: str
    spot: str
    on_demand: str | None


PLATFORMS: Final[dict[str, CapacityLabels]] = {
    "steward": CapacityLabels(LABEL_CAPACITY_TYPE, CAPACITY_LABEL_SPOT, CAPACITY_LABEL_ON_DEMAND),
    "karpenter": CapacityLabels("karpenter.sh/capacity-type", "spot", "on-demand"),
    "eks": CapacityLabels("eks.amazonaws.com/capacityType", "SPOT", "ON_DEMAND"),
    "gke": CapacityLabels("cloud.google.com/gke-spot", "true", None),
    "aks": CapacityLabels("kubernetes.azure.com/scalesetpriority", "spot", None),
}

#: NVIDIA GPU feature discovery's product label, which ``gpuModel`` selects on.
GPU_PRODUCT_LABEL: Final = "nvidia.com/gpu.product"

#: Taints that mark spot nodes on the platforms above, and Steward's own.
SPOT_TOLERATIONS: Final[tuple[dict[str, str], ...]] = (
    {"key": LABEL_CAPACITY_TYPE, "operator": "Equal", "value": "spot", "effect": "NoSchedule"},
    {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true",
     "effect": "NoSchedule"},
    {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot",
     "effect": "NoSchedule"},
)  # fmt: skip

#: Taints that announce a node is about to go away (spot reclaim, consolidation, drain).
DISRUPTION_TAINTS: Final = frozenset(
    {
        "karpenter.sh/disrupted",
        "karpenter.sh/disruption",
        "cloud.google.com/impending-node-termination",
        "aws-node-termination-handler/spot-itn",
        "aws-node-termination-handler/rebalance-recommendation",
        "steward.ai/disruption",
    }
)


def node_capacity_requirement(capacity: CapacityType, labels: CapacityLabels) -> dict[str, Any]:
    """The ``matchExpressions`` entry that confines a pod to ``capacity`` nodes."""
    if capacity == CapacityType.SPOT:
        return {"key": labels.key, "operator": "In", "values": [labels.spot]}
    if labels.on_demand is None:
        return {"key": labels.key, "operator": "DoesNotExist"}
    return {"key": labels.key, "operator": "In", "values": [labels.on_demand]}


def place(
    pod_spec: dict[str, Any],
    capacity: CapacityType,
    labels: CapacityLabels,
    extra_requirements: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """A copy of ``pod_spec`` confined to ``capacity`` nodes (and ``extra_requirements``).

    The requirement is added to every required node-selector term the user wrote (terms are
    ORed, so each must carry it), or becomes the only term. Spot pods also get the spot
    tolerations. ``pod_spec`` itself is not modified.
    """
    spec = copy.deepcopy(pod_spec)
    requirements = [node_capacity_requirement(capacity, labels), *extra_requirements]
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    for term in terms:
        term["matchExpressions"] = [*term.get("matchExpressions", []), *requirements]
    required["nodeSelectorTerms"] = terms
    if capacity == CapacityType.SPOT:
        present = spec.get("tolerations", [])
        spec["tolerations"] = [*present, *(t for t in SPOT_TOLERATIONS if t not in present)]
    return spec


def gpu_model_requirements(gpu_model: str | None) -> tuple[dict[str, Any], ...]:
    """The ``matchExpressions`` entries that confine a pod to nodes of ``gpu_model`` (if any)."""
    if not gpu_model:
        return ()
    return ({"key": GPU_PRODUCT_LABEL, "operator": "In", "values": [gpu_model]},)


def is_disrupting(taints: list[dict[str, Any]]) -> str | None:
    """The key of the first taint in ``taints`` that announces disruption, or None."""
    for taint in taints:
        if taint.get("key") in DISRUPTION_TAINTS and taint.get("effect") != "PreferNoSchedule":
            return str(taint["key"])
    return None


def node_matches(node: NodeRecord, requirements: list[dict[str, Any]]) -> bool:
    """Whether ``node``'s labels satisfy every ``matchExpressions`` entry in ``requirements``."""
    for requirement in requirements:
        present = requirement["key"] in node.labels
        value = node.labels.get(requirement["key"])
        operator, values = requirement["operator"], requirement.get("values", [])
        satisfied = {
            "In": present and value in values,
            "NotIn": not present or value not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(operator, False)
        if not satisfied:
            return False
    return True
