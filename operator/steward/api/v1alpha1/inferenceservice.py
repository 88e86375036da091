"""InferenceService: a model server with an on-demand base and an optional spot share above it.

Shaped after KServe's ``serving.kserve.io/v1beta1`` so its users feel at home:
``spec.predictor.model.{modelFormat,storageUri}``, ``minReplicas``/``maxReplicas``. Its plural is
``inferenceservices.steward.ai``, so it coexists with KServe's in one cluster.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from steward.api.quantities import USD, ZERO, Fraction, KgCO2e, KWh, Percent
from steward.api.schema import Rule, StewardModel
from steward.api.v1alpha1.common import (
    Conditions,
    CostBreakdown,
    CustomResource,
    KindInfo,
    PrinterColumn,
    Priority,
    ShortName,
)
from steward.api.v1alpha1.compressionjob import (
    ArchitectureRef,
    CompressionMethod,
    CompressionMethods,
    Evaluation,
)
from steward.api.v1alpha1.compressionjob import ModelFormat as SourceFormat


class ModelFormat(StewardModel):
    """The model's serialisation format, as KServe names it (``pytorch``, ``onnx``, ...)."""

    name: ShortName
    version: Annotated[str, Field(max_length=64)] | None = None


class Model(StewardModel):
    """The model the predictor serves."""

    model_format: ModelFormat
    storage_uri: Annotated[str, Field(min_length=1, max_length=2048)] = Field(
        alias="storageUri",
        description="Where the model is (pvc://, a local path, or any scheme the runtime reads).",
    )


class Container(StewardModel):
    """The predictor container (``core/v1 Container``). Steward sets ``STEWARD_MODEL_URI``."""

    model_config = ConfigDict(extra="allow")

    name: Annotated[str, Field(max_length=63)] = "predictor"
    image: Annotated[str, Field(min_length=1, max_length=512)]


class Predictor(StewardModel):
    """How the model is served and how far it may scale."""

    model: Model
    container: Container
    min_replicas: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=1, description="Budget actions never scale the service below this."
    )
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 1
    replicas: Annotated[int, Field(ge=0, le=1000)] | None = Field(
        default=None,
        description="Replicas to run while no budget action limits them (default minReplicas).",
    )
    gpus_per_replica: Annotated[int, Field(ge=0, le=16)] = 1
    gpu_model: ShortName | None = None
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict,
        description="Node labels the predictor's pods also require (a node group, a zone).",
    )
    pod_annotations: dict[str, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict,
        description="Annotations on the predictor's pods (metrics scraping, sidecars).",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="maxReplicas must be at least minReplicas",
            field="maxReplicas",
            holds=lambda p: p.min_replicas <= p.max_replicas,
        ),
        Rule(
            cel="!has(self.replicas) || (self.replicas >= self.minReplicas "
            "&& self.replicas <= self.maxReplicas)",
            message="replicas must be between minReplicas and maxReplicas",
            field="replicas",
            holds=lambda p: p.replicas is None or p.min_replicas <= p.replicas <= p.max_replicas,
        ),
    )

    @property
    def desired(self) -> int:
        """Replicas wanted when nothing limits them."""
        return self.min_replicas if self.replicas is None else self.replicas


class SpotShare(StewardModel):
    """Replicas up to ``onDemandBase`` run on on-demand nodes; of those above it, up to
    ``maxSpotPercent`` run on spot. Losing every spot node never takes the service below the base.
    """

    on_demand_base: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=1, description="Replicas that always run on on-demand nodes."
    )
    max_spot_percent: Percent = Field(
        default=0, description="Largest share (percent) of the replicas above the base on spot."
    )


class SLO(StewardModel):
    """What the service promises; a promoted variant that breaks it is rolled back."""

    latency_p95_ms: Annotated[float, Field(gt=0)] | None = None
    accuracy_floor: Fraction | None = Field(
        default=None, description="Lowest acceptable accuracy of any variant served."
    )


class CompressionPreferences(StewardModel):
    """Which compressed variants the service accepts, whether Steward may switch to them, and
    what a CompressionJob for it needs. A CostPolicy's compression triggers start one only for
    a service that sets ``sourceFormat`` and ``evaluation``."""

    allowed_methods: CompressionMethods = Field(
        default_factory=lambda: [CompressionMethod.DYNAMIC_INT8, CompressionMethod.BF16]
    )
    max_accuracy_drop: Fraction = 0.01
    auto_promote: bool = False
    source_format: SourceFormat | None = Field(
        default=None, description="How the compression runner loads the model at storageUri."
    )
    architecture: ArchitectureRef | None = Field(
        default=None, description="StateDict: 'module.path:ClassName' that builds the model."
    )
    evaluation: Evaluation | None = Field(
        default=None, description="The data compressed variants are measured on."
    )
    output_uri: Annotated[str, Field(min_length=1, max_length=2048)] | None = Field(
        default=None,
        alias="outputUri",
        description="Where compression reports and artifacts go (default: storageUri + "
        "'-compressed').",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.sourceFormat) || self.sourceFormat != 'StateDict' "
            "|| has(self.architecture)",
            message="architecture is required for a StateDict model",
            field="architecture",
            holds=lambda c: (
                c.source_format != SourceFormat.STATE_DICT or c.architecture is not None
            ),
        ),
    )


