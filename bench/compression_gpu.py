"""Compression on a GPU: each method's latency speed-up over bf16, at batch 1 and batched, set
against the memory-bandwidth limit (the bytes ratio), on transformers of realistic size.

    python bench/compression_gpu.py [--batch 32] [--iterations 100] [--compile] [--json out.json]
    python bench/compression_gpu.py --device cpu --tiny     # the same code, small, on a CPU

Models, random weights (latency only), pure torch, fed hidden states (the embedding lookup is a
gather and stays outside the timed part):

- ``minilm``: all-MiniLM-L6-v2's shape (6 encoder layers, hidden 384, 12 heads, MLP 1,536),
  128 tokens per sequence (10.6 million parameters without its word embeddings);
- ``decoder-1.1b``: TinyLlama-1.1B's shape (22 layers, hidden 2,048, 32 query heads sharing 4
  key/value heads, SwiGLU MLP 5,632, a 32,000-word output layer; 1.03 billion parameters
  without the embedding), one decode step (one token, no KV cache: the weights dominate).

Each variant is what the runner builds (``steward.compress.methods.build``): the bf16 baseline,
FP16, torchao Int8WeightOnly, Int8Dynamic, Int4WeightOnly, Float8 (compute capability >= 8.9)
and 2:4 semi-structured sparsity (>= 8.0). Timing: warm-up, then the forward pass captured as a
CUDA graph and replayed (at batch 1 eager timing measures kernel launches, not the model:
../shared/docs/compression.md), median of ``--iterations`` by CUDA events; eager where capture
fails, said in the row. ``--compile`` times each model ``torch.compile``d first, as the runner's
``evaluation.compile`` does (torchao fuses its kernels only when compiled; eager where compiling
fails, said in the row). Bytes ratio: the variant's serialised weights over bf16's, the speed-up
a memory-bound step could reach. Without CUDA it says so and measures nothing (exit 0).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from steward.api.v1alpha1.compressionjob import CompressionMethod
from steward.compress.measure import compiled_copy, size_bytes
from steward.compress.methods import Context, Hardware, Skipped, build


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    mlp: int
    gated: bool  # SwiGLU (Llama) rather than GELU (BERT)
    vocab: int | None  # an output layer
    tokens: int  # per sequence, per timed step


MODELS = {
    "minilm": Shape(6, 384, 12, 12, 1536, gated=False, vocab=None, tokens=128),
    "decoder-1.1b": Shape(22, 2048, 32, 4, 5632, gated=True, vocab=32000, tokens=1),
}
TINY = {
    "minilm": Shape(2, 64, 4, 4, 128, gated=False, vocab=None, tokens=16),
    "decoder-1.1b": Shape(2, 128, 4, 2, 256, gated=True, vocab=512, tokens=1),
}
BASELINE = CompressionMethod.BF16
METHODS = (
    BASELINE,
    CompressionMethod.FP16,
    CompressionMethod.INT8_WEIGHT_ONLY,
    CompressionMethod.INT8_DYNAMIC,
    CompressionMethod.INT4_WEIGHT_ONLY,
    CompressionMethod.FLOAT8,
    CompressionMethod.SEMI_STRUCTURED_24,
)
#: Methods that cast the float32 model themselves; the others quantize the bf16 one.
_FROM_FLOAT32 = (CompressionMethod.FP16, CompressionMethod.SEMI_STRUCTURED_24)


class Block(nn.Module):
    """A pre-norm transformer block: attention (grouped key/value heads), then the MLP."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = shape
        head = shape.hidden // shape.heads
        self.attention_norm = nn.LayerNorm(shape.hidden)
        self.query = nn.Linear(shape.hidden, shape.hidden, bias=False)
        self.key_value = nn.Linear(shape.hidden, 2 * shape.kv_heads * head, bias=False)
        self.out = nn.Linear(shape.hidden, shape.hidden, bias=False)
        self.mlp_norm = nn.LayerNorm(shape.hidden)
        self.up = nn.Linear(shape.hidden, (2 if shape.gated else 1) * shape.mlp, bias=False)
        self.down = nn.Linear(shape.mlp, shape.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, (batch, tokens, hidden) = self.shape, x.shape
        head = hidden // shape.heads
        h = self.attention_norm(x)
        query = self.query(h).view(batch, tokens, shape.heads, head).transpose(1, 2)
        key, value = self.key_value(h).view(batch, tokens, 2, shape.kv_heads, head).unbind(2)
        repeat = shape.heads // shape.kv_heads
        key = key.transpose(1, 2).repeat_interleave(repeat, dim=1)
        value = value.transpose(1, 2).repeat_interleave(repeat, dim=1)
        attended = functional.scaled_dot_product_attention(query, key, value)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, tokens, hidden))
        h = self.up(self.mlp_norm(x))
        if shape.gated:
            gate, up = h.chunk(2, dim=-1)
            h = functional.silu(gate) * up
        else:
            h = functional.gelu(h)
        return x + self.down(h)


class Transformer(nn.Module):
    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.layers))
        self.norm = nn.LayerNorm(shape.hidden)
        self.head = nn.Linear(shape.hidden, shape.vocab, bias=False) if shape.vocab else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return self.head(x) if self.head is not None else x


def parameters(shape: Shape) -> int:
    """The model's parameter count, from its shape (what ``Transformer`` allocates)."""
    head = shape.hidden // shape.heads
    attention = 2 * shape.hidden**2 + shape.hidden * 2 * shape.kv_heads * head
    mlp = shape.hidden * (2 if shape.gated else 1) * shape.mlp + shape.mlp * shape.hidden
    norms = 4 * shape.hidden
    output = shape.hidden * (shape.vocab or 0)
    return shape.layers * (attention + mlp + norms) + 2 * shape.hidden + output


