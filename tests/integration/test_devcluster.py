"""The local cluster is real: the scheduler binds GPU pods by labels, kwok runs them on schedule,
Prometheus joins kube-state-metrics with the GPU simulator, and node loss fails pods."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kubernetes import client
from prometheus_api_client import PrometheusConnect

from steward.api.constants import GPU_RESOURCE
from steward.devcluster.nodes import LABEL_KARPENTER_CAPACITY, GPUNode, add_node, delete_node
from tests.integration.conftest import eventually, pod_phase

SPOT_TOLERATION = {
    "key": "steward.ai/capacity-type",
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}


def _nodes(core: client.CoreV1Api, group: str, *specs: GPUNode) -> list[str]:
    """Add nodes labelled with this test's group, so tests never share capacity."""
    names = []
    for spec in specs:
        node = GPUNode(**{**spec.__dict__, "labels": {**spec.labels, "steward.ai/test": group}})
        add_node(core, node)
        names.append(node.name)
    for name in names:
        eventually(lambda n=name: _ready(core, n), timeout=30, what=f"node {name} Ready")
    return names


def _ready(core: client.CoreV1Api, name: str) -> bool:
    conditions = core.read_node(name=name).status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _pod_spec(group: str, gpus: int, selector: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "nodeSelector": {"steward.ai/test": group, **selector},
        "containers": [
            {
                "name": "main",
                "image": "registry.invalid/trainer:1",
                "resources": {"limits": {GPU_RESOURCE: str(gpus)}},
            }
        ],
        **extra,
    }


def _group() -> str:
    return uuid.uuid4().hex[:6]


def test_gpu_job_is_bound_by_labels_and_runs_on_schedule(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    group = _group()
    on_demand, spot = _nodes(
        core, group, GPUNode(f"od-{group}", gpus=8), GPUNode(f"spot-{group}", gpus=8, spot=True)
    )
    job = {
        "metadata": {"name": "train"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"steward.ai/run-time": "6s"}},
                "spec": _pod_spec(
                    group, 2, {LABEL_KARPENTER_CAPACITY: "on-demand"}, restartPolicy="Never"
                ),
            },
        },
    }
    batch.create_namespaced_job(namespace=namespace, body=job)  # type: ignore[arg-type]
    pod = eventually(lambda: _only_pod(core, namespace, "Running"), what="pod Running")
    running_at = time.monotonic()
    assert pod.spec.node_name == on_demand != spot
    assert pod.spec.containers[0].resources.limits[GPU_RESOURCE] == "2"
    done = eventually(lambda: _only_pod(core, namespace, "Succeeded"), what="pod Succeeded")
    elapsed = time.monotonic() - running_at
    assert 4.5 <= elapsed <= 20, f"annotated run time 6s, observed {elapsed:.1f}s"
    assert done.status.container_statuses[0].state.terminated.exit_code == 0
    eventually(
        lambda: batch.read_namespaced_job(name="train", namespace=namespace).status.succeeded == 1,
        what="Job succeeded",
    )


def _only_pod(core: client.CoreV1Api, namespace: str, phase: str) -> Any:
    pods = core.list_namespaced_pod(namespace=namespace).items
    return pods[0] if len(pods) == 1 and pod_phase(pods[0]) == phase else None


def test_failure_twin_fails_the_pod(core: client.CoreV1Api, namespace: str) -> None:
    group = _group()
    _nodes(core, group, GPUNode(f"od-{group}", gpus=2))
    pod = {
        "metadata": {"name": "crash", "annotations": {"steward.ai/fail-after": "2s"}},
        "spec": _pod_spec(group, 1, {}, restartPolicy="Never"),
    }
    core.create_namespaced_pod(namespace=namespace, body=pod)  # type: ignore[arg-type]
    failed = eventually(lambda: _only_pod(core, namespace, "Failed"), what="pod Failed")
    assert failed.status.container_statuses[0].state.terminated.exit_code == 1


def test_spot_selector_never_lands_on_on_demand(core: client.CoreV1Api, namespace: str) -> None:
    group = _group()
    [on_demand] = _nodes(core, group, GPUNode(f"od-{group}", gpus=8))
    pod = {
        "metadata": {"name": "spot-only"},
        "spec": _pod_spec(
            group, 1, {LABEL_KARPENTER_CAPACITY: "spot"}, tolerations=[SPOT_TOLERATION]
        ),
    }
    core.create_namespaced_pod(namespace=namespace, body=pod)  # type: ignore[arg-type]
    # With only on-demand capacity the scheduler refuses it, though 8 GPUs are free.
    eventually(lambda: _unschedulable(core, namespace, "spot-only"), what="FailedScheduling")
    [spot] = _nodes(core, group, GPUNode(f"spot-{group}", gpus=8, spot=True))
    bound = eventually(
        lambda: core.read_namespaced_pod("spot-only", namespace).spec.node_name, what="pod bound"
    )
    assert bound == spot != on_demand


