"""Serving latency from histogram buckets: counter increases over the covered steps, merged over a
workload's pods, and the quantile Prometheus's histogram_quantile gives; written to status."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from steward.act.accounting import serving_latency
from steward.api.v1alpha1.common import CapacityType
from steward.cost.accounting import account
from steward.cost.catalog import NodeIdentity
from steward.cost.latency import increase, merged, quantile, requests
from steward.cost.usage import Grid, NodeUsage, PodUsage, Usage, WorkloadRef
from steward.observe.prometheus import Series
from steward.observe.usage import build_usage
from steward.policy.placement import PLATFORMS
from tests.unit.test_accounting import CATALOG

START = datetime(2026, 11, 23, tzinfo=UTC)
INF = math.inf


def test_quantiles_are_histogram_quantile_s() -> None:
    buckets = {0.1: 50.0, 0.25: 90.0, 0.5: 100.0, INF: 100.0}
    # p95: rank 95 falls in (0.25, 0.5] holding 10: 0.25 + 0.25 x 5 / 10.
    assert quantile(0.95, buckets) == pytest.approx(0.375)
    assert quantile(0.5, buckets) == pytest.approx(0.1)  # the first bucket starts at 0
    assert quantile(0.95, {0.1: 10.0, INF: 100.0}) == 0.1  # in +Inf: the largest finite bound
    assert quantile(0.95, {0.1: 0.0, INF: 0.0}) is None
    assert quantile(0.95, {}) is None
    assert requests(buckets) == 100.0


def test_counter_increases_count_resets_from_zero() -> None:
    counter = {0: 10.0, 1: 15.0, 2: 3.0, 3: 8.0}
    assert increase(counter, [1, 2, 3]) == 5 + 3 + 5
    assert increase(counter, [2]) == 3  # only the covered steps
    assert merged([{0.1: 1.0, INF: 2.0}, {0.1: 3.0, INF: 3.0}]) == {0.1: 4.0, INF: 5.0}


def _bucket(pod: str, le: str, values: list[float]) -> Series:
    labels = {"namespace": "ml", "pod": pod, "le": le}
    return Series(labels, dict(enumerate(values)))


def test_a_services_pods_buckets_merge_into_its_window_latency() -> None:
    # Two pods of one service; over steps 1-2 pod a serves 100 requests (90 within 0.2 s), pod b
    # 100 (all slower than 0.2 s, within 1 s): p95 of the 200 is in (0.2, 1]: rank 190 of
    # 90..200 -> 0.2 + 0.8 x 100 / 110.
    results = {
        "pod_latency": [
            _bucket("a", "0.2", [0, 40, 90]), _bucket("a", "1", [0, 50, 100]),
            _bucket("a", "+Inf", [0, 50, 100]), _bucket("b", "0.2", [0, 0, 0]),
            _bucket("b", "1", [5, 55, 105]), _bucket("b", "+Inf", [5, 55, 105]),
        ],
    }  # fmt: skip
    grid = Grid(START, 15, 2)
    usage = build_usage(results, grid, capacity_labels=PLATFORMS["steward"], required_jobs=(),
                        max_sample_age_seconds=60)  # fmt: skip
    service = WorkloadRef("InferenceService", "ml", "chat")
    identity = NodeIdentity("p5.48xlarge", "us-east-1", CapacityType.ON_DEMAND, "H100", 8)
    pods = tuple(PodUsage("ml", p, "n", service, dict.fromkeys(range(3), 1.0)) for p in "ab")
    usage = Usage(grid, (NodeUsage("n", identity, dict.fromkeys(range(3), 8.0)),), pods,
                  (), {}, frozenset(range(3)), latency=usage.latency)  # fmt: skip
    ledger = account(usage, CATALOG)
    assert ledger.latency[service] == {0.2: 90.0, 1.0: 200.0, INF: 200.0}
    figures = serving_latency(ledger.latency[service], ledger.start, ledger.end)
    assert figures == {
        "p95Ms": round((0.2 + 0.8 * 100 / 110) * 1000, 3), "requests": 200,
        "windowStart": "2026-11-23T00:00:00Z",
        "windowEnd": (START + timedelta(seconds=30)).isoformat().replace("+00:00", "Z"),
    }  # fmt: skip
    assert serving_latency(None, ledger.start, ledger.end) is None
