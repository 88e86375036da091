"""The CompressionJob's life, pure: runner Job creation, following it, reading its result,
status, and the promotion rule; and the runner Job's manifest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from steward.act.compression import runner_job_manifest
from steward.api.compression_result import TERMINATION_MESSAGE_BYTES, RunnerResult, encode
from steward.api.v1alpha1.compressionjob import CompressionJob, CompressionPhase, VariantResult
from steward.api.v1alpha1.inferenceservice import InferenceService
from steward.compress.command import compress
from steward.policy.compression_run import RESULT_GRACE, RunnerObservation, decide_compression

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _job(**spec: Any) -> CompressionJob:
    return CompressionJob.model_validate({
        "apiVersion": "steward.ai/v1alpha1", "kind": "CompressionJob",
        "metadata": {"name": "svc-cmp-1", "namespace": "ml", "uid": "u1"},
        "spec": {"source": {"storageUri": "pvc://models/mlp.pt", "format": "TorchSave"},
                 "target": "svc", "methods": ["DynamicInt8", "StructuredPruning"],
                 "evaluation": {"datasetUri": "pvc://data/eval.pt", "minSamples": 500,
                                "batchSizes": [1, 32]},
                 "outputUri": "pvc://models/out", "autoPromote": True, **spec},
    })  # fmt: skip


def _service(auto_promote: bool = True) -> InferenceService:
    return InferenceService.model_validate({
        "apiVersion": "steward.ai/v1alpha1", "kind": "InferenceService",
        "metadata": {"name": "svc", "namespace": "ml"},
        "spec": {"predictor": {"model": {"storageUri": "pvc://models/mlp.pt",
                                         "modelFormat": {"name": "pytorch"}},
                               "container": {"image": "example/serve:1"}},
                 "compression": {"autoPromote": auto_promote}},
    })  # fmt: skip


def _runner(condition: str | None = None, completed: datetime = NOW) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": "2026-11-23T11:50:00Z"}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True", "message": "boom"}]
        status["completionTime"] = completed.isoformat().replace("+00:00", "Z")
    return {"metadata": {"name": "svc-cmp-1-runner"}, "status": status}


def _variant(name: str, method: str | None, passed: bool, reasons: list[str] | None = None
             ) -> VariantResult:  # fmt: skip
    return VariantResult.model_validate({
        "name": name, "method": method, "sizeBytes": 100, "parameters": 10, "latencyP50Ms": 1,
        "latencyP95Ms": 2, "accuracy": 0.97, "accuracyDrop": 0.01, "passed": passed,
        "reasons": reasons or []})  # fmt: skip


PASSED = RunnerResult(variants=[_variant("original", None, True),
                                _variant("dynamicint8", "DynamicInt8", True)],
                      chosen_variant="dynamicint8", accepted=True,
                      artifact_uri="pvc://models/out/model.pt")  # fmt: skip
FAILED = RunnerResult(variants=[_variant("original", None, True),
                                _variant("structuredpruning", "StructuredPruning", False,
                                         ["accuracy drop 0.3 > maxAccuracyDrop 0.01"])],
                      accepted=False)  # fmt: skip


def _decide(job: CompressionJob, runner: dict[str, Any] | None, message: str | None = None,
            service: InferenceService | None = None, now: datetime = NOW):  # type: ignore[no-untyped-def]  # fmt: skip
    return decide_compression(RunnerObservation(job, runner, message, service, now))


def test_a_new_job_creates_its_runner_once_and_follows_it() -> None:
    plan = _decide(_job(), None)
    assert plan.create_runner
    assert (plan.status.phase, plan.status.job_name) == (CompressionPhase.PENDING,
                                                         "svc-cmp-1-runner")  # fmt: skip
    running = _decide(_job(), _runner())
    assert not running.create_runner
    assert running.status.phase == CompressionPhase.RUNNING


def test_a_passed_gate_promotes_a_service_that_allows_it() -> None:
    plan = _decide(_job(), _runner("Complete"), encode(PASSED), _service())
    status = plan.status
    assert (status.phase, status.accepted, status.promoted) == (CompressionPhase.SUCCEEDED,
                                                                True, True)  # fmt: skip
    assert status.chosen_variant == "dynamicint8"
    assert plan.promote is not None
    assert (plan.promote.variant, plan.promote.storage_uri, plan.promote.compression_job) == (
        "dynamicint8",
        "pvc://models/out/model.pt",
        "svc-cmp-1",
    )
    assert [n.reason for n in plan.notes] == ["GatePassed", "Promoted"]
    done = _job().model_copy(update={"status": status})
    assert _decide(done, _runner("Complete"), encode(PASSED), _service()).promote is None


def test_a_failed_gate_leaves_the_service_untouched_with_the_reasons() -> None:
    plan = _decide(_job(), _runner("Complete"), encode(FAILED), _service())
    assert plan.promote is None
    assert (plan.status.accepted, plan.status.promoted) == (False, False)
    accepted = next(c for c in plan.status.conditions if c.type == "Accepted")
    assert "structuredpruning: accuracy drop 0.3 > maxAccuracyDrop 0.01" in accepted.message
    assert plan.status.variants[1].reasons == ["accuracy drop 0.3 > maxAccuracyDrop 0.01"]


def test_promotion_needs_the_jobs_and_the_services_consent() -> None:
    refused = _decide(_job(), _runner("Complete"), encode(PASSED), _service(auto_promote=False))
    assert refused.promote is None
    promoted = next(c for c in refused.status.conditions if c.type == "Promoted")
    assert promoted.message == "InferenceService svc does not allow auto-promotion"
    off = _decide(_job(autoPromote=False), _runner("Complete"), encode(PASSED), _service())
    assert off.promote is None
    missing = _decide(_job(), _runner("Complete"), encode(PASSED), None)
    assert missing.promote is None


def test_a_failed_runner_or_a_missing_or_bad_result_fails_the_job() -> None:
    failed = _decide(_job(), _runner("Failed"))
    assert failed.status.phase == CompressionPhase.FAILED
    assert "failed: boom" in failed.notes[0].message
    waiting = _decide(_job(), _runner("Complete"), None)
    assert waiting.status.phase == CompressionPhase.RUNNING
    late = _decide(_job(), _runner("Complete"), None, now=NOW + RESULT_GRACE + timedelta(1))
    assert (late.status.phase, late.notes[0].reason) == (CompressionPhase.FAILED, "NoResult")
    bad = _decide(_job(), _runner("Complete"), '{"variants": "x"}')
    assert (bad.status.phase, bad.notes[0].reason) == (CompressionPhase.FAILED,
                                                       "ResultUnreadable")  # fmt: skip


def test_the_result_always_fits_a_termination_message() -> None:
    long = ["x" * 500] * 16
    result = RunnerResult(variants=[_variant(f"v{i}", "BF16", False, long) for i in range(12)],
                          accepted=False)  # fmt: skip
    text = encode(result)
    assert len(text.encode()) <= TERMINATION_MESSAGE_BYTES
    assert RunnerResult.model_validate_json(text).variants[0].reasons[0].startswith("x")


def test_the_runner_job_runs_steward_compress_with_the_spec_and_mounts_its_claims() -> None:
    job = _job(hardware={"target": "GPU", "gpuModel": "NVIDIA-H100-80GB-HBM3"},
               options={"trainDatasetUri": "pvc://data/train.pt"},
               podAnnotations={"a": "b"})  # fmt: skip
    parent = job.model_dump(mode="json", by_alias=True)
    manifest = runner_job_manifest(parent, job, "example/runner:1")
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "example/runner:1"
    args = container["args"]
    assert args[:2] == ["compress", "--model"]
    assert args[args.index("--methods") + 1] == "DynamicInt8,StructuredPruning"
    assert args[args.index("--train") + 1] == "pvc://data/train.pt"
    assert args[args.index("--result-file") + 1] == container["terminationMessagePath"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert sorted(v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]) == [
        "data",
        "models",
    ]
    assert manifest["spec"]["backoffLimit"] == 0
    assert manifest["spec"]["template"]["metadata"]["annotations"] == {"a": "b"}
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "u1"


def test_the_runner_compiles_only_when_the_evaluation_asks() -> None:
    evaluation = {"datasetUri": "pvc://data/eval.pt", "batchSizes": [1, 32]}
    for compile_, expected in ((False, False), (True, True)):
        job = _job(evaluation={**evaluation, "compile": compile_})
        manifest = runner_job_manifest(job.model_dump(mode="json", by_alias=True), job, "r:1")
        args = manifest["spec"]["template"]["spec"]["containers"][0]["args"]
        assert ("--compile" in args) is expected
        # Every argument is one `steward compress` takes.
        context = compress.make_context("compress", args[1:])
        assert context.params["compile_models"] is expected