def test_untolerated_pod_never_lands_on_spot(core: client.CoreV1Api, namespace: str) -> None:
    group = _group()
    _nodes(core, group, GPUNode(f"spot-{group}", gpus=8, spot=True))
    pod = {"metadata": {"name": "plain"}, "spec": _pod_spec(group, 1, {})}
    core.create_namespaced_pod(namespace=namespace, body=pod)  # type: ignore[arg-type]
    eventually(lambda: _unschedulable(core, namespace, "plain"), what="FailedScheduling")
    assert core.read_namespaced_pod("plain", namespace).spec.node_name is None


def _unschedulable(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    conditions = core.read_namespaced_pod(name, namespace).status.conditions or []
    return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conditions)


def test_promql_joins_gpu_request_and_power_by_pod(
    core: client.CoreV1Api, prometheus: PrometheusConnect, namespace: str
) -> None:
    group = _group()
    [node] = _nodes(core, group, GPUNode(f"od-{group}", gpus=4))
    pod = {
        "metadata": {"name": "half-busy", "annotations": {"steward.ai/gpu-profile": "50"}},
        "spec": _pod_spec(group, 2, {}),
    }
    core.create_namespaced_pod(namespace=namespace, body=pod)  # type: ignore[arg-type]
    requests = (
        f'kube_pod_container_resource_requests{{resource="nvidia_com_gpu",namespace="{namespace}"}}'
    )
    power = f'DCGM_FI_DEV_POWER_USAGE{{namespace="{namespace}"}}'
    # Watts per requested GPU: the simulator's power divided by kube-state-metrics' request.
    joined = (
        f"sum by (namespace, pod) ({power}) / on (namespace, pod) "
        f"sum by (namespace, pod) ({requests})"
    )
    result = eventually(lambda: prometheus.custom_query(joined), timeout=90, what=joined)
    [series] = result
    assert series["metric"] == {"namespace": namespace, "pod": "half-busy"}
    # Two GPUs at 50 % on an H100: 457 W each, measured (shared/data/power/h100_phases.csv).
    assert float(series["value"][1]) == pytest.approx(457.0)
    [request] = prometheus.custom_query(requests)
    assert float(request["value"][1]) == 2
    by_gpu = prometheus.custom_query(f"{power}")
    assert {s["metric"]["Hostname"] for s in by_gpu} == {node}
    assert sorted(s["metric"]["gpu"] for s in by_gpu) == ["0", "1"]
    idle = prometheus.custom_query(f'DCGM_FI_DEV_POWER_USAGE{{Hostname="{node}",pod=""}}')
    assert sorted(float(s["value"][1]) for s in idle) == [74.0, 74.0]


def test_deleting_a_spot_node_fails_its_pods(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    group = _group()
    [spot] = _nodes(core, group, GPUNode(f"spot-{group}", gpus=8, spot=True))
    job = {
        "metadata": {"name": "preemptible"},
        "spec": {
            "backoffLimit": 3,
            "template": {
                "spec": _pod_spec(
                    group,
                    8,
                    {LABEL_KARPENTER_CAPACITY: "spot"},
                    tolerations=[SPOT_TOLERATION],
                    restartPolicy="Never",
                )
            },
        },
    }
    batch.create_namespaced_job(namespace=namespace, body=job)  # type: ignore[arg-type]
    first = eventually(lambda: _only_pod(core, namespace, "Running"), what="pod Running")
    assert first.spec.node_name == spot
    delete_node(core, spot)
    # The pod garbage collector fails and removes pods bound to a node that no longer exists;
    # the Job controller counts the failure and creates a replacement, which has nowhere to go.
    eventually(
        lambda: _gone(core, namespace, first.metadata.name),
        timeout=150,
        what="orphaned pod removed by the pod garbage collector",
    )
    status = eventually(lambda: _failed_job(batch, namespace), timeout=30, what="Job failure")
    assert status.failed >= 1
    replacement = eventually(
        lambda: _pending_replacement(core, namespace, first.metadata.name),
        timeout=30,
        what="replacement pod",
    )
    assert replacement.spec.node_name is None


def _gone(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    return all(p.metadata.name != name for p in core.list_namespaced_pod(namespace).items)


def _failed_job(batch: client.BatchV1Api, namespace: str) -> Any:
    status = batch.read_namespaced_job(name="preemptible", namespace=namespace).status
    return status if status.failed else None


def _pending_replacement(core: client.CoreV1Api, namespace: str, old: str) -> Any:
    pods = [p for p in core.list_namespaced_pod(namespace).items if p.metadata.name != old]
    return pods[0] if pods and pod_phase(pods[0]) == "Pending" else None
