"""GPU node pools on the real cluster: pending GPU pods grow a Kwok pool by the bin-packed number
of nodes, the real scheduler binds them, the pool shrinks after the idle time; spot-eligible work
grows the spot pool and falls back to on-demand after the delay; a budget caps growth and says
why; the ClusterAPI and Karpenter providers change the right fields of their objects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from steward.act.kube import Kube, load_client
from steward.act.nodepools import ClusterAPIProvider, KarpenterProvider
from steward.api.constants import GROUP, VERSION
from steward.api.v1alpha1.gpunodepool import GPUNodePool
from steward.devcluster.kube import list_items
from steward.observe.prometheus import aligned_end
from tests.integration.conftest import (
    ACCOUNTING_STEP,
    ON_DEMAND_USD_PER_HOUR,
    eventually,
    install_stub_crds,
    operator_kubeconfig,
    stub_crd,
)
from tests.integration.test_accounting import GROUP_LABEL, _namespace, _object, _rfc3339, custom
from tests.integration.test_accounting import tag as _tag

__all__ = ["_tag", "custom"]  # fixtures
pytestmark = pytest.mark.usefixtures("operator")
SPOT_TOLERATION = {"key": "steward.ai/capacity-type", "operator": "Equal", "value": "spot",
                   "effect": "NoSchedule"}  # fmt: skip


@pytest.fixture
def tag(_tag: str, custom: client.CustomObjectsApi) -> Iterator[str]:
    """The shared tag; this test's GPUNodePools go first, so no node is made after cleanup."""
    yield _tag
    for obj in custom.list_cluster_custom_object(GROUP, VERSION, "gpunodepools")["items"]:
        if obj["metadata"]["name"].endswith(_tag):
            custom.delete_cluster_custom_object(GROUP, VERSION, "gpunodepools",
                                                obj["metadata"]["name"])  # fmt: skip
    time.sleep(2 * ACCOUNTING_STEP)  # a cycle in flight may still create a node


def _policy(custom: client.CustomObjectsApi, tag: str, **rules: Any) -> None:
    custom.create_cluster_custom_object(GROUP, VERSION, "costpolicies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CostPolicy",
        "metadata": {"name": f"pools-{tag}"},
        "spec": {"mode": "Enforce", "selector": {"namespaces": [f"none-{tag}"]},
                 "nodePools": {"poolSelector": {"matchLabels": {GROUP_LABEL: tag}}, **rules}},
    })  # fmt: skip


def _pool(name: str, tag: str, *, spot: bool = False, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": {"type": "Kwok"}, "instanceType": "p5.48xlarge",
        "gpuModel": "NVIDIA-H100-80GB-HBM3", "gpusPerNode": 8, "region": "us-east-1",
        "capacityType": "Spot" if spot else "OnDemand", "maxNodes": 4,
        "labels": {GROUP_LABEL: tag, "steward.ai/test-pool": name},
        "scaleUp": {"cooldown": "0s"},
        "scaleDown": {"idleTime": "15s", "maxStep": 4, "cooldown": "0s"},
    }  # fmt: skip
    if spot:
        body["taints"] = [{"key": "steward.ai/capacity-type", "value": "spot",
                           "effect": "NoSchedule"}]  # fmt: skip
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "GPUNodePool",
        "metadata": {"name": f"{name}-{tag}", "labels": {GROUP_LABEL: tag}},
        "spec": body | spec,
    }  # fmt: skip


def _gpu_job(name: str, tag: str, *, pods: int, gpus: int, spot: bool = False,
             run: str = "30s") -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {
        "nodeSelector": {GROUP_LABEL: tag},
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "example/gpu:1",
                        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
    }  # fmt: skip
    if spot:
        spec["tolerations"] = [SPOT_TOLERATION]
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"parallelism": pods, "completions": pods, "backoffLimit": 0,
                 "template": {"metadata": {"annotations": {"steward.ai/run-time": run}},
                              "spec": spec}},
    }  # fmt: skip


