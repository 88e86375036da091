"""The compression methods: each turns the original model into one variant, or says why it
cannot run here (:class:`Skipped`). Which run depends on the hardware (compression.md): fp8
needs compute capability >= 8.9, 2:4 sparsity >= 8.0, int4 weight-only a GPU.

Structured pruning, low-rank factorisation and distillation work on chains of ``nn.Linear``
layers (an ``nn.Sequential`` MLP, possibly nested); they remove whole hidden units, factor
weight matrices, or train a narrower student, so the variant really is smaller and faster.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from steward.api.v1alpha1.compressionjob import CompressionMethod
from steward.compress.data import Dataset


class Skipped(Exception):  # noqa: N818 (an outcome, not an error)
    """The method cannot make a variant of this model on this hardware; the reason says why."""


@dataclass(frozen=True)
class Hardware:
    """Where variants are built and measured."""

    device: str = "cpu"
    capability: tuple[int, int] | None = None  # CUDA compute capability

    @classmethod
    def detect(cls, want_gpu: bool) -> Hardware:
        if want_gpu and torch.cuda.is_available():
            return cls("cuda", torch.cuda.get_device_capability())
        return cls()

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"


@dataclass(frozen=True)
class Context:
    """What a method may use: the hardware, training data (for fine-tuning and distillation)
    and the job's options."""

    hardware: Hardware
    train: Dataset | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, name: str, default: float) -> float:
        return float(self.options.get(name, default))


def build(method: CompressionMethod, model: nn.Module, context: Context) -> nn.Module:
    """The variant ``method`` makes of ``model`` (a copy; the original is left untouched)."""
    return _METHODS[method](copy.deepcopy(model), context)


