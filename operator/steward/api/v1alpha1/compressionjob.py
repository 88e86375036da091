"""CompressionJob: make a cheaper variant of a model, measure it, promote it only if it holds."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from steward.api.quantities import USD, Fraction, IntOrString, NonNegativeDecimal
from steward.api.schema import Rule, StewardModel, UniqueList
from steward.api.v1alpha1.common import (
    Conditions,
    CustomResource,
    DNSSubdomain,
    KindInfo,
    PrinterColumn,
    ShortName,
)


class CompressionMethod(StrEnum):
    """A way to make a model cheaper to serve. Which ones run depends on the hardware target."""

    DYNAMIC_INT8 = "DynamicInt8"
    INT8_WEIGHT_ONLY = "Int8WeightOnly"
    INT4_WEIGHT_ONLY = "Int4WeightOnly"
    INT8_DYNAMIC = "Int8Dynamic"
    FLOAT8 = "Float8"
    BF16 = "BF16"
    FP16 = "FP16"
    STRUCTURED_PRUNING = "StructuredPruning"
    SEMI_STRUCTURED_24 = "SemiStructured24"
    DISTILLATION = "Distillation"
    LOW_RANK = "LowRank"


#: A list of methods, each at most once.
CompressionMethods = Annotated[UniqueList[CompressionMethod], Field(min_length=1, max_length=11)]


class ModelFormat(StrEnum):
    TORCH_SCRIPT = "TorchScript"
    TORCH_SAVE = "TorchSave"
    STATE_DICT = "StateDict"
    SENTENCE_TRANSFORMERS = "SentenceTransformers"


#: ``module.path:ClassName`` of a class that builds a model (for state dicts).
ArchitectureRef = Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]


class ModelSource(StewardModel):
    """Where the model to compress is, and how to load it."""

    storage_uri: Annotated[str, Field(min_length=1, max_length=2048)] = Field(
        alias="storageUri", description="Local path or pvc://<claim>/<path> of the model."
    )
    format: ModelFormat
    architecture: ArchitectureRef | None = Field(
        default=None, description="StateDict: 'module.path:ClassName' that builds the model."
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.format != 'StateDict' || has(self.architecture)",
            message="architecture is required for a StateDict model",
            field="architecture",
            holds=lambda s: s.format != ModelFormat.STATE_DICT or s.architecture is not None,
        ),
    )


class EvaluationMetric(StrEnum):
    ACCURACY = "Accuracy"
    TOP1_RETRIEVAL = "Top1Retrieval"


class Evaluation(StewardModel):
    """The data every variant is measured on."""

    dataset_uri: Annotated[str, Field(min_length=1, max_length=2048)] = Field(
        alias="datasetUri", description="Local path or pvc://<claim>/<path> of the evaluation set."
    )
    metric: EvaluationMetric = EvaluationMetric.ACCURACY
    min_samples: Annotated[int, Field(ge=1)] = Field(
        default=500, description="Fewer evaluation samples than this fails the gate."
    )
    batch_sizes: Annotated[list[Annotated[int, Field(ge=1, le=4096)]], Field(max_length=8)] = Field(
        default_factory=lambda: [1], description="Batch sizes latency is measured at."
    )
    compile: bool = Field(
        default=False,
        description="Time the original and every variant after torch.compile, as a serving "
        "runtime that compiles runs them (torchao's quantized layers are fused only when "
        "compiled); accuracy is measured eagerly.",
    )


class ObjectiveWeights(StewardModel):
    """Weights of J = alpha * accuracyDrop + beta * costPer1kRequestsUSD (lower is better)."""

    alpha: Annotated[float, Field(ge=0)] = 1.0
    beta: Annotated[float, Field(ge=0)] = 1.0


class Gate(StewardModel):
    """What a variant must show to be promoted."""

    max_accuracy_drop: Fraction = Field(
        default=0.01,
        description="Largest accepted drop of the metric, as a fraction (0.01 = 1 point).",
    )
    max_latency_ratio: Annotated[float, Field(gt=0)] = Field(
        default=1.0, description="Variant p95 latency / original p95 latency must not exceed this."
    )
    weights: ObjectiveWeights = Field(default_factory=ObjectiveWeights)


class HardwareTarget(StrEnum):
    CPU = "CPU"
    GPU = "GPU"


class Hardware(StewardModel):
    """Where the variants are built and measured: the hardware that will serve them."""

    target: HardwareTarget = HardwareTarget.CPU
    gpu_model: ShortName | None = None


class ResourceRequirements(StewardModel):
    """``core/v1 ResourceRequirements`` of the runner container."""

    requests: dict[str, IntOrString] = Field(default_factory=dict)
    limits: dict[str, IntOrString] = Field(default_factory=dict)


class CompressionJobSpec(StewardModel):
    """Which model to compress, how, how to judge the result, and what to promote it to."""

    source: ModelSource
    target: DNSSubdomain | None = Field(
        default=None,
        description="InferenceService (same namespace) that serves the model and may be promoted.",
    )
    methods: CompressionMethods = Field(
        description="Methods to try; each yields one variant (skipped, with a reason, where the "
        "hardware cannot run it)."
    )
    evaluation: Evaluation
    gate: Gate = Field(default_factory=Gate)
    hardware: Hardware = Field(default_factory=Hardware)
    output_uri: Annotated[str, Field(min_length=1, max_length=2048)] = Field(
        alias="outputUri", description="Where the report and the chosen artifact are written."
    )
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = Field(
        default=None, description="Runner image; the operator's configured default when empty."
    )
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    options: dict[str, Any] = Field(
        default_factory=dict, description="Method options passed to the runner as given."
    )
    auto_promote: bool = Field(
        default=False,
        description="Promote the chosen variant when the gate passes and the target allows it "
        "(its spec.compression.autoPromote).",
    )
    pod_annotations: dict[str, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, description="Annotations on the runner's pod."
    )


class CompressionPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class VariantResult(StewardModel):
    """What one variant measured, and whether it passed the gate."""

    name: ShortName
    method: CompressionMethod | None = Field(default=None, description="Empty for the original.")
    size_bytes: Annotated[int, Field(ge=0)]
    parameters: Annotated[int, Field(ge=0)]
    latency_p50_ms: NonNegativeDecimal
    latency_p95_ms: NonNegativeDecimal
    accuracy: Fraction
    accuracy_drop: Annotated[float, Field(ge=-1, le=1)]
    cost_per_1k_requests_usd: USD | None = None
    compiled: bool | None = Field(
        default=None,
        description="With evaluation.compile: true if the latency is the compiled model's, "
        "false if compiling failed and the eager model was timed.",
    )
    passed: bool
    reasons: Annotated[list[Annotated[str, Field(max_length=512)]], Field(max_length=16)] = Field(
        default_factory=list
    )


class CompressionJobStatus(StewardModel):
    phase: CompressionPhase = CompressionPhase.PENDING
    job_name: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    variants: Annotated[list[VariantResult], Field(max_length=32)] = Field(default_factory=list)
    chosen_variant: str | None = None
    artifact_uri: str | None = Field(default=None, alias="artifactUri")
    accepted: bool | None = Field(default=None, description="The gate passed for chosenVariant.")
    promoted: bool | None = Field(default=None, description="The target now serves chosenVariant.")
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    conditions: Conditions = Field(default_factory=list)


class CompressionJob(CustomResource):
    """Compresses a model with the chosen methods, measures every variant on the target hardware,
    and (when the gate passes and the service allows it) promotes the best one."""

    kind: Literal["CompressionJob"] = "CompressionJob"
    spec: CompressionJobSpec
    status: CompressionJobStatus | None = None

    crd: ClassVar[KindInfo] = KindInfo(
        plural="compressionjobs",
        short_names=("cj",),
        scope="Namespaced",
        max_name_length=52,
        printer_columns=(
            PrinterColumn("Phase", "string", ".status.phase"),
            PrinterColumn("Target", "string", ".spec.target"),
            PrinterColumn("Chosen", "string", ".status.chosenVariant"),
            PrinterColumn("Accepted", "boolean", ".status.accepted"),
            PrinterColumn("Promoted", "boolean", ".status.promoted"),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
        ),
    )
