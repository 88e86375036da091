"""The price catalog: what a GPU node costs per hour, and what its energy weighs in carbon.

A catalog is YAML (or JSON) with camelCase keys, loaded from a file or a ConfigMap key:

- ``instances``: per instance type and region, the GPU model and count, the on-demand price
  and, where known, the spot price, as a single figure or a time series (``spotHistory``);
- ``gpuModels``: an hourly price per GPU for nodes no instance entry matches (on-premises
  hardware, amortised); such nodes also pay for their energy at ``electricityUSDPerKWh``;
- ``regions``: grid carbon intensity (gCO2e/kWh), PUE and electricity price per region, with
  ``defaults`` for regions not listed.

Every figure carries where it came from (``source``) so a reported dollar can be traced to the
price it was computed with. Resolution for a node is documented on :meth:`PriceCatalog.price`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Final

import yaml
from pydantic import Field, ValidationError, field_validator

from steward.api.quantities import USD
from steward.api.schema import StewardModel, first_error
from steward.api.v1alpha1.common import CapacityType

#: Matches every region in an instance entry.
ANY_REGION: Final = "*"

Name = Annotated[str, Field(min_length=1, max_length=128)]


class CatalogError(ValueError):
    """A catalog that cannot be read or does not validate; the message names the field."""


class SpotPricePoint(StewardModel):
    """The spot price in force from ``since`` until the next point."""

    since: datetime
    usd_per_hour: USD


class InstancePrice(StewardModel):
    """One instance type's prices in one region (``*``: any region not listed separately)."""

    instance_type: Name
    region: Name = ANY_REGION
    gpu_model: Name
    gpus: Annotated[float, Field(gt=0, le=64)]
    on_demand_usd_per_hour: USD
    spot_usd_per_hour: USD | None = None
    spot_history: list[SpotPricePoint] = Field(default_factory=list)
    source: str = ""

    @field_validator("spot_history")
    @classmethod
    def _ascending(cls, points: list[SpotPricePoint]) -> list[SpotPricePoint]:
        if any(a.since >= b.since for a, b in itertools.pairwise(points)):
            raise ValueError("spotHistory must be in ascending order of since")
        return points

    def spot_at(self, moment: datetime) -> tuple[Decimal, str] | None:
        """The spot price in force at ``moment``, and where it comes from; None if unknown."""
        in_force = [p for p in self.spot_history if p.since <= moment]
        if in_force:
            point = in_force[-1]
            return point.usd_per_hour, f"spot price since {point.since.isoformat()}"
        if self.spot_usd_per_hour is not None:
            return self.spot_usd_per_hour, "spot price"
        return None


class GPUModelPrice(StewardModel):
    """An hourly price per GPU, for nodes that are not a priced instance type."""

    gpu_model: Name
    usd_per_gpu_hour: USD
    source: str = ""


class RegionFactors(StewardModel):
    """How a region's electricity is counted."""

    region: Name = ANY_REGION
    grams_co2e_per_kwh: Annotated[float, Field(ge=0, le=2000)] | None = None
    pue: Annotated[float, Field(ge=1, le=3)] = 1.0
    electricity_usd_per_kwh: USD | None = None
    source: str = ""


