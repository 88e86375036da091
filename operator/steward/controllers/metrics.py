"""The operator's own metrics (prometheus_client), served on ``--metrics-port``.

Names and labels are the contract for dashboards and alerts; docs/governor.md lists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Final

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from steward.api.directive import GovernorAction
from steward.api.v1alpha1.budget import Budget
from steward.api.v1alpha1.common import PolicyMode, ResourceAmounts
from steward.cost.accounting import Amounts

CYCLE_SECONDS: Final = Histogram(
    "steward_cycle_duration_seconds",
    "Duration of one governor-loop phase.",
    ["phase"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
QUERIES_PER_CYCLE: Final = Gauge(
    "steward_prometheus_queries_per_cycle", "PromQL queries the last accounting cycle issued."
)
ACTIONS: Final = Counter(
    "steward_governor_actions_total",
    "Governor actions decided, by action and mode (DryRun: recorded, not applied).",
    ["action", "mode", "change"],
)
DEFERRED: Final = Gauge(
    "steward_governor_deferred", "Decisions held back last cycle (cooldown, rate limit, stale)."
)
SAVINGS: Final = Gauge(
    "steward_estimated_savings_usd_per_hour",
    "USD per hour the directives in force are estimated to save (on-demand prices).",
)
BUDGET_UTILIZATION: Final = Gauge(
    "steward_budget_utilization_percent",
    "Highest spent/limit over a budget's limited units, in percent.",
    ["budget"],
)
LEADER: Final = Gauge("steward_leader", "1 while this replica holds the lease and acts.")
COST: Final = Counter(
    "steward_cost_usd_total",
    "GPU node cost charged to pods, by namespace and capacity type (accounted windows).",
    ["namespace", "capacity_type"],
)
IDLE_COST: Final = Counter(
    "steward_idle_cost_usd_total",
    "GPU node cost no pod was charged (idle GPUs and nodes), by capacity type.",
    ["capacity_type"],
)
ENERGY: Final = Counter(
    "steward_energy_kwh_total", "Facility energy charged to pods, by namespace.", ["namespace"]
)
EMISSIONS: Final = Counter(
    "steward_emissions_kg_co2e_total", "Emissions charged to pods, by namespace.", ["namespace"]
)
BUDGET_SPENT: Final = Gauge(
    "steward_budget_spent", "Spent this period, by budget and unit.", ["budget", "unit"]
)
BUDGET_LIMIT: Final = Gauge(
    "steward_budget_limit", "The period's limit, by budget and unit.", ["budget", "unit"]
)
BUDGET_FORECAST: Final = Gauge(
    "steward_budget_forecast", "Forecast spend at period end, by budget and unit.",
    ["budget", "unit"],
)  # fmt: skip
BUDGET_STALE: Final = Gauge(
    "steward_budget_data_stale", "1 while a budget's accounting data is stale.", ["budget"]
)
#: Capacity types every cost series exists for from the start, so rates and ratios have data.
CAPACITY_TYPES: Final = ("spot", "on-demand")
#: Unit label and field of each budget figure.
UNITS: Final = (("usd", "usd"), ("kwh", "kwh"), ("kgco2e", "kg_co2e"))


def count_window(pods: Mapping[tuple[str, str], Amounts], idle: Iterable[Amounts]) -> None:
    """Add one accounted window: ``pods`` keyed by (namespace, name), ``idle`` per node."""
    by_namespace: dict[str, Amounts] = {}
    for (namespace, _), amounts in pods.items():
        by_namespace[namespace] = by_namespace.get(namespace, Amounts()) + amounts
    for namespace, total in by_namespace.items():
        COST.labels(namespace, "spot").inc(float(total.spot_usd))
        COST.labels(namespace, "on-demand").inc(float(total.on_demand_usd))
        ENERGY.labels(namespace).inc(float(total.kwh))
        EMISSIONS.labels(namespace).inc(float(total.kg_co2e))
    unclaimed = Amounts.total(idle)
    IDLE_COST.labels("spot").inc(float(unclaimed.spot_usd))
    IDLE_COST.labels("on-demand").inc(float(unclaimed.on_demand_usd))


def show_budget(budget: Budget, *, stale: bool) -> None:
    """Set the budget's gauges from its spec and status."""
    name = budget.metadata.name or ""
    status = budget.status
    if status is None:
        return
    BUDGET_UTILIZATION.labels(name).set(status.utilization_percent)
    BUDGET_STALE.labels(name).set(1 if stale else 0)
    for gauge, amounts in (
        (BUDGET_SPENT, status.spent),
        (BUDGET_FORECAST, status.forecast),
        (BUDGET_LIMIT, budget.spec.limits),
    ):
        for unit, value in _units(amounts):
            gauge.labels(name, unit).set(float(value))


def step_down() -> None:
    """Forget the figures only the leader keeps current, so a standby never reports stale ones
    (dashboards and alerts take the ``max`` over replicas)."""
    for gauge in (BUDGET_UTILIZATION, BUDGET_STALE, BUDGET_SPENT, BUDGET_LIMIT, BUDGET_FORECAST):
        gauge.clear()
    SAVINGS.set(0)
    DEFERRED.set(0)


def _units(amounts: ResourceAmounts) -> Iterable[tuple[str, Decimal]]:
    for unit, attribute in UNITS:
        value = getattr(amounts, attribute)
        if value is not None:
            yield unit, value


def _initialise() -> None:
    """Create the label sets known up front, so dashboards and alerts see zeros, not gaps."""
    for capacity in CAPACITY_TYPES:
        IDLE_COST.labels(capacity)
    actions = [a.value for a in GovernorAction] + ["ScaleUp", "ScaleDown"]
    for action in actions:
        for mode in (PolicyMode.ENFORCE, PolicyMode.DRY_RUN):
            ACTIONS.labels(action, mode.value, "apply")
    for phase in ("accounting", "governor"):
        CYCLE_SECONDS.labels(phase)


def serve(port: int) -> None:
    """Serve ``/metrics`` on ``port`` (0: not at all)."""
    _initialise()
    if port:
        start_http_server(port)
