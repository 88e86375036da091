"""Compression triggers: which served models get a CompressionJob, when, and with what spec."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from steward.api.v1alpha1.common import PolicyMode
from steward.api.v1alpha1.compressionjob import CompressionJob, CompressionMethod, HardwareTarget
from steward.api.v1alpha1.inferenceservice import InferenceService
from steward.policy.compression import compression_request
from steward.policy.governor import Snapshot, decide
from tests.unit.test_governor import NOW, PRICES, _budget, _policy, _view

TRIGGERS = {
    "costPer1kRequestsAboveUSD": 0.4,
    "gpuUtilizationBelowPercent": 25,
    "methods": ["DynamicInt8", "Int8WeightOnly", "LowRank"],
    "maxAccuracyDrop": 0.02,
    "autoPromote": True,
    "cooldown": "1h",
}


def _service(
    *, cost: float | None = 0.1, utilization: float | None = 80, age: timedelta = timedelta(0),
    opt_in: bool = True,
) -> InferenceService:  # fmt: skip
    compression: dict[str, Any] = {
        "allowedMethods": ["DynamicInt8", "LowRank", "BF16"],
        "maxAccuracyDrop": 0.005,
        "autoPromote": True,
    }
    if opt_in:
        compression["sourceFormat"] = "TorchScript"
        compression["evaluation"] = {"datasetUri": "pvc://m/eval.pt", "minSamples": 100}
    status: dict[str, Any] = {"accountedUntil": (NOW - age).isoformat()}
    if cost is not None:
        status["costPer1kRequestsUSD"] = cost
    if utilization is not None:
        status["gpuUtilizationPercent"] = utilization
    return InferenceService.model_validate({
        "metadata": {"name": "s", "namespace": "team"},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "pytorch"}, "storageUri": "pvc://m/x/"},
                "container": {"image": "server:1"}, "gpuModel": "NVIDIA-L4",
            },
            "compression": compression,
        },
        "status": status,
    })  # fmt: skip


def _job(name: str, phase: str | None, age: timedelta, target: str = "s") -> CompressionJob:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "team",
                     "creationTimestamp": (NOW - age).isoformat()},
        "spec": {
            "source": {"storageUri": "pvc://m/x", "format": "TorchScript"},
            "target": target, "methods": ["DynamicInt8"],
            "evaluation": {"datasetUri": "pvc://m/eval.pt"}, "outputUri": "pvc://m/out",
        },
    }  # fmt: skip
    if phase is not None:
        body["status"] = {"phase": phase}
    return CompressionJob.model_validate(body)


def _request(
    service: InferenceService, jobs: tuple[CompressionJob, ...] = (), **triggers: Any
) -> Any:
    policy = _policy(compression=TRIGGERS | triggers)
    return compression_request(service, policy, budgets=[], jobs=list(jobs), now=NOW)


def test_a_costly_service_gets_a_job_with_the_methods_both_allow_and_the_stricter_gate() -> None:
    request = _request(_service(cost=0.55))
    assert request is not None
    assert request.name == "s-cmp-1"
    assert "cost per 1k requests 0.5500 USD above 0.4 USD" in request.summary
    spec = request.spec
    assert spec.methods == [CompressionMethod.DYNAMIC_INT8, CompressionMethod.LOW_RANK]
    assert spec.gate.max_accuracy_drop == 0.005  # the service's, stricter than the policy's
    assert spec.target == "s"
    assert spec.source.storage_uri == "pvc://m/x/"
    assert spec.output_uri == "pvc://m/x-compressed"
    assert (spec.hardware.target, spec.hardware.gpu_model) == (HardwareTarget.GPU, "NVIDIA-L4")
    assert spec.auto_promote


def test_an_idle_service_and_a_budget_state_fire_too() -> None:
    idle = _request(_service(utilization=12.5))
    assert idle is not None
    assert "GPU utilisation 12.5% below 25%" in idle.summary
    policy = _policy(compression={"budgetStateAtLeast": "Warning", "methods": ["DynamicInt8"]})
    budget = _budget(["Notify"])  # Exceeded
    request = compression_request(_service(), policy, budgets=[budget], jobs=[], now=NOW)
    assert request is not None
    assert "Budget b Exceeded" in request.summary


@pytest.mark.parametrize(
    ("service", "why"),
    [
        (_service(), "no trigger fires"),
        (_service(cost=None, utilization=None), "no figures"),
        (_service(cost=9, age=timedelta(hours=1)), "figures stale"),
        (_service(cost=9, opt_in=False), "the service does not opt in"),
    ],
)
def test_missing_stale_or_unasked_for_figures_start_nothing(
    service: InferenceService, why: str
) -> None:
    assert _request(service) is None, why


def test_no_common_method_starts_nothing() -> None:
    assert _request(_service(cost=9), methods=["Float8"]) is None


def test_a_running_job_or_the_cooldown_holds_the_next_one() -> None:
    costly = _service(cost=9)
    assert _request(costly, (_job("s-cmp-1", "Running", timedelta(hours=5)),)) is None
    assert _request(costly, (_job("s-cmp-1", None, timedelta(hours=5)),)) is None
    assert _request(costly, (_job("s-cmp-1", "Failed", timedelta(minutes=30)),)) is None
    jobs = (_job("s-cmp-1", "Succeeded", timedelta(hours=5)),
            _job("s-cmp-4", "Failed", timedelta(hours=2)),
            _job("other-cmp-9", "Running", timedelta(0), target="other"))  # fmt: skip
    request = _request(costly, jobs)
    assert request is not None
    assert request.name == "s-cmp-5"


def test_decide_plans_compressions_except_on_stale_budget_data() -> None:
    costly = _service(cost=9)
    policies = [_policy(compression=TRIGGERS)]
    snapshot = Snapshot((), (_view(costly),), PRICES)
    [request] = decide(snapshot, policies, NOW).compressions
    assert (request.name, request.mode) == ("s-cmp-1", PolicyMode.ENFORCE)
    stale = Snapshot((_budget([], stale=True),), (_view(costly),), PRICES)
    assert decide(stale, policies, NOW).compressions == ()
    dry = decide(snapshot, [_policy("DryRun", compression=TRIGGERS)], NOW)
    assert dry.compressions[0].mode == PolicyMode.DRY_RUN
