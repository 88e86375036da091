"""Simulated GPU nodes: kwok Nodes with GPU capacity, the platform labels, and spot taints.

Deleting a node is what a spot preemption looks like to the cluster: the node object goes away,
the pod garbage collector fails and removes its pods, and their controllers react.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from steward.act.kwoknodes import (
    LABEL_GPU_COUNT,
    LABEL_GPU_PRODUCT,
    LABEL_INSTANCE_TYPE,
    LABEL_KARPENTER_CAPACITY,
    LABEL_REGION,
    LABEL_SIMULATED,
    LABEL_ZONE,
    GPUNode,
)
from steward.devcluster.kube import list_items

__all__ = [
    "LABEL_GPU_COUNT", "LABEL_GPU_PRODUCT", "LABEL_INSTANCE_TYPE", "LABEL_KARPENTER_CAPACITY",
    "LABEL_REGION", "LABEL_SIMULATED", "LABEL_ZONE", "GPUNode", "add_node", "delete_node",
    "list_nodes",
]  # fmt: skip


def add_node(api: client.CoreV1Api, node: GPUNode) -> None:
    """Create the node; kwok marks it Ready within a second."""
    # The client takes a plain dict at run time; its typing asks for V1Node.
    api.create_node(body=node.manifest())  # type: ignore[arg-type]


def delete_node(api: client.CoreV1Api, name: str) -> None:
    """Delete a node at once, as a spot reclaim does."""
    api.delete_node(name=name, grace_period_seconds=0)


def list_nodes(api: client.CoreV1Api) -> list[dict[str, Any]]:
    """Every node this module created (raw Node objects), sorted by name."""
    nodes = list_items(api.list_node, label_selector=f"{LABEL_SIMULATED}=true")
    return sorted(nodes, key=lambda n: str(n["metadata"]["name"]))
