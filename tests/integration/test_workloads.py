"""The workload controllers on the real cluster: TrainingJobs survive spot preemption and fall
back to on-demand, InferenceServices keep their on-demand base through the loss of every spot
node, an operator restart repeats and loses nothing, and refused specs create nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from steward.api.constants import GROUP, VERSION
from steward.devcluster.kube import list_items
from steward.devcluster.nodes import GPUNode, add_node, delete_node
from tests.integration.conftest import Operator, eventually

pytestmark = pytest.mark.usefixtures("operator")

GROUP_LABEL = "steward.ai/test"


@pytest.fixture
def custom(core: client.CoreV1Api) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(core.api_client)


@pytest.fixture
def apps(core: client.CoreV1Api) -> client.AppsV1Api:
    return client.AppsV1Api(core.api_client)


@pytest.fixture
def group(core: client.CoreV1Api) -> Iterator[str]:
    """A label value of this test's own nodes, deleted afterwards."""
    name = uuid.uuid4().hex[:6]
    yield name
    for node in core.list_node(label_selector=f"{GROUP_LABEL}={name}").items:
        delete_node(core, node.metadata.name)


def _node(core: client.CoreV1Api, group: str, name: str, *, spot: bool, gpus: int = 8) -> str:
    full = f"{name}-{group}"
    add_node(core, GPUNode(full, gpus=gpus, spot=spot, labels={GROUP_LABEL: group}))
    return full


def _training_job(name: str, group: str, **capacity: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "gpusPerWorker": 2,
            "checkpoint": {"path": "/checkpoints/run", "interval": "1m"},
            "capacity": {"type": "SpotWithFallback", "maxPreemptions": 2, **capacity},
            "template": {
                "metadata": {"annotations": {"steward.ai/run-time": "20s"}},
                "spec": {
                    "nodeSelector": {GROUP_LABEL: group},
                    "containers": [{"name": "trainer", "image": "example/trainer:1"}],
                },
            },
        },
    }


def _create(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> None:
    plural = "trainingjobs" if body["kind"] == "TrainingJob" else "inferenceservices"
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def _get(custom: client.CustomObjectsApi, namespace: str, plural: str, name: str) -> Any:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


def _status(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return dict(_get(custom, namespace, "trainingjobs", name).get("status") or {})


def _running_pod(core: client.CoreV1Api, namespace: str, attempt: int) -> Any:
    pods = core.list_namespaced_pod(namespace, label_selector=f"steward.ai/attempt={attempt}").items
    running = [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
    return running[0] if running else None


def _env(pod: Any) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env or []}


def _events(core: client.CoreV1Api, namespace: str, name: str) -> list[tuple[str, str]]:
    # Raw: the client's Event model refuses the null eventTime of core/v1-recorded Events.
    events = list_items(
        client.EventsV1Api(core.api_client).list_namespaced_event, namespace=namespace
    )
    return [(e["reason"], e.get("note", "")) for e in events if e["regarding"]["name"] == name]


def _job_names(batch: client.BatchV1Api, namespace: str) -> list[str]:
    return sorted(j.metadata.name for j in batch.list_namespaced_job(namespace).items)


def test_spot_job_resumes_after_preemptions_then_falls_back_and_succeeds(
    core: client.CoreV1Api,
    batch: client.BatchV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    group: str,
) -> None:
    spot_a = _node(core, group, "spot-a", spot=True)
    spot_b = _node(core, group, "spot-b", spot=True)
    on_demand = _node(core, group, "od", spot=False)
    _create(custom, namespace, _training_job("ft", group))

    first = eventually(lambda: _running_pod(core, namespace, 1), what="attempt 1 running")
    assert first.spec.node_name in (spot_a, spot_b)
    assert first.metadata.labels["steward.ai/capacity-type"] == "spot"
    assert _env(first)["STEWARD_CHECKPOINT_DIR"] == "/checkpoints/run"
    assert _env(first)["STEWARD_RESUME"] == "0"
    assert first.spec.containers[0].resources.limits["nvidia.com/gpu"] == "2"

    delete_node(core, first.spec.node_name)
    second = eventually(lambda: _running_pod(core, namespace, 2), what="attempt 2 running")
    assert second.metadata.name != first.metadata.name
    assert second.spec.node_name in (spot_a, spot_b)
    assert second.spec.node_name != first.spec.node_name
    assert _env(second)["STEWARD_CHECKPOINT_DIR"] == "/checkpoints/run"
    assert _env(second)["STEWARD_RESUME"] == "1"
    status = eventually(
        lambda: (s := _status(custom, namespace, "ft")).get("preemptions") == 1 and s,
        what="one preemption recorded",
    )
    assert status["capacityType"] == "Spot"

    delete_node(core, second.spec.node_name)  # the second preemption reaches maxPreemptions
    third = eventually(lambda: _running_pod(core, namespace, 3), what="attempt 3 running")
    assert third.spec.node_name == on_demand
    assert third.metadata.labels["steward.ai/capacity-type"] == "on-demand"

    final = eventually(
        lambda: (s := _status(custom, namespace, "ft")).get("phase") == "Succeeded" and s,
        timeout=90,
        what="Succeeded",
    )
    assert final["preemptions"] == 2
    assert final["restarts"] == 2
    assert final["attempt"] == 3
    assert final["capacityType"] == "OnDemand"
    assert final["lostGPUHours"] > 0
    assert _job_names(batch, namespace) == ["ft-1", "ft-2", "ft-3"]
    reasons = [reason for reason, _ in _events(core, namespace, "ft")]
    assert reasons.count("Preempted") == 2
    assert "FellBackToOnDemand" in reasons
    assert "Succeeded" in reasons


def test_job_falls_back_when_spot_capacity_does_not_come(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, group: str
) -> None:
    on_demand = _node(core, group, "od", spot=False)
    _create(custom, namespace, _training_job("waits", group, fallbackAfter="3s"))

    pod = eventually(lambda: _running_pod(core, namespace, 2), timeout=60, what="attempt 2")
    assert pod.spec.node_name == on_demand
    status = eventually(
        lambda: (s := _status(custom, namespace, "waits")).get("attempt") == 2 and s,
        what="status of attempt 2",
    )
    assert status["preemptions"] == 0
    assert status["capacityType"] == "OnDemand"
    notes = dict(_events(core, namespace, "waits"))
    assert "fallbackAfter" in notes["SpotUnavailable"]


def _service(name: str, group: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "pytorch"}, "storageUri": uri},
                "container": {"image": "example/server:1"},
                "minReplicas": 4,
                "maxReplicas": 4,
                "gpusPerReplica": 1,
                "nodeSelector": {GROUP_LABEL: group},
            },
            "capacity": {"onDemandBase": 1, "maxSpotPercent": 100},
        },
    }