class InferenceServiceSpec(StewardModel):
    predictor: Predictor
    capacity: SpotShare = Field(default_factory=SpotShare)
    slo: SLO = Field(default_factory=SLO)
    compression: CompressionPreferences | None = None
    priority: Priority = Priority.NORMAL
    cost_center: ShortName | None = None

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.capacity.onDemandBase <= self.predictor.minReplicas",
            message="capacity.onDemandBase cannot exceed predictor.minReplicas",
            field="capacity",
            holds=lambda s: s.capacity.on_demand_base <= s.predictor.min_replicas,
        ),
    )


class ActiveModel(StewardModel):
    """The model the predictor serves now."""

    variant: ShortName = Field(description="'original', or the compressed variant's name.")
    storage_uri: str = Field(alias="storageUri")
    compression_job: str | None = None
    since: datetime | None = None


class VariantLatency(StewardModel):
    """Request latency of the pods serving one model variant, in the same window."""

    variant: str = Field(
        description="The pods' steward.ai/variant label: the variant's name, or v- and a hash "
        "of it where the name is not a valid label value."
    )
    p95_ms: Annotated[float, Field(ge=0)] = Field(description="95th percentile, ms.")
    requests: Annotated[int, Field(ge=0)] = Field(description="Requests the histogram counted.")


class ServingLatency(StewardModel):
    """Request latency in the newest accounted window, from the serving pods' histogram."""

    p95_ms: Annotated[float, Field(ge=0)] = Field(
        description="95th percentile, ms: histogram_quantile over the window's bucket increases."
    )
    requests: Annotated[int, Field(ge=0)] = Field(description="Requests the histogram counted.")
    window_start: datetime
    window_end: datetime
    variants: Annotated[list[VariantLatency], Field(max_length=64)] = Field(
        default_factory=list,
        description="The same figures per model variant served in the window (pods that carry "
        "no variant label are in the totals only).",
    )

    def of_variant(self, label: str) -> VariantLatency | None:
        """The row of the pods labelled ``label``, if any served in the window."""
        return next((row for row in self.variants if row.variant == label), None)


class InferenceServiceStatus(StewardModel):
    replicas: Annotated[int, Field(ge=0)] = 0
    ready_replicas: Annotated[int, Field(ge=0)] = 0
    spot_replicas: Annotated[int, Field(ge=0)] = 0
    active_model: ActiveModel | None = None
    cost: CostBreakdown = Field(default_factory=CostBreakdown)
    energy_kwh: KWh = ZERO
    carbon_kg_co2e: KgCO2e = ZERO
    cost_per_hour_usd: USD | None = Field(
        default=None, description="Spend per hour in the newest accounted window."
    )
    cost_per_1k_requests_usd: USD | None = Field(
        default=None,
        description="Cost of 1,000 requests in the newest accounted window; only where serving "
        "request metrics exist.",
    )
    gpu_utilization_percent: Percent | None = Field(
        default=None,
        description="Mean utilisation of the service's GPUs in the newest accounted window; only "
        "where GPU utilisation metrics exist.",
    )
    accounted_until: datetime | None = Field(
        default=None, description="End of the newest window counted into cost and energy."
    )
    latency: ServingLatency | None = Field(
        default=None,
        description="Request latency in the newest accounted window; only where serving "
        "latency histograms exist. A promoted variant breaking spec.slo.latencyP95Ms is rolled "
        "back.",
    )
    last_decision: str | None = None
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    conditions: Conditions = Field(default_factory=list)


class InferenceService(CustomResource):
    """A model server. Steward keeps an on-demand base, puts a share of the replicas above it on
    spot, and can switch it to a compressed variant that passed its gate."""

    kind: Literal["InferenceService"] = "InferenceService"
    spec: InferenceServiceSpec
    status: InferenceServiceStatus | None = None

    crd: ClassVar[KindInfo] = KindInfo(
        plural="inferenceservices",
        short_names=("sisvc",),
        scope="Namespaced",
        # Children are "<name>-od" and "<name>-spot" Deployments; pod names add ~17 characters.
        max_name_length=40,
        printer_columns=(
            PrinterColumn("Model", "string", ".status.activeModel.variant"),
            PrinterColumn("Ready", "integer", ".status.readyReplicas"),
            PrinterColumn("Spot", "integer", ".status.spotReplicas"),
            PrinterColumn("USD/h", "number", ".status.costPerHourUSD"),
            PrinterColumn("USD/1k req", "number", ".status.costPer1kRequestsUSD"),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
        ),
    )
