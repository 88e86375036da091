"""The demo's final numbers: what the accounting code says the scenario cost, and what the same
work would have cost on on-demand capacity.

Both come from one :func:`steward.cost.accounting.account` over the demo's whole window, read
from Prometheus with the operator's own queries and settings: once with the demo's catalog, once
with the same catalog without spot prices (spot nodes are then charged on-demand, the catalog's
documented fallback). The operator's running accounts (each workload's ``status.cost`` and the
Budget's ``status.spent``, written window by window while the demo ran) are shown next to them,
with the largest difference: the two must agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from steward.controllers.accountant import AccountingSettings
from steward.cost.accounting import SECONDS_PER_HOUR, Amounts, account
from steward.cost.catalog import PriceCatalog
from steward.cost.usage import Grid
from steward.demo.scenario import TEAM, without_spot_prices
from steward.observe.prometheus import Prometheus
from steward.observe.queries import QueryConfig
from steward.observe.usage import build_usage


@dataclass(frozen=True)
class WorkloadLine:
    kind: str
    name: str
    gpu_hours: float
    spot_usd: float
    on_demand_usd: float
    usd: float
    usd_if_on_demand: float
    kwh: float
    #: ``status.cost.totalUSD`` of the workload; None for a pod of no workload (the
    #: compression runner's), which Budgets count but no workload status holds.
    status_usd: float | None


@dataclass(frozen=True)
class Summary:
    """The scenario's cost, energy and savings (scaled dollars; ``price_scale`` undoes it)."""

    start: str
    end: str
    price_scale: int
    workloads: list[WorkloadLine]
    usd: float
    usd_if_on_demand: float
    saved_usd: float
    saved_percent: float
    kwh: float
    kg_co2e: float
    kwh_without_carbon: float
    gpu_hours: float
    budget_spent_usd: float
    status_total_usd: float
    #: The largest difference between the one-shot figures and the running accounts: every
    #: workload's status, and the Budget's spent against the team's total.
    largest_difference_usd: float
    prices: list[str]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    *,
    prometheus: Prometheus,
    queries: QueryConfig,
    settings: AccountingSettings,
    catalog: PriceCatalog,
    window: tuple[datetime, datetime],
    statuses: dict[tuple[str, str], float],
    budget_spent_usd: float,
    price_scale: int,
) -> Summary:
    """Account ``window`` (grid-aligned) from Prometheus twice and set the team's workloads
    against ``statuses`` (``(kind, name) -> status.cost.totalUSD``)."""
    start, end = window
    grid = Grid(
        start, settings.step_seconds, int((end - start).total_seconds()) // settings.step_seconds
    )
    usage = build_usage(
        prometheus.window(grid),
        grid,
        capacity_labels=settings.capacity_labels,
        required_jobs=queries.required_jobs,
        max_sample_age_seconds=settings.max_sample_age_seconds,
    )
    actual = account(usage, catalog, attribution=settings.attribution)
    on_demand = account(usage, without_spot_prices(catalog), attribution=settings.attribution)
    lines = []
    for ref, amounts in sorted(actual.workloads.items(), key=lambda i: (i[0].kind, i[0].name)):
        if ref.namespace != TEAM or amounts.gpu_seconds == 0:
            continue
        kind = ref.kind or "Pod"  # a pod of no workload
        lines.append(
            _line(kind, ref.name, amounts, on_demand.workloads[ref], statuses.get((kind, ref.name)))
        )
    total = Amounts.total(a for r, a in actual.workloads.items() if r.namespace == TEAM)
    usd, if_on_demand = sum(x.usd for x in lines), sum(x.usd_if_on_demand for x in lines)
    return Summary(
        start=start.isoformat(),
        end=end.isoformat(),
        price_scale=price_scale,
        workloads=lines,
        usd=usd,
        usd_if_on_demand=if_on_demand,
        saved_usd=if_on_demand - usd,
        saved_percent=100 * (if_on_demand - usd) / if_on_demand if if_on_demand else 0.0,
        kwh=float(total.kwh),
        kg_co2e=float(total.kg_co2e),
        kwh_without_carbon=float(total.kwh_without_carbon),
        gpu_hours=float(total.gpu_seconds / SECONDS_PER_HOUR),
        budget_spent_usd=budget_spent_usd,
        status_total_usd=sum(x.status_usd or 0.0 for x in lines),
        largest_difference_usd=max(
            [abs(usd - budget_spent_usd)]
            + [abs(x.usd - x.status_usd) for x in lines if x.status_usd is not None]
        ),
        prices=sorted({p for prices in actual.prices.values() for p in prices}),
    )


def _line(
    kind: str, name: str, amounts: Amounts, on_demand: Amounts, status_usd: float | None
) -> WorkloadLine:
    return WorkloadLine(
        kind=kind,
        name=name,
        gpu_hours=float(amounts.gpu_seconds / SECONDS_PER_HOUR),
        spot_usd=float(amounts.spot_usd),
        on_demand_usd=float(amounts.on_demand_usd),
        usd=float(amounts.usd),
        usd_if_on_demand=float(on_demand.usd),
        kwh=float(amounts.kwh),
        status_usd=status_usd,
    )
