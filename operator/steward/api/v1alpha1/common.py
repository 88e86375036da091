"""Types shared by several kinds: metadata, conditions, selectors, references, cost figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from steward.api.quantities import USD, ZERO, KgCO2e, KWh
from steward.api.schema import Rule, StewardModel

#: A DNS-1123 label: what Kubernetes accepts as a namespace or Service name.
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNSLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=63)]

#: A DNS-1123 subdomain: what Kubernetes accepts as most object names.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNSSubdomain = Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]

#: A short free-form label such as a cost center or a GPU model name.
ShortName = Annotated[str, Field(min_length=1, max_length=128)]


class CapacityType(StrEnum):
    """Which price a node is bought at."""

    ON_DEMAND = "OnDemand"
    SPOT = "Spot"


class Priority(StrEnum):
    """How much a workload matters when a budget runs short (lowest first)."""

    LOW = "Low"
    NORMAL = "Normal"
    HIGH = "High"
    CRITICAL = "Critical"


class PolicyMode(StrEnum):
    """What a policy does with its decisions."""

    ENFORCE = "Enforce"
    DRY_RUN = "DryRun"
    OFF = "Off"


# --- Metadata and the resource envelope ----------------------------------------------------------
class ObjectMeta(StewardModel):
    """The parts of ``metadata`` Steward reads; server-set fields pass through untouched."""

    model_config = ConfigDict(extra="allow")

    name: DNSSubdomain | None = None
    generate_name: str | None = None
    namespace: DNSLabel | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: datetime | None = None


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry of a CRD."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class KindInfo:
    """What the CRD says about a kind beside its schema."""

    plural: str
    short_names: tuple[str, ...]
    scope: Literal["Namespaced", "Cluster"]
    printer_columns: tuple[PrinterColumn, ...]
    #: Longest allowed ``metadata.name``, so that the names Steward derives from it still fit.
    max_name_length: int = 253


class CustomResource(StewardModel):
    """The envelope of every Steward object; subclasses pin ``kind``, ``spec`` and ``status``."""

    api_version: Literal["steward.ai/v1alpha1"] = "steward.ai/v1alpha1"
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: Any
    status: Any = None

    crd: ClassVar[KindInfo]


# --- Conditions ----------------------------------------------------------------------------------
class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StewardModel):
    """A Kubernetes-style condition (``metav1.Condition``)."""

    type: Annotated[str, Field(min_length=1, max_length=316)]
    status: ConditionStatus
    reason: Annotated[
        str,
        Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
    ]
    message: Annotated[str, Field(max_length=32768)] = ""
    last_transition_time: datetime
    observed_generation: Annotated[int, Field(ge=0)] | None = None


Conditions = Annotated[list[Condition], Field(max_length=32)]


# --- Selectors -----------------------------------------------------------------------------------
class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(StewardModel):
    """One ``matchExpressions`` term, as in ``metav1.LabelSelectorRequirement``."""

    key: Annotated[str, Field(min_length=1, max_length=317)]
    operator: SelectorOperator
    values: Annotated[list[Annotated[str, Field(max_length=63)]], Field(max_length=64)] = Field(
        default_factory=list
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.operator in ['In', 'NotIn'] ? size(self.values) > 0 : size(self.values) == 0",
            message="values must be non-empty for In and NotIn, and empty for Exists and "
            "DoesNotExist",
            field="values",
            holds=lambda r: (
                (len(r.values) > 0)
                == (r.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN))
            ),
        ),
    )


class LabelSelector(StewardModel):
    """A label query, as in ``metav1.LabelSelector``; empty selects everything."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] = Field(default_factory=dict)
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=16)] = Field(
        default_factory=list
    )


class ScopeSelector(StewardModel):
    """Which workloads a policy or budget covers. Every given criterion must match (AND).

    An empty selector covers every workload in the cluster.
    """

    namespaces: Annotated[list[DNSLabel], Field(max_length=256)] = Field(
        default_factory=list, description="Workloads in these namespaces; empty means any."
    )
    namespace_selector: LabelSelector | None = Field(
        default=None, description="Workloads in namespaces whose labels match."
    )
    selector: LabelSelector | None = Field(
        default=None, description="Workloads whose own labels match."
    )
    cost_centers: Annotated[list[ShortName], Field(max_length=64)] = Field(
        default_factory=list,
        description="Workloads whose spec.costCenter is one of these; empty means any.",
    )


# --- References ----------------------------------------------------------------------------------
class LocalObjectReference(StewardModel):
    """A reference to an object by name in the same namespace."""

    name: DNSSubdomain


class ObjectReference(StewardModel):
    """A reference to an object of any kind (namespace empty for cluster-scoped objects)."""

    api_version: Annotated[str, Field(min_length=1, max_length=253)]
    kind: Annotated[str, Field(min_length=1, max_length=63)]
    name: DNSSubdomain
    namespace: DNSLabel | None = None


# --- Reported figures ----------------------------------------------------------------------------
class CostBreakdown(StewardModel):
    """Money spent, split by the price it was bought at."""

    spot_usd: USD = Field(default=ZERO, description="Spent on spot capacity, USD.")
    on_demand_usd: USD = Field(default=ZERO, description="Spent on on-demand capacity, USD.")
    total_usd: USD = Field(default=ZERO, description="spotUSD + onDemandUSD.")


class ResourceAmounts(StewardModel):
    """An amount in each unit a budget can limit."""

    usd: USD | None = Field(default=None, description="US dollars.")
    kwh: KWh | None = Field(default=None, description="Kilowatt-hours of GPU energy (x PUE).")
    kg_co2e: KgCO2e | None = Field(default=None, description="Kilograms of CO2-equivalent.")