@dataclass(frozen=True)
class Row:
    model: str
    method: str
    batch: int
    latency_ms: float | None
    speedup: float | None  # bf16's latency over this one's, same batch, same run
    bytes_ratio: float | None  # serialised weights over bf16's
    timed_by: str  # "CUDA graph", "eager (...)", or why the method did not run


def variant(method: CompressionMethod, float32: nn.Module, hardware: Hardware) -> nn.Module:
    """What the runner builds for ``method``; the bf16 model itself for the baseline."""
    context = Context(hardware)
    bf16 = copy.deepcopy(float32).to(torch.bfloat16)
    if method == BASELINE:
        return bf16
    if method in _FROM_FLOAT32:
        return build(method, float32, context)
    return build(method, bf16, context)


def time_ms(step: Callable[[], Any], iterations: int, device: str) -> tuple[float, str]:
    """The median milliseconds of ``step`` and how it was timed (module docstring)."""
    with torch.no_grad():
        for _ in range(3):
            step()
        if device != "cuda":
            times = []
            for _ in range(iterations):
                started = time.perf_counter()
                step()
                times.append((time.perf_counter() - started) * 1000)
            return statistics.median(times), "host clock"
        run, how = _graphed(step)
        times = []
        for _ in range(iterations):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times), how


def _graphed(step: Callable[[], Any]) -> tuple[Callable[[], Any], str]:
    torch.cuda.synchronize()
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        return graph.replay, "CUDA graph"
    except Exception as error:  # some kernels cannot be captured: time eagerly
        torch.cuda.synchronize()
        return step, f"eager ({type(error).__name__})"


def bench_model(name: str, shape: Shape, args: argparse.Namespace) -> list[Row]:
    hardware = Hardware.detect(want_gpu=args.device == "cuda")
    with torch.device(hardware.device):
        float32 = Transformer(shape).eval()
    rows: list[Row] = []
    baseline: dict[int, float] = {}
    baseline_bytes: int | None = None
    for method in METHODS:
        try:
            model = variant(method, float32, hardware)
        except Skipped as why:
            rows += [Row(name, method.value, b, None, None, None, f"skipped: {why}")
                     for b in (1, args.batch)]  # fmt: skip
            continue
        except Exception as error:  # a failing method is a result
            rows += [Row(name, method.value, b, None, None, None, f"failed: {error}"[:200])
                     for b in (1, args.batch)]  # fmt: skip
            continue
        weights = _bytes(model)
        if method == BASELINE:
            baseline_bytes = weights
        ratio = weights / baseline_bytes if weights and baseline_bytes else None
        for batch in (1, args.batch):
            inputs = torch.randn(batch, shape.tokens, shape.hidden, device=hardware.device,
                                 dtype=torch.bfloat16)  # fmt: skip
            try:
                latency, how = latency_ms(model, inputs, args, hardware.device)
            except Exception as error:  # a failing kernel is a result
                rows.append(Row(name, method.value, batch, None, None, ratio,
                                f"failed: {error}"[:200]))  # fmt: skip
                continue
            if method == BASELINE:
                baseline[batch] = latency
            speedup = baseline[batch] / latency if batch in baseline and latency > 0 else None
            rows.append(Row(name, method.value, batch, latency, speedup, ratio, how))
        del model
    return rows


def latency_ms(
    model: nn.Module, inputs: torch.Tensor, args: argparse.Namespace, device: str
) -> tuple[float, str]:
    """The model's median latency on ``inputs`` and how it was timed: compiled first where
    ``--compile`` asks, eagerly where that fails (the error named)."""
    failed = ""
    if args.compile:
        try:
            torch._dynamo.reset()  # each model compiles afresh, never hitting the recompile limit
            compiled = compiled_copy(model)
            latency, how = time_ms(lambda: compiled(inputs), args.iterations, device)
            return latency, f"compiled, {how}"
        except Exception as error:  # whatever inductor raised: time the eager model
            failed = f"compiling failed ({type(error).__name__}), "
    latency, how = time_ms(lambda: model(inputs), args.iterations, device)
    return latency, failed + how


def _bytes(model: nn.Module) -> int | None:
    try:
        return size_bytes(model)
    except Exception:  # some packed tensors cannot be serialised
        return None


HEADER = ("model", "method", "batch", "latency ms", "speed-up vs bf16", "bytes vs bf16",
          "timed by")  # fmt: skip


def markdown(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        cells = [row.model, row.method, str(row.batch), _fmt(row.latency_ms, "{:.3f}"),
                 _fmt(row.speedup, "{:.2f}x"), _fmt(row.bytes_ratio, "{:.3f}"),
                 row.timed_by]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--batch", type=int, default=32, help="the batched measurement's size")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--models", nargs="*", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument("--tiny", action="store_true", help="small shapes (a smoke run)")
    parser.add_argument("--compile", action="store_true", help="time torch.compile'd models")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: nothing measured (--device cpu --tiny runs the same code)")
        return 0
    if args.device == "cuda":
        print(f"{torch.cuda.get_device_name()}, compute capability "
              f"{'.'.join(map(str, torch.cuda.get_device_capability()))}, torch "
              f"{torch.__version__}")  # fmt: skip
    shapes = TINY if args.tiny else MODELS
    rows = []
    for name in args.models:
        print(f"{name}: {parameters(shapes[name]):,} parameters", flush=True)
        rows += bench_model(name, shapes[name], args)
    print(markdown(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