# --- Precision ------------------------------------------------------------------------------------
class CastInputs(nn.Module):
    """Runs ``model`` in ``dtype``: inputs cast down, outputs back to float32."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model.to(dtype)
        self.dtype = dtype

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs.to(self.dtype)).float()  # type: ignore[no-any-return]


def _bf16(model: nn.Module, context: Context) -> nn.Module:
    if hasattr(model, "encode"):  # sentence-transformers: token ids in, so cast the model only
        return model.to(torch.bfloat16)
    return CastInputs(model, torch.bfloat16)


def _fp16(model: nn.Module, context: Context) -> nn.Module:
    if not context.hardware.gpu:
        raise Skipped("fp16 kernels are a GPU feature; on CPU use BF16")
    return CastInputs(model, torch.float16)


# --- Quantization ---------------------------------------------------------------------------------
def _dynamic_int8(model: nn.Module, context: Context) -> nn.Module:
    if context.hardware.gpu:
        raise Skipped("dynamic int8 (torch.ao) runs on CPU only; on GPU use Int8Dynamic")
    quantize = getattr(getattr(torch.ao, "quantization", None), "quantize_dynamic", None)
    if quantize is None:
        raise Skipped("torch.ao.quantization.quantize_dynamic is gone from this torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in torch, still the fastest CPU path
        return quantize(model, {nn.Linear}, dtype=torch.qint8)  # type: ignore[no-any-return]


Builder = Callable[[nn.Module, Context], nn.Module]


def _torchao(
    config_name: str, *, gpu_only: bool = False, capability: tuple[int, int] | None = None
) -> Builder:
    def make(model: nn.Module, context: Context) -> nn.Module:
        hardware = context.hardware
        if gpu_only and not hardware.gpu:
            raise Skipped(f"torchao {config_name} needs a CUDA GPU")
        if capability and (hardware.capability or (0, 0)) < capability:
            need = ".".join(map(str, capability))
            raise Skipped(f"torchao {config_name} needs compute capability >= {need}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import torchao.quantization as tq  # noqa: PLC0415 (optional, heavy)
        except ImportError as error:
            raise Skipped(f"torchao is not installed: {error}") from None
        model = model.to(hardware.device)
        tq.quantize_(model, getattr(tq, config_name)())
        return model

    return make


# --- Structured pruning ---------------------------------------------------------------------------
Slot = tuple[nn.Sequential, int]


def _linear(slot: Slot) -> nn.Linear:
    layer = slot[0][slot[1]]
    assert isinstance(layer, nn.Linear)
    return layer


def _linears(model: nn.Module) -> list[Slot]:
    """(container, index) of every Linear in Sequential containers, in forward order."""
    found: list[Slot] = []
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            found += [(module, i) for i, child in enumerate(module) if isinstance(child, nn.Linear)]
    return found


def _hidden_pairs(model: nn.Module) -> list[tuple[Slot, Slot]]:
    """Consecutive Linear layers of one Sequential, joined only by element-wise layers: the
    hidden units between them can be removed from both."""
    slots = _linears(model)
    pairs = []
    for container, i in slots:
        later = [j for c, j in slots if c is container and j > i]
        if later and all(_elementwise(container[k]) for k in range(i + 1, later[0])):
            pairs.append(((container, i), (container, later[0])))
    return pairs


def _elementwise(module: nn.Module) -> bool:
    return isinstance(module, nn.ReLU | nn.GELU | nn.Tanh | nn.SiLU | nn.Sigmoid | nn.Dropout)


def _prune(model: nn.Module, context: Context) -> nn.Module:
    fraction = context.option("pruneFraction", 0.3)
    pairs = _hidden_pairs(model)
    if not pairs:
        raise Skipped("no pair of Linear layers with hidden units between them to remove")
    for first, second in pairs:
        layer, following = _linear(first), _linear(second)
        keep = max(1, round(layer.out_features * (1 - fraction)))
        # Rank hidden units by the L2 norm of what they carry in and out.
        score = layer.weight.norm(dim=1) * following.weight.norm(dim=0)
        kept = score.topk(keep).indices.sort().values
        first[0][first[1]] = _rows(layer, kept)
        second[0][second[1]] = _columns(following, kept)
    epochs = int(context.option("fineTuneEpochs", 0))
    if epochs > 0:
        data = _training_data(context, "fine-tuning")
        _train(model, data, epochs, context.option("learningRate", 1e-3),
               lambda inputs, labels: functional.cross_entropy(model(inputs), labels))  # fmt: skip
    return model


def _rows(layer: nn.Linear, kept: torch.Tensor) -> nn.Linear:
    smaller = nn.Linear(layer.in_features, len(kept), bias=layer.bias is not None)
    with torch.no_grad():
        smaller.weight.copy_(layer.weight[kept])
        if layer.bias is not None:
            smaller.bias.copy_(layer.bias[kept])
    return smaller


def _columns(layer: nn.Linear, kept: torch.Tensor) -> nn.Linear:
    smaller = nn.Linear(len(kept), layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        smaller.weight.copy_(layer.weight[:, kept])
        if layer.bias is not None:
            smaller.bias.copy_(layer.bias)
    return smaller


def _semi_structured(model: nn.Module, context: Context) -> nn.Module:
    hardware = context.hardware
    if not hardware.gpu or (hardware.capability or (0, 0)) < (8, 0):
        raise Skipped("2:4 semi-structured sparsity needs a CUDA GPU of compute capability >= 8.0")
    from torch.sparse import to_sparse_semi_structured  # noqa: PLC0415

    model = model.half().to(hardware.device)
    sparse = 0
    # Every Linear, wherever it sits (a transformer's are attributes, not Sequential members).
    for layer in [m for m in model.modules() if isinstance(m, nn.Linear)]:
        try:
            packed = to_sparse_semi_structured(two_of_four(layer.weight.detach()))
        except (RuntimeError, ValueError):
            continue  # a shape the 2:4 kernels do not take: the layer stays dense
        layer.weight = nn.Parameter(packed, requires_grad=False)
        sparse += 1
    if not sparse:
        raise Skipped("no Linear layer has a shape the 2:4 sparse kernels take")
    return CastInputs(model, torch.float16)


def two_of_four(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` with the two smallest of every four consecutive values (along a row) zeroed;
    raises ``RuntimeError`` when a row's length is not a multiple of four."""
    groups = weight.reshape(-1, 4)
    smallest = groups.abs().topk(2, dim=1, largest=False).indices
    mask = torch.ones_like(groups, dtype=torch.bool).scatter_(1, smallest, value=False)
    return (groups * mask).reshape(weight.shape)


