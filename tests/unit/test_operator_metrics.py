"""The operator's cost and budget metrics: what dashboards and alerts read."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import REGISTRY

from steward.api.v1alpha1.budget import Budget
from steward.controllers import metrics
from steward.cost.accounting import Amounts


def _value(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    assert value is not None, (name, labels)
    return value


def _value_or_zero(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_window_adds_pod_cost_per_namespace_and_capacity_and_idle_cost() -> None:
    before = _value_or_zero("steward_cost_usd_total", namespace="m-team", capacity_type="spot")
    idle_before = _value_or_zero("steward_idle_cost_usd_total", capacity_type="on-demand")
    metrics.count_window(
        {
            ("m-team", "a"): Amounts(spot_usd=Decimal("1.5"), kwh=Decimal("2")),
            ("m-team", "b"): Amounts(spot_usd=Decimal("0.5"), on_demand_usd=Decimal(3)),
            ("m-other", "c"): Amounts(on_demand_usd=Decimal(7), kg_co2e=Decimal("0.25")),
        },
        [Amounts(on_demand_usd=Decimal(4)), Amounts(on_demand_usd=Decimal(1))],
    )
    assert _value("steward_cost_usd_total", namespace="m-team", capacity_type="spot") == (
        before + 2.0
    )
    assert _value("steward_cost_usd_total", namespace="m-team", capacity_type="on-demand") >= 3.0
    assert _value("steward_cost_usd_total", namespace="m-other", capacity_type="spot") == 0.0
    assert _value("steward_energy_kwh_total", namespace="m-team") >= 2.0
    assert _value("steward_emissions_kg_co2e_total", namespace="m-other") >= 0.25
    assert _value("steward_idle_cost_usd_total", capacity_type="on-demand") == idle_before + 5.0


def test_budget_gauges_show_spent_limit_forecast_per_limited_unit() -> None:
    budget = Budget.model_validate(
        {
            "apiVersion": "steward.ai/v1alpha1",
            "kind": "Budget",
            "metadata": {"name": "m-budget"},
            "spec": {
                "scope": {"namespaces": ["a"]},
                "period": {"type": "Monthly"},
                "limits": {"usd": "1000", "kwh": "50"},
                "thresholds": [{"percent": 80, "actions": ["Notify"]}],
            },
            "status": {
                "spent": {"usd": "250.5", "kwh": "10"},
                "forecast": {"usd": "900", "kwh": "45"},
                "utilizationPercent": 25.05,
            },
        }
    )
    metrics.show_budget(budget, stale=True)
    assert _value("steward_budget_limit", budget="m-budget", unit="usd") == 1000.0
    assert _value("steward_budget_spent", budget="m-budget", unit="usd") == 250.5
    assert _value("steward_budget_forecast", budget="m-budget", unit="kwh") == 45.0
    assert REGISTRY.get_sample_value("steward_budget_limit", {"budget": "m-budget",
                                                             "unit": "kgco2e"}) is None  # fmt: skip
    assert _value("steward_budget_utilization_percent", budget="m-budget") == 25.05
    assert _value("steward_budget_data_stale", budget="m-budget") == 1.0


def test_a_standby_reports_no_budget_figures_and_no_savings() -> None:
    metrics.BUDGET_SPENT.labels("m-old", "usd").set(5)
    metrics.SAVINGS.set(12.5)
    metrics.step_down()
    assert (
        REGISTRY.get_sample_value("steward_budget_spent", {"budget": "m-old", "unit": "usd"})
        is None
    )
    assert _value("steward_estimated_savings_usd_per_hour") == 0.0
