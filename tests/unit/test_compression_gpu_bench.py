"""The GPU compression benchmark's own code, run small on the CPU (CI has no GPU): the models
have the parameters their shapes say, every method gives a row (measured, or why not), and
without CUDA the GPU run says so and measures nothing."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

torch = pytest.importorskip("torch", reason="the compress extra (torch) is not installed")

from steward.compress.methods import two_of_four  # noqa: E402

BENCH = Path(__file__).resolve().parents[2] / "bench" / "compression_gpu.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compression_gpu", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compression_gpu"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_the_models_have_the_parameters_their_shapes_say(bench: ModuleType) -> None:
    for shape in bench.TINY.values():
        model = bench.Transformer(shape)
        assert sum(p.numel() for p in model.parameters()) == bench.parameters(shape)
    assert bench.parameters(bench.MODELS["decoder-1.1b"]) > 1_000_000_000
    # MiniLM-L6: 22.7 M parameters, 11.7 M of them its word embeddings (outside the timed part).
    assert 10_500_000 < bench.parameters(bench.MODELS["minilm"]) < 11_000_000


def test_a_cpu_smoke_run_gives_every_method_a_row(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    code = bench.main(["--device", "cpu", "--tiny", "--iterations", "2", "--batch", "2",
                       "--json", str(out)])  # fmt: skip
    assert code == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 2 * len(bench.METHODS) * 2  # models x methods x batch sizes
    for row in rows:
        assert row["latency_ms"] is not None or row["timed_by"].startswith("skipped: ")
    baseline = [r for r in rows if r["method"] == "BF16"]
    assert all(r["speedup"] == 1.0 and r["bytes_ratio"] == 1.0 for r in baseline)
    int8 = [r for r in rows if r["method"] == "Int8WeightOnly"]
    assert all(r["bytes_ratio"] < 0.7 for r in int8)  # int8 weights, bf16 norms: about half
    gpu_only = [r for r in rows if r["method"] in ("Int4WeightOnly", "Float8", "SemiStructured24")]
    assert all("skipped" in r["timed_by"] for r in gpu_only)


def test_a_compiled_cpu_smoke_run_times_compiled_models(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    code = bench.main(["--device", "cpu", "--tiny", "--iterations", "2", "--batch", "2",
                       "--models", "minilm", "--compile", "--json", str(out)])  # fmt: skip
    assert code == 0
    measured = [r for r in json.loads(out.read_text()) if r["latency_ms"] is not None]
    assert {r["method"] for r in measured} >= {"BF16", "Int8WeightOnly", "Int8Dynamic"}
    assert all(r["timed_by"] == "compiled, host clock" for r in measured)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the run without CUDA")
def test_without_cuda_the_gpu_run_measures_nothing(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main([]) == 0
    assert "no CUDA device here" in capsys.readouterr().out


def test_two_of_four_keeps_the_two_largest_of_every_four() -> None:
    weight = torch.tensor([[1.0, -5.0, 2.0, 3.0, 0.5, 0.1, -0.2, 4.0]])
    pruned = two_of_four(weight)
    assert pruned.tolist() == [[0.0, -5.0, 0.0, 3.0, 0.5, 0.0, 0.0, 4.0]]
    with pytest.raises(RuntimeError):
        two_of_four(torch.ones(3, 3))