def _serving_pods(core: client.CoreV1Api, namespace: str) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector="steward.ai/workload=chat").items
    return [p for p in pods if not p.metadata.deletion_timestamp]


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _ready_on(core: client.CoreV1Api, namespace: str, nodes: set[str]) -> int:
    return sum(1 for p in _serving_pods(core, namespace) if _ready(p) and p.spec.node_name in nodes)


def test_inference_service_keeps_its_base_through_the_loss_of_every_spot_node(
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    group: str,
) -> None:
    on_demand = {_node(core, group, "od", spot=False, gpus=4)}
    spots = [_node(core, group, f"spot-{i}", spot=True, gpus=2) for i in range(2)]
    _create(custom, namespace, _service("chat", group, "pvc://models/chat-v1"))

    eventually(lambda: _ready_on(core, namespace, set(spots)) == 3, what="3 replicas ready on spot")
    assert _ready_on(core, namespace, on_demand) == 1
    assert apps.read_namespaced_deployment("chat-od", namespace).spec.replicas == 1

    for spot in spots:
        delete_node(core, spot)
    lowest = 4

    def all_on_demand() -> bool:
        nonlocal lowest
        ready = _ready_on(core, namespace, on_demand)
        lowest = min(lowest, ready)
        return ready == 4

    eventually(all_on_demand, timeout=60, what="4 replicas ready on on-demand")
    assert lowest >= 1, "the on-demand base was lost"
    service = _get(custom, namespace, "inferenceservices", "chat")
    status = eventually(
        lambda: (
            (s := _get(custom, namespace, "inferenceservices", "chat")["status"])["spotReplicas"]
            == 0
            and s["readyReplicas"] == 4
            and s
        ),
        what="status: 4 ready, 0 on spot",
    )
    assert status["activeModel"]["storageUri"] == "pvc://models/chat-v1"
    assert any(r == "ScaledOnDemand" for r, _ in _events(core, namespace, "chat"))

    # A model change rolls without ever dropping below the base.
    service["spec"]["predictor"]["model"]["storageUri"] = "pvc://models/chat-v2"
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "inferenceservices", "chat", {"spec": service["spec"]}
    )
    lowest = 4

    def rolled() -> bool:
        nonlocal lowest
        lowest = min(lowest, _ready_on(core, namespace, on_demand))
        # The spot share's pods wait (Pending) for spot nodes; the on-demand share serves.
        pods = [p for p in _serving_pods(core, namespace) if p.spec.node_name in on_demand]
        new = [p for p in pods if _env(p)["STEWARD_MODEL_URI"] == "pvc://models/chat-v2"]
        return len(new) == 4 and all(_ready(p) for p in new) and len(pods) == 4

    eventually(rolled, timeout=90, what="rollout to chat-v2")
    assert lowest >= 1, "the rollout dropped below the on-demand base"


