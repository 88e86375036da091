"""Measuring a model on the target hardware: size on disk, parameters, latency p50/p95 and
throughput per batch size (after warm-up, threads pinned, medians), accuracy on the evaluation
set. Latency is measured, never assumed: a wrong kernel can be far slower than no compression.
"""

from __future__ import annotations

import copy
import io
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from steward.compress.data import Dataset, RetrievalSet
from steward.compress.gate import Measurement

Evaluation = Dataset | RetrievalSet


@dataclass(frozen=True)
class Timing:
    """How latency is measured."""

    batch_sizes: Sequence[int] = (1,)
    warmup: int = 5
    iterations: int = 30
    threads: int = 1
    #: Time the ``torch.compile``d model, as a serving runtime that compiles runs it (torchao's
    #: quantized layers are fused only when compiled). Accuracy is measured eagerly either way.
    compile: bool = False


def measure(
    name: str,
    method: str | None,
    model: nn.Module,
    data: Evaluation,
    timing: Timing,
    *,
    device: str = "cpu",
) -> Measurement:
    """Every figure of ``model`` on ``data``; latency at the largest batch size gates."""
    torch.set_num_threads(timing.threads)
    correct = accuracy_count(model, data, device)
    latencies, compiled = _latencies(model, data, timing, device)
    largest = max(timing.batch_sizes)
    p50, p95 = latencies[largest]
    return Measurement(
        name=name,
        method=method,
        size_bytes=size_bytes(model),
        parameters=parameter_count(model),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        throughput_per_s=largest / (p50 / 1000) if p50 > 0 else 0.0,
        correct=correct,
        samples=len(data),
        compiled=compiled,
    )


Latencies = dict[int, tuple[float, float]]


def _latencies(
    model: nn.Module, data: Evaluation, timing: Timing, device: str
) -> tuple[Latencies, bool | None]:
    """(p50, p95) per batch size, and whether they are the compiled model's: None when
    ``timing.compile`` is off, False when compiling failed and the eager model was timed."""

    def timed(subject: nn.Module) -> Latencies:
        return {b: latency_ms(subject, data, b, timing, device) for b in timing.batch_sizes}

    if not timing.compile:
        return timed(model), None
    try:
        return timed(compiled_copy(model)), True
    except Exception:  # whatever inductor raised: the eager figures stand, and say so
        return timed(model), False


def compiled_copy(model: nn.Module) -> nn.Module:
    """A ``torch.compile``d copy of ``model`` (the model itself stays as it is, to be saved).

    A sentence-transformers model is driven through ``encode``, which calls ``forward`` rather
    than the module, so its stages are compiled instead. Dynamo's caches are reset first: each
    model compiles afresh, never falling back to eager for hitting the recompilation limit.
    """
    torch._dynamo.reset()
    copied = copy.deepcopy(model)
    for part in list(copied.children()) if hasattr(copied, "encode") else [copied]:
        part.compile()
    return copied


def accuracy_count(model: nn.Module, data: Evaluation, device: str = "cpu") -> int:
    """How many evaluation samples the model gets right: the argmax of its output (a data set),
    or the top-1 neighbour's topic by cosine similarity of its embeddings (a retrieval set)."""
    if isinstance(data, RetrievalSet):
        embeddings = _embed(model, data.texts, device)
        similarity = embeddings @ embeddings.T
        similarity.fill_diagonal_(-2.0)  # a text never retrieves itself
        nearest = similarity.argmax(dim=1)
        return int((data.labels[nearest] == data.labels).sum())
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(data), 256):
            inputs = data.inputs[start : start + 256].to(device)
            predicted = model(inputs).argmax(dim=1).cpu()
            correct += int((predicted == data.labels[start : start + 256]).sum())
    return correct


def latency_ms(
    model: nn.Module, data: Evaluation, batch: int, timing: Timing, device: str = "cpu"
) -> tuple[float, float]:
    """Median and 95th percentile of ``timing.iterations`` forward passes of ``batch`` samples
    after ``timing.warmup`` untimed ones."""
    index = torch.arange(batch) % len(data)
    if isinstance(data, RetrievalSet):
        texts = [data.texts[int(i)] for i in index]

        def forward() -> object:
            return _embed(model, texts, device)
    else:
        inputs = data.inputs[index].to(device)

        def forward() -> object:
            return model(inputs)

    times = []
    with torch.inference_mode():
        for i in range(timing.warmup + timing.iterations):
            _sync(device)
            started = time.perf_counter()
            forward()
            _sync(device)
            if i >= timing.warmup:
                times.append((time.perf_counter() - started) * 1000)
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return statistics.median(ordered), p95


def _embed(model: nn.Module, texts: list[str], device: str) -> torch.Tensor:
    """Unit-length float32 embeddings from a sentence-transformers model's ``encode``."""
    encode = getattr(model, "encode", None)
    if encode is None:
        raise TypeError("a retrieval set needs a sentence-embedding model (with encode())")
    embeddings = encode(texts, batch_size=64, convert_to_tensor=True, device=device,
                        show_progress_bar=False)  # fmt: skip
    return functional.normalize(embeddings.float().cpu(), dim=1)


def size_bytes(model: nn.Module) -> int:
    """Bytes of the model's serialised state (what a checkpoint of it weighs on disk)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def parameter_count(model: nn.Module) -> int:
    """Stored numbers in the model's state: parameters, buffers and packed quantized weights."""
    return sum(_numel(value) for value in model.state_dict().values())


def _numel(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return int(value.numel())
    if isinstance(value, tuple | list):
        return sum(_numel(v) for v in value)
    return 0


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