def _status(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    return _object(custom, "gpunodepools", name).get("status") or {}


def _pool_events(core: client.CoreV1Api, name: str) -> list[tuple[str, str]]:
    events = list_items(client.EventsV1Api(core.api_client).list_event_for_all_namespaces)
    return [(e["reason"], e.get("note", "")) for e in events if e["regarding"]["name"] == name]


def _bound(core: client.CoreV1Api, namespace: str, job: str) -> list[str]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    return [p.spec.node_name for p in pods if p.spec.node_name]


def test_pending_pods_grow_the_pool_bin_packed_and_it_shrinks_when_idle(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, tag: str
) -> None:
    _policy(custom, tag)
    pool = f"od-{tag}"
    custom.create_cluster_custom_object(GROUP, VERSION, "gpunodepools", _pool("od", tag))
    team = _namespace(core, f"pool-a-{tag}", tag)
    # 3 x 5 GPUs: 15 GPUs, but no two share an 8-GPU node: 3 nodes, not 2.
    client.BatchV1Api(core.api_client).create_namespaced_job(
        team, _gpu_job("work", tag, pods=3, gpus=5, run="60s")
    )
    status = eventually(lambda: (s := _status(custom, pool)).get("nodes") == 3 and s,
                        timeout=60, what="the pool at 3 nodes")  # fmt: skip
    assert status["lastDecision"]["toNodes"] == 3
    assert "3 pending pod(s) bin-packed onto 3 new node(s)" in status["lastDecision"]["reason"]
    assert status["hourlyCostUSD"] == pytest.approx(3 * ON_DEMAND_USD_PER_HOUR)
    bound = eventually(lambda: len(n := _bound(core, team, "work")) == 3 and n, timeout=60,
                       what="the scheduler binding the 3 pods")  # fmt: skip
    assert len(set(bound)) == 3
    assert all(node.startswith(pool) for node in bound)
    assert _status(custom, pool)["allocatedGPUs"] == 15
    # DCGM (simulated): 5 GPUs busy at 100 % and 3 idle on each node.
    eventually(lambda: abs((_status(custom, pool).get("utilizationPercent") or 0) - 62.5) < 1,
               timeout=45, what="the pool's utilisation from DCGM")  # fmt: skip
    assert any(r == "ScaleUp" for r, _ in _pool_events(core, pool))
    # The pods finish; after 15 s idle every node goes (minNodes 0).
    eventually(lambda: _status(custom, pool).get("nodes") == 0, timeout=150,
               what="the pool shrunk to 0 after the idle time")  # fmt: skip
    down = [note for reason, note in _pool_events(core, pool) if reason == "ScaleDown"]
    assert down
    assert "idle for 0.25 min or more" in down[0]


def test_spot_work_grows_the_spot_pool_and_falls_back_to_on_demand_after_the_delay(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, tag: str
) -> None:
    _policy(custom, tag, spotFallbackAfter="20s")
    spot, on_demand = f"spot-{tag}", f"od-{tag}"
    for name, is_spot in (("spot", True), ("od", False)):
        pool = _pool(name, tag, spot=is_spot, maxNodes=1)
        custom.create_cluster_custom_object(GROUP, VERSION, "gpunodepools", pool)
    team = _namespace(core, f"pool-b-{tag}", tag)
    batch = client.BatchV1Api(core.api_client)
    batch.create_namespaced_job(team, _gpu_job("first", tag, pods=1, gpus=8, spot=True, run="5m"))
    [node] = eventually(lambda: _bound(core, team, "first"), timeout=60, what="first bound")
    assert node.startswith(spot)
    assert _status(custom, on_demand).get("nodes", 0) == 0
    # The spot pool is at its maximum: the second waits for spot, then on-demand takes it.
    created = datetime.now(UTC)
    batch.create_namespaced_job(team, _gpu_job("second", tag, pods=1, gpus=8, spot=True,
                                               run="5m"))  # fmt: skip
    limited = eventually(
        lambda: next((c for c in _status(custom, spot).get("conditions", [])
                      if c["type"] == "ScaleUpLimited" and c["status"] == "True"), None),
        timeout=30, what="the spot pool saying it is limited",
    )  # fmt: skip
    assert "at maxNodes 1" in limited["message"]
    assert ("ScaleUpLimited", limited["message"]) in _pool_events(core, spot)
    [node] = eventually(lambda: _bound(core, team, "second"), timeout=90, what="second bound")
    assert node.startswith(on_demand)
    grown = _status(custom, on_demand)["lastDecision"]
    waited = datetime.fromisoformat(grown["time"].replace("Z", "+00:00")) - created
    assert waited >= timedelta(seconds=20), waited


def test_a_budget_cap_stops_growth_and_says_why(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, tag: str
) -> None:
    _policy(custom, tag)
    team = _namespace(core, f"pool-c-{tag}", tag)
    # 1.5 node-hours of money for an hour: one more node affordable, not three.
    anchor = aligned_end(datetime.now(UTC) - timedelta(minutes=1), ACCOUNTING_STEP, 0)
    custom.create_cluster_custom_object(GROUP, VERSION, "budgets", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Budget", "metadata": {"name": f"cap-{tag}"},
        "spec": {"scope": {"namespaces": [team]},
                 "period": {"type": "Custom", "length": "1h", "anchor": _rfc3339(anchor)},
                 "limits": {"usd": 1.5 * ON_DEMAND_USD_PER_HOUR},
                 "thresholds": [{"percent": 90, "actions": ["Notify"]}]},
    })  # fmt: skip
    eventually(lambda: (_object(custom, "budgets", f"cap-{tag}").get("status") or {}).get(
        "periodEnd"), timeout=30, what="the budget accounted")  # fmt: skip
    pool = f"od-{tag}"
    custom.create_cluster_custom_object(GROUP, VERSION, "gpunodepools", _pool("od", tag))
    client.BatchV1Api(core.api_client).create_namespaced_job(
        team, _gpu_job("work", tag, pods=3, gpus=8, run="5m")
    )
    limited = eventually(
        lambda: next((c for c in _status(custom, pool).get("conditions", [])
                      if c["type"] == "ScaleUpLimited" and c["status"] == "True"), None),
        timeout=60, what="the pool saying the budget limits it",
    )  # fmt: skip
    assert f"budget cap: Budget cap-{tag}" in limited["message"]
    time.sleep(3 * ACCOUNTING_STEP)
    assert _status(custom, pool)["nodes"] == 1
    assert len(_bound(core, team, "work")) == 1
    assert any(r == "ScaleUpLimited" and f"cap-{tag}" in n for r, n in _pool_events(core, pool))