def test_operator_restart_repeats_nothing_and_loses_nothing(
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    batch: client.BatchV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    group: str,
    operator: Operator,
) -> None:
    spots = (_node(core, group, "spot-a", spot=True), _node(core, group, "spot-b", spot=True))
    _node(core, group, "od", spot=False)
    job = _training_job("steady", group)
    job["spec"]["template"]["metadata"]["annotations"]["steward.ai/run-time"] = "10m"
    _create(custom, namespace, job)
    service = _service("chat", group, "pvc://models/chat-v1")
    service["spec"]["capacity"]["maxSpotPercent"] = 0  # unaffected by the preemption below
    _create(custom, namespace, service)
    first = eventually(lambda: _running_pod(core, namespace, 1), what="attempt 1 running")
    assert first.spec.node_name in spots
    serving = eventually(lambda: _serving_state(apps, custom, namespace), what="service ready")

    operator.restart()
    assert _job_names(batch, namespace) == ["steady-1"]

    operator.kill()  # a preemption while the operator is down is caught up after restart
    delete_node(core, first.spec.node_name)
    operator.start()
    eventually(lambda: _running_pod(core, namespace, 2), what="attempt 2 running")
    before = eventually(
        lambda: (s := _status(custom, namespace, "steady")).get("attempt") == 2 and s,
        what="status of attempt 2",
    )
    assert before["preemptions"] == 1

    operator.restart()
    eventually(
        lambda: _status(custom, namespace, "steady").get("phase") == "Running",
        what="Running after restart",
    )
    after = _status(custom, namespace, "steady")
    assert _job_names(batch, namespace) == ["steady-1", "steady-2"]
    for field in ("preemptions", "restarts", "attempt", "capacityType", "lostGPUHours"):
        assert after[field] == before[field], field
    assert [r for r, _ in _events(core, namespace, "steady")].count("Preempted") == 1
    # The service's Deployments were neither duplicated nor changed by the restarts.
    assert _serving_state(apps, custom, namespace) == serving


def _serving_state(
    apps: client.AppsV1Api, custom: client.CustomObjectsApi, namespace: str
) -> tuple[Any, ...] | None:
    deployments = apps.list_namespaced_deployment(namespace).items
    status = _get(custom, namespace, "inferenceservices", "chat").get("status") or {}
    if status.get("readyReplicas") != 4:
        return None
    return (
        sorted((d.metadata.name, d.spec.replicas, d.metadata.generation) for d in deployments),
        status["activeModel"],
    )


def test_refused_spec_is_marked_and_creates_nothing(
    core: client.CoreV1Api,
    batch: client.BatchV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    group: str,
) -> None:
    job = _training_job("no-image", group)
    del job["spec"]["template"]["spec"]["containers"][0]["image"]
    _create(custom, namespace, job)

    def refused() -> dict[str, Any] | None:
        conditions = _status(custom, namespace, "no-image").get("conditions", [])
        valid = next((c for c in conditions if c["type"] == "Valid"), None)
        return valid if valid and valid["status"] == "False" else None

    valid = eventually(refused, what="Valid=False")
    assert valid["reason"] == "InvalidSpec"
    assert "spec.template.spec.containers[0].image" in valid["message"]
    notes = dict(_events(core, namespace, "no-image"))
    assert "spec.template.spec.containers[0].image" in notes["InvalidSpec"]
    assert _job_names(batch, namespace) == []

    with pytest.raises(client.ApiException) as refused_by_apiserver:
        _create(custom, namespace, {**job, "metadata": {"name": "zero"}, "spec": {
            **job["spec"], "workers": 0}})  # fmt: skip
    assert refused_by_apiserver.value.status == 422
    assert "spec.workers" in str(refused_by_apiserver.value.body)
