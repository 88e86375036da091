"""The operator's own metrics (prometheus_client), served on ``--metrics-port``.

Names and labels are the contract for dashboards and alerts; docs/governor.md lists them.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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


def serve(port: int) -> None:
    """Serve ``/metrics`` on ``port`` (0: not at all)."""
    if port:
        start_http_server(port)
