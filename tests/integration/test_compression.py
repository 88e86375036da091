"""CompressionJobs on the local cluster: the operator runs the runner as a batch/v1 Job, reads
its result, fills the status, and promotes the target InferenceService only when the gate
passed and both sides allow it; a promoted variant that then breaks the service's latency SLO,
as measured from Prometheus, is rolled back.

How the runner runs here: kwok simulates the Job's pod (it has no container runtime), so the
test harness runs the real runner in-process on the same inputs (a digits MLP trained here) and
hands what the runner writes to its termination-message file to kwok, which reports it in the
pod's status as the kubelet would (the dev cluster's `pod-complete` Stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from steward.api.constants import GROUP, LABEL_COMPRESSION_JOB, LABEL_VARIANT, VERSION
from steward.devcluster.gpusim import SERVING_LATENCY_ANNOTATION, SERVING_RPS_ANNOTATION
from steward.devcluster.nodes import GPUNode, add_node
from tests.integration.conftest import eventually
from tests.integration.test_accounting import GROUP_LABEL, _events, _namespace, custom, tag

torch = pytest.importorskip("torch", reason="the compress extra (torch) is not installed")
datasets = pytest.importorskip("sklearn.datasets")

from torch import nn  # noqa: E402

from steward.api.compression_result import encode  # noqa: E402
from steward.api.v1alpha1.compressionjob import CompressionMethod, Gate  # noqa: E402
from steward.compress.measure import Timing  # noqa: E402
from steward.compress.runner import Request, run, runner_result  # noqa: E402

__all__ = ["custom", "tag"]  # fixtures
pytestmark = pytest.mark.usefixtures("operator")
MESSAGE_ANNOTATION = "steward.ai/termination-message"


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits MLP and its evaluation set, saved as a user would hand them to Steward."""
    folder = tmp_path_factory.mktemp("model")
    loaded = datasets.load_digits()
    x = torch.tensor(loaded.data, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = torch.tensor(loaded.target)
    test = torch.arange(len(y)) % 3 == 0
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        for batch in torch.randperm(int((~test).sum()), generator=generator).split(64):
            inputs, labels = x[~test][batch], y[~test][batch]
            loss = nn.functional.cross_entropy(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.save(model.eval(), folder / "model.pt")
    torch.save({"inputs": x[test], "labels": y[test]}, folder / "eval.pt")
    return folder


def _service(name: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "pytorch"}, "storageUri": uri},
                               "container": {"image": "example/server:1"},
                               "minReplicas": 1, "maxReplicas": 1, "gpusPerReplica": 1},
                 "capacity": {"onDemandBase": 1},
                 "slo": {"latencyP95Ms": 200},
                 "compression": {"autoPromote": True}},
    }  # fmt: skip


def _compression_job(name: str, folder: Path, out: Path, methods: list[str],
                     **options: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CompressionJob",
        "metadata": {"name": name},
        "spec": {"source": {"storageUri": str(folder / "model.pt"), "format": "TorchSave"},
                 "target": "svc", "methods": methods, "autoPromote": True,
                 "evaluation": {"datasetUri": str(folder / "eval.pt"), "minSamples": 500,
                                "batchSizes": [1, 32]},
                 "gate": {"maxAccuracyDrop": 0.02, "maxLatencyRatio": 5.0},
                 "outputUri": str(out), "options": options,
                 "podAnnotations": {"steward.ai/run-time": "15s"}},
    }  # fmt: skip


def _run_in_process(job: dict[str, Any]) -> str:
    """What the runner in the Job's container writes to its termination-message file."""
    from steward.api.v1alpha1.compressionjob import ModelFormat  # noqa: PLC0415
    from steward.compress.data import load_dataset  # noqa: PLC0415
    from steward.compress.models import load_model  # noqa: PLC0415

    spec = job["spec"]
    gate = Gate.model_validate(spec["gate"])
    report = run(Request(
        model=load_model(Path(spec["source"]["storageUri"]), ModelFormat.TORCH_SAVE),
        methods=[CompressionMethod(m) for m in spec["methods"]],
        evaluation=load_dataset(Path(spec["evaluation"]["datasetUri"])), gate=gate,
        min_samples=spec["evaluation"]["minSamples"], output=Path(spec["outputUri"]),
        timing=Timing(batch_sizes=tuple(spec["evaluation"]["batchSizes"]), iterations=10),
        options=spec["options"],
    ))  # fmt: skip
    return encode(runner_result(report))


def _runner_pod(core: client.CoreV1Api, namespace: str, job: str) -> Any:
    pods = core.list_namespaced_pod(namespace, label_selector=f"{LABEL_COMPRESSION_JOB}={job}")
    running = [p for p in pods.items if p.status.phase == "Running"]
    return running[0] if running else None


def _status(custom: client.CustomObjectsApi, namespace: str, plural: str, name: str) -> Any:
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    return obj.get("status") or {}


