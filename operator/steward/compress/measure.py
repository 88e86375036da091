"""Measuring a model on the target hardware: size on disk, parameters, latency p50/p95 and
throughput per batch size (after warm-up, threads pinned, medians), accuracy on the evaluation
set. Latency is measured, never assumed: a wrong kernel can be far slower than no compression.
"""

from __future__ import annotations

import copy
import io
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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


@dataclass(frozen=True)
class Subject:
    """A model to measure: the original (``method`` None) or a variant."""

    name: str
    method: str | None
    model: nn.Module


def measure(
    name: str,
    method: str | None,
    model: nn.Module,
    data: Evaluation,
    timing: Timing,
    *,
    device: str = "cpu",
) -> Measurement:
    """Every figure of one model on ``data`` (:func:`measure_all` of it alone)."""
    [measured] = measure_all([Subject(name, method, model)], data, timing, device=device)
    return measured


def measure_all(
    subjects: Sequence[Subject], data: Evaluation, timing: Timing, *, device: str = "cpu"
) -> list[Measurement]:
    """Every figure of each subject on ``data``; latency at the largest batch size gates.

    Latency is taken round-robin (:func:`round_robin`): every model's samples are spread over
    the same stretch of time, so a change of load on the machine falls on all of them alike,
    not on whichever model happened to be timed then.
    """
    torch.set_num_threads(timing.threads)
    with _compiling(len(subjects) * len(timing.batch_sizes)):
        timed = [_timed_form(s.model, data, timing, device) for s in subjects]
        models = [model for model, _ in timed]
        by_batch = {b: round_robin(models, data, b, timing, device) for b in timing.batch_sizes}
    largest = max(timing.batch_sizes)
    measured = []
    for index, (subject, (_, compiled)) in enumerate(zip(subjects, timed, strict=True)):
        p50, p95 = by_batch[largest][index]
        measured.append(Measurement(
            name=subject.name, method=subject.method,
            size_bytes=size_bytes(subject.model), parameters=parameter_count(subject.model),
            latency_p50_ms=p50, latency_p95_ms=p95,
            throughput_per_s=largest / (p50 / 1000) if p50 > 0 else 0.0,
            correct=accuracy_count(subject.model, data, device), samples=len(data),
            compiled=compiled,
            latency_by_batch={b: figures[index] for b, figures in by_batch.items()},
        ))  # fmt: skip
    return measured


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


@contextmanager
def _compiling(graphs: int) -> Iterator[None]:
    """Dynamo afresh, with room for ``graphs`` compilations of one code object (the stages of
    sentence-transformers models share theirs), failing loudly past it rather than running
    eagerly while counted as compiled."""
    torch._dynamo.reset()
    limit = max(8, 2 * graphs)
    with torch._dynamo.config.patch(recompile_limit=limit, fail_on_recompile_limit_hit=True):
        yield


def _timed_form(
    model: nn.Module, data: Evaluation, timing: Timing, device: str
) -> tuple[nn.Module, bool | None]:
    """What to time, and whether it is compiled: ``model`` itself when ``timing.compile`` is
    off (None); a compiled copy that ran at every batch size (True); else ``model`` (False)."""
    if not timing.compile:
        return model, None
    try:
        compiled = compiled_copy(model)
        with torch.inference_mode():
            for batch in timing.batch_sizes:
                _forward(compiled, data, batch, device)()
    except Exception:  # whatever inductor raised: the eager model is timed, and says so
        return model, False
    return compiled, True


def compiled_copy(model: nn.Module) -> nn.Module:
    """A compiled copy of ``model`` (the model itself stays as it is, to be saved); it compiles
    on its first call.

    Each copy is called through an entry function of its own (:class:`CompiledEntry`). A
    sentence-transformers model is driven through ``encode``, which calls ``forward`` rather
    than the module, so its stages are compiled in place instead (sharing code objects).
    """
    copied = copy.deepcopy(model)
    if hasattr(copied, "encode"):
        for part in copied.children():
            part.compile()
        return copied
    return CompiledEntry(copied)


class CompiledEntry(nn.Module):
    """Calls ``model`` through ``torch.compile`` of a function with a code object of its own.

    Dynamo keeps compiled code per code object: models compiled as themselves share one
    (``nn.Sequential.forward``, or ``Module.compile``'s wrapper), and measured together they
    ran slower than each alone (``bench/compression_cpu.py --compile``: torchao's Int8Dynamic
    at 0.26-0.29x the original, slower than eagerly; 1.21-1.29x through entries of their own).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        scope: dict[str, Any] = {}
        exec("def entry(*args):\n    return model(*args)\n", {"model": model}, scope)
        self.function: Callable[..., Any] = scope["entry"]
        self.entry: Callable[..., Any] = torch.compile(self.function)

    def forward(self, *args: Any) -> Any:
        return self.entry(*args)


def round_robin(
    models: Sequence[nn.Module], data: Evaluation, batch: int, timing: Timing, device: str
) -> list[tuple[float, float]]:
    """Median and 95th percentile (ms) of ``timing.iterations`` forward passes of ``batch``
    samples per model, after ``timing.warmup`` untimed ones each.

    The passes go in rounds of :data:`BLOCK` per model, the order rotating every round, so all
    models are timed across the same stretch of time. Each block starts with one untimed pass:
    a served model runs warm, not just after another model has had the caches.
    """
    forwards = [_forward(model, data, batch, device) for model in models]
    times: list[list[float]] = [[] for _ in models]
    with torch.inference_mode():
        for forward in forwards:
            for _ in range(timing.warmup):
                forward()
        rounds = -(-timing.iterations // BLOCK)
        for round_ in range(rounds):
            for k in range(len(models)):
                index = (k + round_) % len(models)
                forwards[index]()
                for _ in range(min(BLOCK, timing.iterations - len(times[index]))):
                    times[index].append(_timed(forwards[index], device))
    return [_p50_p95(samples) for samples in times]


#: Passes per model per round of :func:`round_robin`.
BLOCK = 5


def _forward(model: nn.Module, data: Evaluation, batch: int, device: str) -> Callable[[], object]:
    """One forward pass over the first ``batch`` samples (repeated if the set is smaller)."""
    index = torch.arange(batch) % len(data)
    if isinstance(data, RetrievalSet):
        texts = [data.texts[int(i)] for i in index]
        return lambda: _embed(model, texts, device)
    inputs = data.inputs[index].to(device)
    return lambda: model(inputs)


def _timed(forward: Callable[[], object], device: str) -> float:
    _sync(device)
    started = time.perf_counter()
    forward()
    _sync(device)
    return (time.perf_counter() - started) * 1000


def _p50_p95(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
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
