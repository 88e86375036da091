"""Kwok GPU Node manifests: GPU capacity, the platform labels, spot taints. Pure.

The local cluster's simulated nodes and the Kwok node-pool provider both build their Nodes here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from steward.api.constants import (
    CAPACITY_LABEL_ON_DEMAND,
    CAPACITY_LABEL_SPOT,
    GPU_RESOURCE,
    LABEL_CAPACITY_TYPE,
)
from steward.policy.placement import GPU_PRODUCT_LABEL

#: Annotation that marks the nodes kwok simulates.
KWOK_NODE_ANNOTATION: Final = "kwok.x-k8s.io/node"
#: Marks the nodes this module manages, so listing never picks up anything else.
LABEL_SIMULATED: Final = "steward.ai/simulated"
#: NVIDIA GPU feature discovery's labels, which schedulers and dashboards already understand.
LABEL_GPU_PRODUCT: Final = GPU_PRODUCT_LABEL
LABEL_GPU_COUNT: Final = "nvidia.com/gpu.count"
LABEL_INSTANCE_TYPE: Final = "node.kubernetes.io/instance-type"
LABEL_ZONE: Final = "topology.kubernetes.io/zone"
LABEL_REGION: Final = "topology.kubernetes.io/region"
#: Karpenter's capacity-type label; Steward's own label carries the same value.
LABEL_KARPENTER_CAPACITY: Final = "karpenter.sh/capacity-type"


@dataclass(frozen=True)
class GPUNode:
    """A simulated GPU node.

    Spot nodes are tainted ``steward.ai/capacity-type=spot:NoSchedule`` unless ``taints`` says
    otherwise, so only work that tolerates interruption lands there.
    """

    name: str
    gpu_model: str = "NVIDIA-H100-80GB-HBM3"
    gpus: int = 8
    instance_type: str = "p5.48xlarge"
    spot: bool = False
    zone: str = "us-east-1a"
    region: str = "us-east-1"
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] | None = None
    cpu: str = "96"
    memory: str = "1Ti"

    @property
    def capacity_label(self) -> str:
        return CAPACITY_LABEL_SPOT if self.spot else CAPACITY_LABEL_ON_DEMAND

    def manifest(self) -> dict[str, Any]:
        """The Node object to create, status included (kwok keeps what we set)."""
        taints = self.taints
        if taints is None:
            taints = (
                (
                    {
                        "key": LABEL_CAPACITY_TYPE,
                        "value": CAPACITY_LABEL_SPOT,
                        "effect": "NoSchedule",
                    },
                )
                if self.spot
                else ()
            )
        resources = {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": "110",
            GPU_RESOURCE: str(self.gpus),
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                    LABEL_SIMULATED: "true",
                    LABEL_GPU_PRODUCT: self.gpu_model,
                    LABEL_GPU_COUNT: str(self.gpus),
                    LABEL_INSTANCE_TYPE: self.instance_type,
                    LABEL_ZONE: self.zone,
                    LABEL_REGION: self.region,
                    LABEL_KARPENTER_CAPACITY: self.capacity_label,
                    LABEL_CAPACITY_TYPE: self.capacity_label,
                    **self.labels,
                },
            },
            "spec": {"taints": list(taints)},
            "status": {"capacity": resources, "allocatable": resources},
        }
