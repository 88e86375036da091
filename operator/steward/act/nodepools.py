"""Who creates and removes a GPUNodePool's nodes: the :class:`NodePoolProvider` interface and its
four implementations (Kwok, ClusterAPI, Karpenter, Static).

Every provider answers the same four questions; only ``set_desired`` writes, and only to the
provider's own objects (kwok Nodes, a MachineDeployment's scale, a Karpenter NodePool).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from steward.act.kube import NODES, Kube, KubeError, Resource
from steward.act.kwoknodes import GPUNode
from steward.api.constants import GPU_RESOURCE, LABEL_NODE_POOL
from steward.api.v1alpha1.common import CapacityType, ObjectReference
from steward.api.v1alpha1.gpunodepool import GPUNodePool, ProviderType
from steward.cost.catalog import NodeIdentity, PriceCatalog
from steward.policy.autoscaling import pool_labels

Raw = dict[str, Any]
#: Karpenter's label naming the NodePool a node belongs to, and its capacity-type label.
KARPENTER_NODEPOOL_LABEL: Final = "karpenter.sh/nodepool"
KARPENTER_CAPACITY_LABEL: Final = "karpenter.sh/capacity-type"
#: Cluster API: the Machine behind a Node, and the annotation that picks a Machine to delete.
CAPI_MACHINE_ANNOTATION: Final = "cluster.x-k8s.io/machine"
CAPI_DELETE_ANNOTATION: Final = "cluster.x-k8s.io/delete-machine"
CAPI_MACHINES: Final = Resource("cluster.x-k8s.io/v1beta1", "machines")


@dataclass(frozen=True)
class PoolCapacity:
    """What one node of a pool is and costs."""

    gpus_per_node: int
    gpu_model: str
    capacity_type: CapacityType
    price_per_node_hour: Decimal | None
    price_source: str


class NodePoolProvider(Protocol):
    """The contract every provider keeps."""

    def nodes(self, pool: GPUNodePool, cluster_nodes: Sequence[Raw]) -> list[Raw]:
        """The pool's Nodes among ``cluster_nodes`` (every Node in the cluster), ready or not,
        sorted by name. Reads nothing else."""
        ...

    def desired(self, pool: GPUNodePool, nodes: Sequence[Raw]) -> int:
        """The size the provider was last asked for, from its own object; ``len(nodes)`` where
        it keeps none. Raises :class:`KubeError` when the object cannot be read."""
        ...

    def set_desired(self, pool: GPUNodePool, size: int, remove: Sequence[str]) -> None:
        """Ask for ``size`` nodes; on a shrink, the nodes named in ``remove`` are the ones to go.
        Idempotent: asking again for the size in force changes nothing. Raises
        :class:`KubeError`."""
        ...

    def describe(self, pool: GPUNodePool, catalog: PriceCatalog, now: datetime) -> PoolCapacity:
        """GPUs, model, capacity type and hourly price of one node (the spec's price, else the
        catalog's). No I/O."""
        ...


class _Base:
    """Shared parts: membership by the pool label (or the pool's own labels), pricing."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def nodes(self, pool: GPUNodePool, cluster_nodes: Sequence[Raw]) -> list[Raw]:
        name = pool.metadata.name
        own = pool.spec.labels
        members = [
            node
            for node in cluster_nodes
            if _labels(node).get(LABEL_NODE_POOL) == name
            or (own and all(_labels(node).get(k) == v for k, v in own.items()))
        ]
        return sorted(members, key=lambda n: str(n["metadata"]["name"]))

    def desired(self, pool: GPUNodePool, nodes: Sequence[Raw]) -> int:
        return len(nodes)

    def describe(self, pool: GPUNodePool, catalog: PriceCatalog, now: datetime) -> PoolCapacity:
        spec = pool.spec
        price, source = spec.price_per_node_hour_usd, "spec.pricePerNodeHourUSD"
        if price is None:
            identity = NodeIdentity(spec.instance_type, spec.region or "*", spec.capacity_type,
                                    spec.gpu_model, spec.gpus_per_node)  # fmt: skip
            found = catalog.price(identity, now)
            price, source = found.usd_per_hour, found.source
        return PoolCapacity(spec.gpus_per_node, spec.gpu_model, spec.capacity_type, price, source)


class StaticProvider(_Base):
    """Reports only: Steward never changes the pool's size."""

    def set_desired(self, pool: GPUNodePool, size: int, remove: Sequence[str]) -> None:
        return None


class KwokProvider(_Base):
    """Creates and deletes kwok GPU Nodes (``<pool>-<n>``) on the local cluster at once."""

    def set_desired(self, pool: GPUNodePool, size: int, remove: Sequence[str]) -> None:
        name = pool.metadata.name or ""
        current = [str(n["metadata"]["name"]) for n in self.kube.list(
            NODES, label_selector=f"{LABEL_NODE_POOL}={name}")]  # fmt: skip
        for node in [n for n in current if n in remove]:
            _delete_node(self.kube, node)
        kept = sorted((n for n in current if n not in remove), key=_index)
        for node in kept[size:][::-1]:  # more than asked for: the newest go
            _delete_node(self.kube, node)
        used = {_index(n) for n in kept[:size]}
        free = (i for i in range(1, 10**6) if i not in used)
        for _ in range(size - len(kept[:size])):
            self.kube.create(NODES, kwok_node(pool, f"{name}-{next(free)}").manifest())


def kwok_node(pool: GPUNodePool, name: str) -> GPUNode:
    """The simulated node ``name`` of ``pool``: its labels, taints, GPUs and instance type."""
    spec = pool.spec
    labels = pool_labels(pool) | {LABEL_NODE_POOL: pool.metadata.name or ""}
    taints = tuple(t.model_dump(mode="json", exclude_defaults=False) for t in spec.taints)
    region = spec.region or "us-east-1"
    return GPUNode(
        name, gpu_model=spec.gpu_model, gpus=spec.gpus_per_node, instance_type=spec.instance_type,
        spot=spec.capacity_type == CapacityType.SPOT, zone=spec.zone or f"{region}a",
        region=region, labels=labels, taints=taints,
    )  # fmt: skip


class ClusterAPIProvider(_Base):
    """Scales a MachineDeployment or MachinePool through its ``scale`` subresource; the nodes to
    remove get their Machine annotated ``cluster.x-k8s.io/delete-machine`` first."""

    def desired(self, pool: GPUNodePool, nodes: Sequence[Raw]) -> int:
        ref = _ref(pool)
        scale = self.kube.request("GET", _resource(ref).path(ref.namespace, ref.name, "scale"))
        return int((scale.get("spec") or {}).get("replicas") or 0)

    def set_desired(self, pool: GPUNodePool, size: int, remove: Sequence[str]) -> None:
        ref = _ref(pool)
        for node in remove:
            found = self.kube.request("GET", NODES.path(None, node))
            machine = (found["metadata"].get("annotations") or {}).get(CAPI_MACHINE_ANNOTATION)
            if machine:
                patch = {"metadata": {"annotations": {CAPI_DELETE_ANNOTATION: "true"}}}
                self.kube.merge_patch(CAPI_MACHINES, ref.namespace, machine, patch)
        self.kube.merge_patch(
            _resource(ref), ref.namespace, ref.name, {"spec": {"replicas": size}}, "scale"
        )


class KarpenterProvider(_Base):
    """Karpenter provisions nodes for pending pods itself; Steward bounds it: the NodePool's
    ``spec.limits`` GPUs become ``size x gpusPerNode`` and its capacity-type requirement the
    pool's capacity type. Nodes to remove are deleted (Karpenter's finalizer drains them)."""

    def nodes(self, pool: GPUNodePool, cluster_nodes: Sequence[Raw]) -> list[Raw]:
        ref_name = _ref(pool).name
        members = [n for n in cluster_nodes if _labels(n).get(KARPENTER_NODEPOOL_LABEL) == ref_name]
        return sorted(members, key=lambda n: str(n["metadata"]["name"]))

    def desired(self, pool: GPUNodePool, nodes: Sequence[Raw]) -> int:
        ref = _ref(pool)
        found = self.kube.request("GET", _resource(ref).path(ref.namespace, ref.name))
        gpus = ((found.get("spec") or {}).get("limits") or {}).get(GPU_RESOURCE)
        return int(gpus) // pool.spec.gpus_per_node if gpus is not None else len(nodes)

    def set_desired(self, pool: GPUNodePool, size: int, remove: Sequence[str]) -> None:
        ref = _ref(pool)
        resource = _resource(ref)
        found = self.kube.request("GET", resource.path(ref.namespace, ref.name))
        template = ((found.get("spec") or {}).get("template") or {}).get("spec") or {}
        requirements = [
            r
            for r in template.get("requirements") or []
            if r.get("key") != KARPENTER_CAPACITY_LABEL
        ]
        capacity = "spot" if pool.spec.capacity_type == CapacityType.SPOT else "on-demand"
        requirements.append({"key": KARPENTER_CAPACITY_LABEL, "operator": "In",
                             "values": [capacity]})  # fmt: skip
        patch = {
            "metadata": {"resourceVersion": found["metadata"]["resourceVersion"]},
            "spec": {
                "limits": {GPU_RESOURCE: str(size * pool.spec.gpus_per_node)},
                "template": {"spec": {"requirements": requirements}},
            },
        }
        self.kube.merge_patch(resource, ref.namespace, ref.name, patch)
        for node in remove:
            _delete_node(self.kube, node)


def provider_for(kube: Kube, pool: GPUNodePool) -> NodePoolProvider:
    """The provider ``pool.spec.provider.type`` names."""
    providers: dict[ProviderType, Callable[[Kube], NodePoolProvider]] = {
        ProviderType.KWOK: KwokProvider,
        ProviderType.CLUSTER_API: ClusterAPIProvider,
        ProviderType.KARPENTER: KarpenterProvider,
        ProviderType.STATIC: StaticProvider,
    }
    return providers[pool.spec.provider.type](kube)


def _ref(pool: GPUNodePool) -> ObjectReference:
    ref = pool.spec.provider.ref
    if ref is None:  # the CRD requires it for these providers; a stale object may lack it
        raise KubeError(422, f"GPUNodePool {pool.metadata.name}: spec.provider.ref is required")
    return ref


def _resource(ref: ObjectReference) -> Resource:
    return Resource(ref.api_version, ref.kind.lower() + "s")


def _labels(node: Raw) -> dict[str, str]:
    return dict(node["metadata"].get("labels") or {})


def _index(node: str) -> int:
    suffix = node.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def _delete_node(kube: Kube, name: str) -> None:
    try:
        kube.request("DELETE", NODES.path(None, name))
    except KubeError as error:
        if error.status != 404:
            raise
