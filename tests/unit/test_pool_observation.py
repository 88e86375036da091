"""Reading pending GPU pods and node use off listed objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from steward.observe.pools import gpus_requested, pending_gpu_pods, pool_nodes

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _pod(name: str, gpus: int, *, node: str | None = None, phase: str = "Pending",
         owners: bool = True, annotations: dict[str, str] | None = None,
         **spec: Any) -> dict[str, Any]:  # fmt: skip
    meta: dict[str, Any] = {"name": name, "namespace": "team", "creationTimestamp":
                            "2026-11-22T11:00:00Z", "annotations": annotations or {}}  # fmt: skip
    if owners:
        meta["ownerReferences"] = [{"kind": "Job", "name": "j"}]
    body = {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]}
    if node:
        body["nodeName"] = node
    return {"metadata": meta, "spec": body | spec, "status": {"phase": phase}}


def _node(name: str, gpus: int = 8, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)},
                   "conditions": [{"type": "Ready", "status": str(ready)}]},
    }  # fmt: skip


def test_gpu_requests_take_requests_then_limits_and_the_largest_init_container() -> None:
    pod = _pod("a", 2, initContainers=[{"name": "i", "resources": {"requests": {
        "nvidia.com/gpu": "4"}}}])  # fmt: skip
    assert gpus_requested(pod) == 4
    pod["spec"]["containers"].append({"name": "d", "resources": {"requests": {
        "nvidia.com/gpu": "3"}, "limits": {"nvidia.com/gpu": "3"}}})  # fmt: skip
    assert gpus_requested(pod) == 5


def test_only_unbound_unfinished_gpu_pods_are_pending_with_their_constraints() -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "k", "operator": "In", "values": ["v"]}]}]}}}  # fmt: skip
    pods = [
        _pod("wants", 2, nodeSelector={"zone": "a"}, affinity=affinity,
             tolerations=[{"key": "spot", "operator": "Exists"}]),
        _pod("bound", 2, node="n1", phase="Running"),
        _pod("cpu", 0),
        _pod("done", 2, phase="Failed"),
    ]  # fmt: skip
    [pending] = pending_gpu_pods(pods, lambda pod: ("b1",))
    assert pending.key == ("team", "wants")
    assert (pending.gpus, pending.budgets) == (2, ("b1",))
    assert pending.node_selector == {"zone": "a"}
    assert pending.affinity_terms == (({"key": "k", "operator": "In", "values": ["v"]},),)
    assert pending.since == datetime(2026, 11, 22, 11, 0, tzinfo=UTC)


def test_node_use_counts_running_pods_and_flags_pods_nothing_would_recreate() -> None:
    pods = [
        _pod("run", 3, node="n1", phase="Running"),
        _pod("finished", 8, node="n1", phase="Succeeded"),
        _pod("bare", 0, node="n2", phase="Running", owners=False),
        _pod("pinned", 0, node="n3", phase="Running",
             annotations={"karpenter.sh/do-not-disrupt": "true"}),
    ]  # fmt: skip
    daemon = _pod("ds", 0, node="n3", phase="Running", owners=False)
    daemon["metadata"]["ownerReferences"] = [{"kind": "DaemonSet", "name": "d"}]
    nodes = pool_nodes([_node("n1"), _node("n2"), _node("n3", ready=False)], [*pods, daemon],
                       {"n2": NOW, "n3": NOW})  # fmt: skip
    by_name = {n.name: n for n in nodes}
    assert (by_name["n1"].allocated_gpus, by_name["n1"].idle_since) == (3, None)
    assert by_name["n1"].non_evictable == ()
    assert by_name["n2"].non_evictable == ("team/bare",)
    assert by_name["n2"].idle_since == NOW
    assert by_name["n3"].non_evictable == ("team/pinned",)
    assert not by_name["n3"].ready
