"""The compression runner on CPU with real models trained here on scikit-learn's offline data
sets: every method makes a measured variant (or says why not), a destructive setting fails the
gate, and the chosen variant is the J-optimal passing one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="the compress extra (torch) is not installed")
datasets = pytest.importorskip("sklearn.datasets")

from click.testing import CliRunner  # noqa: E402
from torch import nn  # noqa: E402

from steward.api.v1alpha1.compressionjob import CompressionMethod, Gate  # noqa: E402
from steward.cli import main  # noqa: E402
from steward.compress.data import Dataset  # noqa: E402
from steward.compress.measure import (  # noqa: E402
    CompiledEntry,
    Subject,
    Timing,
    compiled_copy,
    measure,
    measure_all,
)
from steward.compress.runner import Request, run  # noqa: E402

GATE = Gate.model_validate({"maxAccuracyDrop": 0.02, "maxLatencyRatio": 1.5,
                            "weights": {"alpha": 10.0, "beta": 1000.0}})  # fmt: skip
TIMING = Timing(batch_sizes=(1, 64), warmup=3, iterations=15)


def _split(inputs: Any, labels: Any, test_every: int = 3) -> tuple[Dataset, Dataset]:
    x = torch.tensor(inputs, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = torch.tensor(labels, dtype=torch.long)
    test = torch.arange(len(y)) % test_every == 0
    return Dataset(x[~test], y[~test]), Dataset(x[test], y[test])


def _train(model: nn.Module, data: Dataset, epochs: int = 60) -> nn.Module:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(data)).split(64):
            loss = nn.functional.cross_entropy(model(data.inputs[batch]), data.labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def digits() -> tuple[nn.Module, Dataset, Dataset]:
    """A 64-512-256-10 MLP on the digits (1,797 8x8 images): ~0.97 accuracy in seconds."""
    loaded = datasets.load_digits()
    train, test = _split(loaded.data, loaded.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                          nn.Linear(256, 10))  # fmt: skip
    return _train(model, train), train, test


def _request(model: nn.Module, train: Dataset, test: Dataset, tmp_path: Path,
             methods: list[CompressionMethod], **options: Any) -> Request:  # fmt: skip
    return Request(model=model, methods=methods, evaluation=test, gate=GATE, min_samples=500,
                   output=tmp_path, timing=TIMING, train=train, options=options,
                   usd_per_hour=2.0)  # fmt: skip


def test_every_cpu_method_yields_a_measured_variant_or_a_reason(
    digits: tuple[nn.Module, Dataset, Dataset], tmp_path: Path
) -> None:
    model, train, test = digits
    methods = list(CompressionMethod)
    report = run(_request(model, train, test, tmp_path, methods, distillEpochs=40))
    rows = {row["name"]: row for row in report["variants"]}
    original = rows["original"]
    assert original["accuracy"] > 0.95
    assert original["samples"] == len(test) >= 500
    skipped = {name for name, row in rows.items() if row["reasons"][:1]
               and row["reasons"][0].startswith("skipped")}  # fmt: skip
    # GPU-only methods say so on a CPU.
    assert {"int4weightonly", "float8", "semistructured24", "fp16"} <= skipped
    for name in ("dynamicint8", "bf16", "structuredpruning", "lowrank", "distillation"):
        row = rows[name]
        assert row["sizeBytes"] > 0, name
        assert row["latencyP95Ms"] > 0, name
        assert 0 <= row["accuracy"] <= 1, name
        low, high = row["accuracyInterval95"]
        assert low <= row["accuracy"] <= high
    # Methods that shrink the model do: int8 weights, removed hidden units, factored layers, a
    # narrower student.
    for name in ("dynamicint8", "structuredpruning", "lowrank", "distillation"):
        assert rows[name]["sizeBytes"] < original["sizeBytes"], name
    assert rows["distillation"]["parameters"] < original["parameters"] / 2
    assert rows["dynamicint8"]["accuracy"] >= original["accuracy"] - 0.02
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["variants"] == report["variants"]


def test_destructive_pruning_without_fine_tuning_fails_the_gate(
    digits: tuple[nn.Module, Dataset, Dataset], tmp_path: Path
) -> None:
    model, train, test = digits
    request = _request(model, train, test, tmp_path, [CompressionMethod.STRUCTURED_PRUNING],
                       pruneFraction=0.97)  # fmt: skip
    report = run(request)
    pruned = report["variants"][1]
    assert not pruned["passed"]
    assert "maxAccuracyDrop" in pruned["reasons"][0]
    assert report["chosenVariant"] is None
    assert report["accepted"] is False
    assert not (tmp_path / "model.pt").exists()


def test_the_chosen_variant_is_the_j_optimal_passing_one(
    digits: tuple[nn.Module, Dataset, Dataset], tmp_path: Path
) -> None:
    model, train, test = digits
    methods = [CompressionMethod.DYNAMIC_INT8, CompressionMethod.LOW_RANK,
               CompressionMethod.STRUCTURED_PRUNING, CompressionMethod.BF16]  # fmt: skip
    report = run(_request(model, train, test, tmp_path, methods, energyRetained=0.95,
                          pruneFraction=0.5, fineTuneEpochs=5))  # fmt: skip
    passing = [row for row in report["variants"][1:] if row["passed"]]
    assert passing, report["variants"]
    best = min(passing, key=lambda row: row["objective"])
    assert report["chosenVariant"] == best["name"]
    for row in passing:  # J recomputed from the report's own figures
        expected = 10.0 * row["accuracyDrop"] + 1000.0 * row["costPer1kRequestsUSD"]
        assert row["objective"] == pytest.approx(expected, abs=1e-5)  # drop rounded to 1e-6
    chosen = torch.load(tmp_path / "model.pt", weights_only=False)
    assert chosen(test.inputs[:4]).shape == (4, 10)


def test_breast_cancer_with_fine_tuned_pruning_keeps_its_accuracy(tmp_path: Path) -> None:
    loaded = datasets.load_breast_cancer()
    train, test = _split(loaded.data, loaded.target, test_every=2)
    torch.manual_seed(0)
    model = _train(nn.Sequential(nn.Linear(30, 256), nn.ReLU(), nn.Linear(256, 2)), train)
    request = Request(model=model, methods=[CompressionMethod.STRUCTURED_PRUNING],
                      evaluation=test, gate=GATE, min_samples=200, output=tmp_path,
                      timing=TIMING, train=train,
                      options={"pruneFraction": 0.75, "fineTuneEpochs": 20})  # fmt: skip
    report = run(request)
    original, pruned = report["variants"]
    assert pruned["parameters"] < original["parameters"] / 3
    assert pruned["accuracy"] >= original["accuracy"] - 0.02


def _command(model: nn.Module, test: Dataset, tmp_path: Path, methods: str) -> list[str]:
    """``steward compress`` arguments for ``model`` and ``test`` saved under ``tmp_path``."""
    torch.save(model, tmp_path / "model.pt")
    torch.save({"inputs": test.inputs, "labels": test.labels}, tmp_path / "eval.pt")
    return ["compress", "--model", str(tmp_path / "model.pt"), "--format", "TorchSave",
            "--methods", methods, "--eval", str(tmp_path / "eval.pt"),
            "--out", str(tmp_path / "out"), "--batch-sizes", "1,32",
            "--max-latency-ratio", "10"]  # fmt: skip


def test_the_command_line_runs_a_saved_model_and_names_a_bad_input(
    digits: tuple[nn.Module, Dataset, Dataset], tmp_path: Path
) -> None:
    model, _, test = digits
    args = _command(model, test, tmp_path, "DynamicInt8,Float8")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {"chosenVariant": "dynamicint8", "accepted": True}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["variants"][2]["reasons"] == [
        "skipped: torchao Float8DynamicActivationFloat8WeightConfig needs a CUDA GPU"
    ]
    for row in report["variants"][:2]:  # every batch size's figures; the largest gates
        assert sorted(row["latencyByBatch"], key=int) == ["1", "32"]
        assert row["latencyByBatch"]["32"]["p95Ms"] == row["latencyP95Ms"]
    bad = CliRunner().invoke(main, [*args[:-6], "--eval", str(tmp_path / "model.pt"),
                                    "--out", str(tmp_path / "out2")])  # fmt: skip
    assert bad.exit_code == 1
    assert "needs 'inputs' and 'labels'" in bad.output


def test_compiled_timing_times_compiled_copies_and_saves_the_plain_variant(
    digits: tuple[nn.Module, Dataset, Dataset], tmp_path: Path
) -> None:
    model, _, test = digits
    args = [*_command(model, test, tmp_path, "DynamicInt8,Int8Dynamic"), "--compile",
            "--result-file", str(tmp_path / "result.json")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["timing"]["compile"] is True
    assert [row["compiled"] for row in report["variants"]] == [True, True, True]
    assert "(compiled)" in result.stderr
    # What is saved is the variant, not its compiled copy (torchao's as a state dict): the
    # original's layer names, not a wrapper's ("model.0.weight").
    saved = torch.load(report["artifactUri"], weights_only=False)
    state = saved if report["artifactFormat"] == "StateDict" else saved.state_dict()
    assert not isinstance(saved, CompiledEntry)
    assert {key.split(".")[0] for key in state} <= {"0", "2", "4"}
    status = json.loads((tmp_path / "result.json").read_text())
    assert all(v["compiled"] is True for v in status["variants"])


def test_a_model_that_cannot_be_compiled_is_timed_eagerly_and_says_so(
    digits: tuple[nn.Module, Dataset, Dataset],
) -> None:
    # A runner image without a C++ compiler: inductor cannot build its CPU kernels. (A model
    # of its own: kernels compiled earlier in this process would be reused without one.)
    import torch._inductor.config as inductor  # noqa: PLC0415

    _, _, test = digits
    model = nn.Sequential(nn.Linear(64, 37), nn.Tanh(), nn.Linear(37, 10)).eval()
    timing = Timing(batch_sizes=(8,), warmup=1, iterations=3, compile=True)
    with inductor.patch({"cpp.cxx": ("/nonexistent/g++",), "fx_graph_cache": False}):
        measured = measure("original", None, model, test, timing)
    assert measured.compiled is False
    assert measured.latency_p50_ms > 0
    assert measured.correct == measure("original", None, model, test, TIMING).correct


def test_a_compiled_copy_leaves_the_model_alone_and_computes_the_same() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    copied = compiled_copy(model)
    other = compiled_copy(model)
    inputs = torch.randn(4, 8)
    with torch.inference_mode():
        assert torch.allclose(copied(inputs), model(inputs), atol=1e-6)
    assert copied.model is not model  # the original is saved, so it stays plain
    assert model._compiled_call_impl is None
    # Every copy compiles through code of its own (dynamo caches per code object).
    assert copied.function.__code__ is not other.function.__code__

    class Encoder(nn.Sequential):  # a sentence-transformers model: encode() calls forward()
        def encode(self, inputs: Any) -> Any:
            return self.forward(inputs)

    stages = compiled_copy(Encoder(nn.Linear(8, 8), nn.Linear(8, 2)))
    assert stages._compiled_call_impl is None
    assert all(part._compiled_call_impl is not None for part in stages.children())


class _Machine:
    """A machine that slows down: passes after the first ``fast`` take 4 ms instead of 1."""

    def __init__(self, fast: int) -> None:
        self.fast, self.passes = fast, 0


class _Sleeper(nn.Module):
    def __init__(self, machine: _Machine) -> None:
        super().__init__()
        self.machine = machine

    def forward(self, inputs: Any) -> Any:
        self.machine.passes += 1
        time.sleep(0.001 if self.machine.passes <= self.machine.fast else 0.004)
        return inputs


def test_models_are_timed_round_robin_so_a_slowdown_hits_all_alike(
    digits: tuple[nn.Module, Dataset, Dataset],
) -> None:
    # Two identical models; after both warm-ups and 20 of the 60 timed passes (and the 4
    # untimed ones opening their blocks) the machine slows down. Timed one after the other,
    # the first would look 4x faster than the second; round-robin, each gets 10 fast passes
    # and 20 slow ones: the same median.
    _, _, test = digits
    machine = _Machine(fast=2 + 20 + 4)
    subjects = [Subject(name, None, _Sleeper(machine)) for name in ("a", "b")]
    timing = Timing(batch_sizes=(1,), warmup=1, iterations=30)
    a, b = measure_all(subjects, test, timing)
    assert a.latency_p50_ms >= 3.5
    assert b.latency_p50_ms >= 3.5
    assert 0.8 < a.latency_p50_ms / b.latency_p50_ms < 1.25


def test_models_load_from_torchscript_torch_save_and_a_state_dict(tmp_path: Path) -> None:
    from steward.api.v1alpha1.compressionjob import ModelFormat  # noqa: PLC0415
    from steward.compress.models import ModelError, load_model  # noqa: PLC0415

    torch.manual_seed(0)
    layer = nn.Linear(8, 3)
    inputs = torch.randn(5, 8)
    torch.jit.save(torch.jit.script(layer), str(tmp_path / "scripted.pt"))
    torch.save(layer, tmp_path / "whole.pt")
    torch.save(layer.state_dict(), tmp_path / "state.pt")
    loaded = [
        load_model(tmp_path / "scripted.pt", ModelFormat.TORCH_SCRIPT),
        load_model(tmp_path / "whole.pt", ModelFormat.TORCH_SAVE),
        load_model(
            tmp_path / "state.pt",
            ModelFormat.STATE_DICT,
            "torch.nn:Linear",
            {"in_features": 8, "out_features": 3},
        ),
    ]
    for model in loaded:
        assert torch.equal(model(inputs), layer(inputs))
        assert not model.training
    with pytest.raises(ModelError, match="needs its architecture"):
        load_model(tmp_path / "state.pt", ModelFormat.STATE_DICT)
    with pytest.raises(ModelError, match="cannot load as TorchScript"):
        load_model(tmp_path / "state.pt", ModelFormat.TORCH_SCRIPT)