# --- Low rank -------------------------------------------------------------------------------------
def _low_rank(model: nn.Module, context: Context) -> nn.Module:
    energy = context.option("energyRetained", 0.9)
    replaced = 0
    for slot in _linears(model):
        layer = _linear(slot)
        rank = _rank(layer.weight.detach(), energy)
        inputs, outputs = layer.in_features, layer.out_features
        if rank * (inputs + outputs) >= inputs * outputs:
            continue  # factoring would not make it smaller
        slot[0][slot[1]] = _factored(layer, rank)
        replaced += 1
    if not replaced:
        raise Skipped(f"no Linear layer gets smaller at {energy:.0%} of its energy")
    return model


def _rank(weight: torch.Tensor, energy: float) -> int:
    """Smallest rank whose singular values keep ``energy`` of the squared sum."""
    singular = torch.linalg.svdvals(weight)
    cumulative = torch.cumsum(singular * singular, 0) / torch.sum(singular * singular)
    return int(torch.searchsorted(cumulative, torch.tensor(energy)).item()) + 1


def _factored(layer: nn.Linear, rank: int) -> nn.Sequential:
    u, s, vh = torch.linalg.svd(layer.weight.detach(), full_matrices=False)
    down = nn.Linear(layer.in_features, rank, bias=False)
    up = nn.Linear(rank, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        down.weight.copy_(vh[:rank])
        up.weight.copy_(u[:, :rank] * s[:rank])
        if layer.bias is not None:
            up.bias.copy_(layer.bias)
    return nn.Sequential(down, up)


# --- Distillation ---------------------------------------------------------------------------------
def _distill(model: nn.Module, context: Context) -> nn.Module:
    data = _training_data(context, "distillation")
    if not _hidden_pairs(model):
        raise Skipped("the student is built by narrowing hidden Linear layers; this model has none")
    student = copy.deepcopy(model)
    width = context.option("studentWidthFactor", 0.5)
    for first, second in _hidden_pairs(student):
        keep = max(1, round(_linear(first).out_features * width))
        first[0][first[1]] = nn.Linear(_linear(first).in_features, keep)
        second[0][second[1]] = nn.Linear(keep, _linear(second).out_features)
    teacher = model.eval()
    temperature = context.option("temperature", 2.0)

    def loss(inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            soft = functional.softmax(teacher(inputs) / temperature, dim=1)
        logits = student(inputs)
        log_student = functional.log_softmax(logits / temperature, dim=1)
        kd = functional.kl_div(log_student, soft, reduction="batchmean") * temperature**2
        return 0.5 * kd + 0.5 * functional.cross_entropy(logits, labels)

    _train(student, data, int(context.option("distillEpochs", 60)),
           context.option("learningRate", 3e-3), loss)  # fmt: skip
    return student


def _training_data(context: Context, purpose: str) -> Dataset:
    if context.train is None:
        raise Skipped(f"{purpose} needs training data (option trainDatasetUri / --train)")
    return context.train


def _train(
    model: nn.Module,
    data: Dataset,
    epochs: int,
    learning_rate: float,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> None:
    """Adam over shuffled batches of 64 (seeded: the same data gives the same variant)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), 64):
            batch = order[start : start + 64]
            value = loss(data.inputs[batch], data.labels[batch])
            optimizer.zero_grad()
            torch.autograd.backward(value)
            optimizer.step()
    model.eval()


_METHODS: dict[CompressionMethod, Builder] = {
    CompressionMethod.DYNAMIC_INT8: _dynamic_int8,
    CompressionMethod.INT8_WEIGHT_ONLY: _torchao("Int8WeightOnlyConfig"),
    CompressionMethod.INT8_DYNAMIC: _torchao("Int8DynamicActivationInt8WeightConfig"),
    CompressionMethod.INT4_WEIGHT_ONLY: _torchao("Int4WeightOnlyConfig", gpu_only=True),
    CompressionMethod.FLOAT8: _torchao(
        "Float8DynamicActivationFloat8WeightConfig", gpu_only=True, capability=(8, 9)
    ),
    CompressionMethod.BF16: _bf16,
    CompressionMethod.FP16: _fp16,
    CompressionMethod.STRUCTURED_PRUNING: _prune,
    CompressionMethod.SEMI_STRUCTURED_24: _semi_structured,
    CompressionMethod.DISTILLATION: _distill,
    CompressionMethod.LOW_RANK: _low_rank,
}
assert set(_METHODS) == set(CompressionMethod), "every method has a builder"