def _simulate(core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str,
              job: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Create the job; run the runner while kwok runs its pod; return the final status."""
    name = job["metadata"]["name"]
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "compressionjobs", job)
    pod = eventually(lambda: _runner_pod(core, namespace, name), timeout=60,
                     what="the runner's pod running")  # fmt: skip
    assert pod.spec.containers[0].args[:2] == ["compress", "--model"]
    phase = _status(custom, namespace, "compressionjobs", name).get("phase")
    assert phase in ("Pending", "Running")
    message = _run_in_process(job)
    patch = {"metadata": {"annotations": {MESSAGE_ANNOTATION: message}}}
    core.patch_namespaced_pod(pod.metadata.name, namespace, patch)
    return eventually(
        lambda: (s := _status(custom, namespace, "compressionjobs", name)).get("phase")
        in ("Succeeded", "Failed") and s, timeout=90, what=f"{name} finished",
    )  # fmt: skip


def test_a_passing_gate_promotes_the_service_and_a_failing_one_leaves_it_alone(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, tag: str, model_files: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    team = _namespace(core, f"cmp-{tag}", tag)
    add_node(core, GPUNode(f"cmp-{tag}", labels={GROUP_LABEL: tag}))
    original = str(model_files / "model.pt")
    custom.create_namespaced_custom_object(GROUP, VERSION, team, "inferenceservices",
                                           _service("svc", original))  # fmt: skip
    apps = client.AppsV1Api(core.api_client)

    def model_uri() -> str | None:
        deployments = apps.list_namespaced_deployment(team).items
        env = {e.name: e.value for d in deployments
               for e in d.spec.template.spec.containers[0].env or []}  # fmt: skip
        return env.get("STEWARD_MODEL_URI")

    assert eventually(model_uri, timeout=60, what="the service's Deployment") == original

    # A destructive setting fails the gate: the service keeps its model, the reasons say why.
    destructive = _compression_job("svc-cmp-1", model_files, tmp_path / "out-1",
                                   ["StructuredPruning"], pruneFraction=0.97)  # fmt: skip
    failed = _simulate(core, custom, team, destructive)
    assert (failed["phase"], failed["accepted"], failed["promoted"]) == ("Succeeded", False, False)
    pruned = next(v for v in failed["variants"] if v["name"] == "structuredpruning")
    assert not pruned["passed"]
    assert "maxAccuracyDrop" in pruned["reasons"][0]
    service = _status(custom, team, "inferenceservices", "svc")
    assert service["activeModel"]["variant"] == "original"
    assert model_uri() == original

    # Dynamic int8 and fine pruning: one passes, the service is rolled to it.
    passed = _simulate(core, custom, team, _compression_job(
        "svc-cmp-2", model_files, tmp_path / "out-2", ["DynamicInt8", "StructuredPruning"],
        pruneFraction=0.25))  # fmt: skip
    assert (passed["phase"], passed["accepted"], passed["promoted"]) == ("Succeeded", True, True)
    chosen = passed["chosenVariant"]
    assert chosen in ("dynamicint8", "structuredpruning")
    assert passed["artifactUri"] == str(tmp_path / "out-2" / "model.pt")
    assert (tmp_path / "out-2" / "model.pt").is_file()
    eventually(lambda: _status(custom, team, "inferenceservices", "svc")["activeModel"]
               ["variant"] == chosen, timeout=30, what="the service's active model")  # fmt: skip
    assert eventually(lambda: model_uri() == passed["artifactUri"], timeout=60,
                      what="the Deployment rolled to the compressed model")  # fmt: skip
    active = _status(custom, team, "inferenceservices", "svc")["activeModel"]
    assert active["compressionJob"] == "svc-cmp-2"

    # The world's part: the variant serves 50 requests/s at 400 ms each (the simulated serving
    # metrics), over the 200 ms p95 SLO; the accounting measures it, the service goes back.
    def slow_variant() -> bool:
        # The variant's pods are found by their variant label (which the accounting reads).
        listed = core.list_namespaced_pod(team, label_selector=f"{LABEL_VARIANT}={chosen}").items
        pods = [p for p in listed if p.status.phase == "Running"]
        assert all(_model_of(p) == passed["artifactUri"] for p in pods)
        serving = {SERVING_RPS_ANNOTATION: "50", SERVING_LATENCY_ANNOTATION: "400"}
        for pod in pods:
            core.patch_namespaced_pod(pod.metadata.name, team,
                                      {"metadata": {"annotations": serving}})  # fmt: skip
        return bool(pods)

    eventually(slow_variant, timeout=60, what="the variant's pods running")
    rolled = eventually(
        lambda: (s := _status(custom, team, "inferenceservices", "svc"))["activeModel"]["variant"]
        == "original" and s, timeout=120, what="the rollback",
    )  # fmt: skip
    # Every request in the (0.25 s, 0.5 s] bucket: histogram_quantile's p95 is 487.5 ms.
    assert rolled["latency"]["p95Ms"] == 487.5
    assert rolled["latency"]["requests"] >= 100
    [row] = rolled["latency"]["variants"]  # only the variant's pods served
    assert (row["variant"], row["p95Ms"]) == (chosen, 487.5)
    assert rolled["activeModel"]["storageUri"] == original
    condition = next(c for c in rolled["conditions"] if c["type"] == "RolledBack")
    assert (condition["status"], condition["reason"]) == ("True", "LatencySLOBreached")
    notes = [n for r, n in _events(core, "svc") if r == "RolledBack"]
    assert len(notes) == 1
    assert f"served by variant {chosen}'s pods" in notes[0]
    assert "above the SLO's 200 ms" in notes[0]
    assert eventually(lambda: model_uri() == original, timeout=60,
                      what="the Deployment rolled back to the original model")  # fmt: skip


def _model_of(pod: Any) -> str | None:
    env = {e.name: e.value for e in pod.spec.containers[0].env or []}
    return env.get("STEWARD_MODEL_URI")