class PriceCatalog(StewardModel):
    """Prices and energy factors; see the module docstring."""

    sources: list[str] = Field(default_factory=list)
    instances: list[InstancePrice] = Field(default_factory=list)
    gpu_models: list[GPUModelPrice] = Field(default_factory=list)
    regions: list[RegionFactors] = Field(default_factory=list)
    defaults: RegionFactors = Field(default_factory=RegionFactors)

    def price(self, node: NodeIdentity, moment: datetime) -> NodePrice:
        """What ``node`` costs per hour at ``moment``.

        1. An instance entry for the node's instance type and region, else for the type in any
           region (``*``): the spot price in force for spot nodes (falling back to on-demand,
           said in ``source``, so spot is never under-charged), else on-demand. Cloud prices
           include the energy.
        2. Else a GPU-model entry: GPUs x price per GPU-hour; energy is charged on top at the
           region's electricity price.
        3. Else unpriced: ``usd_per_hour`` is None and the node's GPU-hours are reported unpriced.
        """
        entry = self._instance(node.instance_type, node.region)
        if entry is not None:
            if node.capacity == CapacityType.SPOT:
                spot = entry.spot_at(moment)
                if spot is not None:
                    usd, how = spot
                    return NodePrice(usd, f"{how} of {entry.instance_type} ({entry.region})")
                how = f"no spot price for {entry.instance_type}; on-demand price used"
                return NodePrice(entry.on_demand_usd_per_hour, how)
            how = f"on-demand price of {entry.instance_type} ({entry.region})"
            return NodePrice(entry.on_demand_usd_per_hour, how)
        model = next((m for m in self.gpu_models if m.gpu_model == node.gpu_model), None)
        if model is not None and node.gpus > 0:
            usd = model.usd_per_gpu_hour * Decimal(str(node.gpus))
            how = f"{node.gpus:g} x {model.gpu_model} at {model.usd_per_gpu_hour} USD/GPU-hour"
            return NodePrice(usd, how, includes_energy=False)
        return NodePrice(None, f"no price for {node.instance_type or node.gpu_model or 'node'}")

    def gpu_hour_prices(self, gpu_model: str | None, moment: datetime) -> GPUHourPrices | None:
        """The cheapest on-demand and spot price of one GPU-hour of ``gpu_model`` (any model
        when None) over the instance entries, for comparing spot with on-demand; None when no
        entry has both prices."""
        pairs = []
        for entry in self.instances:
            spot = entry.spot_at(moment)
            if spot is None or (gpu_model is not None and entry.gpu_model != gpu_model):
                continue
            gpus = Decimal(str(entry.gpus))
            pairs.append((entry.on_demand_usd_per_hour / gpus, spot[0] / gpus, entry))
        if not pairs:
            return None
        on_demand = min(pairs, key=lambda p: p[0])
        spot_pair = min(pairs, key=lambda p: p[1])
        return GPUHourPrices(
            on_demand=on_demand[0],
            spot=spot_pair[1],
            source=f"on-demand of {on_demand[2].instance_type} ({on_demand[2].region}), "
            f"spot of {spot_pair[2].instance_type} ({spot_pair[2].region}), per GPU-hour",
        )

    def factors(self, region: str) -> RegionFactors:
        """The energy factors of ``region``, else the catalog's defaults."""
        return next((r for r in self.regions if r.region == region), self.defaults)

    def _instance(self, instance_type: str, region: str) -> InstancePrice | None:
        matches = [p for p in self.instances if p.instance_type == instance_type]
        exact = next((p for p in matches if p.region == region), None)
        return exact or next((p for p in matches if p.region == ANY_REGION), None)


@dataclass(frozen=True)
class NodeIdentity:
    """What prices a node: read from its labels (instance type, region, capacity, GPU model)."""

    instance_type: str
    region: str
    capacity: CapacityType
    gpu_model: str
    gpus: float


@dataclass(frozen=True)
class NodePrice:
    """An hourly price and how it was found; ``usd_per_hour`` None when nothing matched."""

    usd_per_hour: Decimal | None
    source: str
    includes_energy: bool = True


@dataclass(frozen=True)
class GPUHourPrices:
    """USD per GPU-hour on each capacity, and which entries they come from."""

    on_demand: Decimal
    spot: Decimal
    source: str


def parse_catalog(text: str, origin: str) -> PriceCatalog:
    """Parse catalog YAML/JSON; :class:`CatalogError` names ``origin`` and the bad field."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CatalogError(f"{origin}: not YAML: {error}") from None
    if not isinstance(document, dict):
        raise CatalogError(f"{origin}: a catalog is a mapping with instances, regions, ...")
    try:
        return PriceCatalog.model_validate(document)
    except ValidationError as error:
        raise CatalogError(f"{origin}: {first_error(error)}") from None


def load_catalog(path: Path | None) -> PriceCatalog:
    """The catalog at ``path``, or the default one shipped with Steward when None."""
    if path is None:
        text = resources.files("steward.cost").joinpath("catalog.yaml").read_text("utf-8")
        return parse_catalog(text, "default catalog")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError(f"{path}: cannot read: {error.strerror}") from None
    return parse_catalog(text, str(path))
