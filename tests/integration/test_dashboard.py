"""Every PromQL expression of the chart's Grafana dashboard runs against the real Prometheus,
which scrapes the running operator (as the chart's ServiceMonitor would), and returns data; the
cost panels show the test's own spot work at the catalog's price."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from prometheus_api_client import PrometheusConnect

from steward.api.constants import GROUP, VERSION
from steward.devcluster.nodes import GPUNode, add_node
from tests.conftest import REPO
from tests.integration.conftest import SPOT_USD_PER_HOUR, eventually
from tests.integration.test_accounting import (
    GROUP_LABEL,
    _budget,
    _job,
    _namespace,
    _running,
    custom,
    tag,
)

__all__ = ["custom", "tag"]  # fixtures
pytestmark = pytest.mark.usefixtures("operator")
DASHBOARD = REPO / "charts" / "steward" / "dashboards" / "steward.json"
#: What Grafana substitutes for its range variables, here.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h"}


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables substituted) of every target."""
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    queries = []
    for panel in panels:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: unsubstituted variable in {expr}"
            queries.append((panel["title"], expr))
    return queries


def test_dashboard_covers_what_a_platform_team_asks() -> None:
    titles = " | ".join(title for title, _ in dashboard_queries()).lower()
    for topic in ("cost by namespace", "burn-down", "spot share", "savings", "governor health"):
        assert topic in titles
    for _, expr in dashboard_queries():
        assert re.search(r"steward_\w+", expr), expr


def test_every_dashboard_query_returns_data_from_the_running_operator(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    prometheus: PrometheusConnect,
    tag: str,
) -> None:
    team = _namespace(core, f"dash-{tag}", tag)
    add_node(core, GPUNode(f"spot-{tag}", spot=True, labels={GROUP_LABEL: tag}))
    custom.create_namespaced_custom_object(
        GROUP, VERSION, team, "trainingjobs", _job("train", tag, 4, "Spot")
    )
    eventually(lambda: _running(core, team), what="the spot worker running")
    budget = f"dash-{tag}"
    custom.create_cluster_custom_object(
        GROUP, VERSION, "budgets", _budget(budget, team, datetime.now(UTC), 1000.0)
    )

    # The operator accounts the work; Prometheus scrapes the operator's counters.
    def spot_rate() -> float | None:
        query = (
            f'sum(rate(steward_cost_usd_total{{namespace="{team}",capacity_type="spot"}}[1m]))'
            " * 3600"
        )
        result = prometheus.custom_query(query)
        return float(result[0]["value"][1]) if result else None

    # 4 of 8 spot GPUs at the catalog's spot price. rate() over a counter bumped once per
    # accounted window is coarse, and low while the series is younger than its range: within
    # 25 % once a full minute of it is there.
    expected = 4 / 8 * SPOT_USD_PER_HOUR
    eventually(lambda: abs((spot_rate() or 0) - expected) <= 0.25 * expected, timeout=180,
               what=f"the team's spot cost rate in Prometheus near {expected} USD/h")  # fmt: skip
    eventually(lambda: _series(prometheus, f'steward_budget_spent{{budget="{budget}"}}'),
               timeout=60, what="the budget's gauges in Prometheus")  # fmt: skip

    empty = []
    for title, expr in dashboard_queries():
        result = prometheus.custom_query(expr)
        if not result:
            empty.append(f"{title}: {expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)
    by_namespace = _series(prometheus, dashboard_queries()[0][1])
    assert any(s["metric"].get("namespace") == team and float(s["value"][1]) > 0
               for s in by_namespace)  # fmt: skip
    burn = next(expr for title, expr in dashboard_queries() if "burn-down" in title)
    left = {s["metric"]["budget"]: float(s["value"][1]) for s in _series(prometheus, burn)}
    assert 0 < left[budget] <= 1000.0


def _series(prometheus: PrometheusConnect, query: str) -> list[dict[str, Any]]:
    return list(prometheus.custom_query(query))