MACHINE_DEPLOYMENT_CRD = stub_crd("cluster.x-k8s.io", "v1beta1", "MachineDeployment",
                                  "machinedeployments", scale=True)  # fmt: skip
MACHINE_CRD = stub_crd("cluster.x-k8s.io", "v1beta1", "Machine", "machines")
NODEPOOL_CRD = stub_crd("karpenter.sh", "v1", "NodePool", "nodepools", namespaced=False)


def _install_crds(core: client.CoreV1Api) -> None:
    install_stub_crds(core, MACHINE_DEPLOYMENT_CRD, MACHINE_CRD, NODEPOOL_CRD)


def _provider_pool(kind: str, api_version: str, name: str, namespace: str | None) -> GPUNodePool:
    ref = {"apiVersion": api_version, "kind": kind, "name": name}
    if namespace:
        ref["namespace"] = namespace
    provider_type = "ClusterAPI" if kind == "MachineDeployment" else "Karpenter"
    return GPUNodePool.model_validate(
        _pool("x", "t", provider={"type": provider_type, "ref": ref}, spot=kind == "NodePool")
    )


def test_cluster_api_and_karpenter_providers_change_the_right_fields(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, tag: str, dev_cluster: Any
) -> None:
    _install_crds(core)
    # The providers act with the operator's identity: the chart's ServiceAccount and roles.
    kube = Kube(load_client(str(operator_kubeconfig(dev_cluster))))
    team = _namespace(core, f"pool-d-{tag}", tag)
    custom.create_namespaced_custom_object("cluster.x-k8s.io", "v1beta1", team,
                                           "machinedeployments", {
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "MachineDeployment",
        "metadata": {"name": "gpu-md"}, "spec": {"replicas": 2, "clusterName": "c"},
    })  # fmt: skip
    custom.create_namespaced_custom_object("cluster.x-k8s.io", "v1beta1", team, "machines", {
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
        "metadata": {"name": f"gpu-md-m1-{tag}"}, "spec": {"clusterName": "c"},
    })  # fmt: skip
    node = f"capi-{tag}"
    core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {  # type: ignore[arg-type]
        "name": node, "labels": {GROUP_LABEL: tag},
        "annotations": {"cluster.x-k8s.io/machine": f"gpu-md-m1-{tag}"}}})  # fmt: skip
    capi = ClusterAPIProvider(kube)
    pool = _provider_pool("MachineDeployment", "cluster.x-k8s.io/v1beta1", "gpu-md", team)
    assert capi.desired(pool, []) == 2
    capi.set_desired(pool, 1, [node])
    md = custom.get_namespaced_custom_object("cluster.x-k8s.io", "v1beta1", team,
                                             "machinedeployments", "gpu-md")  # fmt: skip
    assert md["spec"]["replicas"] == 1
    machine = custom.get_namespaced_custom_object("cluster.x-k8s.io", "v1beta1", team,
                                                  "machines", f"gpu-md-m1-{tag}")  # fmt: skip
    assert machine["metadata"]["annotations"]["cluster.x-k8s.io/delete-machine"] == "true"
    capi.set_desired(pool, 4, [])
    assert capi.desired(pool, []) == 4

    name = f"gpu-spot-{tag}"
    custom.create_cluster_custom_object("karpenter.sh", "v1", "nodepools", {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name},
        "spec": {"limits": {"cpu": "1000"}, "template": {"spec": {"requirements": [
            {"key": "karpenter.sh/capacity-type", "operator": "In",
             "values": ["spot", "on-demand"]},
            {"key": "node.kubernetes.io/instance-type", "operator": "In",
             "values": ["p5.48xlarge"]}]}}},
    })  # fmt: skip
    try:
        karpenter = KarpenterProvider(kube)
        pool = _provider_pool("NodePool", "karpenter.sh/v1", name, None)
        karpenter.set_desired(pool, 3, [])
        found = custom.get_cluster_custom_object("karpenter.sh", "v1", "nodepools", name)
        assert found["spec"]["limits"] == {"cpu": "1000", "nvidia.com/gpu": "24"}
        requirements = found["spec"]["template"]["spec"]["requirements"]
        assert {"key": "karpenter.sh/capacity-type", "operator": "In",
                "values": ["spot"]} in requirements  # fmt: skip
        assert any(r["key"] == "node.kubernetes.io/instance-type" for r in requirements)
        assert karpenter.desired(pool, []) == 3
    finally:
        custom.delete_cluster_custom_object("karpenter.sh", "v1", "nodepools", name)
