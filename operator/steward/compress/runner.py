"""One compression run: load, build every method's variant, measure all on the target hardware,
judge, and write ``report.json`` and the chosen variant (``model.pt``) to the output folder.

The report is the contract with the CompressionJob controller: the controller copies its
``variants``, ``chosenVariant``, ``accepted`` into the CompressionJob's status.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from steward.api.compression_result import RunnerResult
from steward.api.v1alpha1.compressionjob import CompressionMethod, Gate, VariantResult
from steward.compress.data import Dataset
from steward.compress.gate import Measurement, Verdict, judge, with_cost
from steward.compress.measure import Evaluation, Subject, Timing, measure_all
from steward.compress.methods import Context, Hardware, Skipped, build

ORIGINAL = "original"
#: Where ``pvc://<claim>/<path>`` URIs are mounted in the runner's container.
PVC_ROOT_ENV = "STEWARD_PVC_ROOT"


@dataclass(frozen=True)
class Request:
    """What to compress and how to judge it."""

    model: nn.Module
    methods: Sequence[CompressionMethod]
    evaluation: Evaluation
    gate: Gate
    min_samples: int
    output: Path
    timing: Timing = field(default_factory=Timing)
    hardware: Hardware = field(default_factory=Hardware)
    train: Dataset | None = None
    options: dict[str, Any] = field(default_factory=dict)
    usd_per_hour: float = 1.0


def local_path(uri: str) -> Path:
    """A local path or ``pvc://<claim>/<path>`` (under ``$STEWARD_PVC_ROOT``, default /pvc)."""
    if uri.startswith("pvc://"):
        return Path(os.environ.get(PVC_ROOT_ENV, "/pvc")) / uri.removeprefix("pvc://")
    if "://" in uri:
        raise ValueError(f"{uri}: only local paths and pvc:// URIs are supported yet")
    return Path(uri)


def run(request: Request, report: Callable[[str], None] = lambda _line: None) -> dict[str, Any]:
    """Run the request; return the report (also written as ``report.json``).

    Every variant is built first, then all are measured together with the original
    (:func:`~steward.compress.measure.measure_all`: latency round-robin, so the gate compares
    models timed under the same load).
    """
    device = request.hardware.device
    context = Context(request.hardware, request.train, request.options)
    methods = {method.value.lower(): method for method in request.methods}
    built: dict[str, nn.Module] = {}
    skipped: dict[str, Measurement] = {}
    for name, method in methods.items():
        try:
            built[name] = build(method, request.model, context)
        except Skipped as why:
            skipped[name] = Measurement(name, method.value, 0, 0, 0.0, 0.0, 0.0, 0, 0,
                                        skipped=str(why))  # fmt: skip
            report(f"{name}: skipped: {why}")
    subjects = [Subject(ORIGINAL, None, request.model.to(device))]
    subjects += [Subject(name, methods[name].value, model) for name, model in built.items()]
    measured = {
        m.name: with_cost(m, request.usd_per_hour)
        for m in measure_all(subjects, request.evaluation, request.timing, device=device)
    }
    original = measured[ORIGINAL]
    for m in measured.values():
        report(f"{m.name}: accuracy {m.accuracy:.4f}, p95 {m.latency_p95_ms:.3f} ms"
               f"{_timed(m)}, {m.size_bytes} bytes")  # fmt: skip
    variants = [measured.get(name) or skipped[name] for name in methods]
    verdicts, chosen = judge(original, variants, request.gate, request.min_samples)
    result = _report(original, verdicts, chosen, request)
    request.output.mkdir(parents=True, exist_ok=True)
    if chosen is not None:
        artifact, kind = _save(built[chosen.measurement.name], request.output)
        result["artifactUri"], result["artifactFormat"] = str(artifact), kind
    (request.output / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _timed(measured: Measurement) -> str:
    return {None: "", True: " (compiled)", False: " (eager: compiling failed)"}[measured.compiled]


def runner_result(report: dict[str, Any]) -> RunnerResult:
    """The report as the controller reads it (the CompressionJob status' variant rows)."""
    variants = [
        VariantResult.model_validate(
            {
                "name": row["name"], "method": row["method"], "sizeBytes": row["sizeBytes"],
                "parameters": row["parameters"], "latencyP50Ms": row["latencyP50Ms"],
                "latencyP95Ms": row["latencyP95Ms"], "accuracy": row["accuracy"],
                "accuracyDrop": row["accuracyDrop"] or 0.0,
                "costPer1kRequestsUSD": row["costPer1kRequestsUSD"],
                "compiled": row["compiled"],
                "passed": row["passed"], "reasons": row["reasons"],
            }
        )
        for row in report["variants"]
    ]  # fmt: skip
    return RunnerResult(
        variants=variants,
        chosen_variant=report["chosenVariant"],
        accepted=report["accepted"],
        artifact_uri=report["artifactUri"],
    )


def _save(model: nn.Module, folder: Path) -> tuple[Path, str]:
    """Save the whole module (``model.pt``, TorchSave); modules that cannot be pickled whole
    (torchao's quantized tensors hold functions) as their state dict (``model.state_dict.pt``,
    loaded by applying the same method to the original architecture)."""
    whole = folder / "model.pt"
    try:
        torch.save(model, whole)
    except (AttributeError, TypeError, RuntimeError, pickle.PicklingError):
        whole.unlink(missing_ok=True)
        state = folder / "model.state_dict.pt"
        torch.save(model.state_dict(), state)
        return state, "StateDict"
    return whole, "TorchSave"


def _report(
    original: Measurement, verdicts: list[Verdict], chosen: Verdict | None, request: Request
) -> dict[str, Any]:
    """The report: every measurement with its verdict, in the CompressionJob status' shape."""
    rows = [_row(original, 0.0, passed=True, reasons=())]
    rows += [_row(v.measurement, None if v.measurement.skipped else v.accuracy_drop,
                  passed=v.passed, reasons=v.reasons, objective=v.objective)
             for v in verdicts]  # fmt: skip
    return {
        "hardware": asdict(request.hardware),
        "gate": request.gate.model_dump(mode="json", by_alias=True),
        "timing": asdict(request.timing),
        "minSamples": request.min_samples,
        "usdPerHour": request.usd_per_hour,
        "variants": rows,
        "chosenVariant": chosen.measurement.name if chosen else None,
        "accepted": chosen is not None,
        "artifactUri": None,
        "artifactFormat": None,
    }


def _row(m: Measurement, drop: float | None, *, passed: bool, reasons: Sequence[str],
         objective: float | None = None) -> dict[str, Any]:  # fmt: skip
    low, high = m.interval
    return {
        "name": m.name,
        "method": m.method,
        "sizeBytes": m.size_bytes,
        "parameters": m.parameters,
        "latencyP50Ms": round(m.latency_p50_ms, 4),
        "latencyP95Ms": round(m.latency_p95_ms, 4),
        "latencyByBatch": {
            str(batch): {"p50Ms": round(p50, 4), "p95Ms": round(p95, 4)}
            for batch, (p50, p95) in sorted(m.latency_by_batch.items())
        },
        "throughputPerSecond": round(m.throughput_per_s, 2),
        "accuracy": round(m.accuracy, 6),
        "accuracyInterval95": [round(low, 6), round(high, 6)],
        "samples": m.samples,
        "accuracyDrop": None if drop is None else round(drop, 6),
        "costPer1kRequestsUSD": m.cost_per_1k_requests_usd,
        "compiled": m.compiled,
        "objective": objective,
        "passed": passed,
        "reasons": list(reasons),
    }
