"""Serving latency from histogram buckets: counter increases over the covered steps, merged over a
workload's pods per model variant, and the quantile Prometheus's histogram_quantile gives;
written to status."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from steward.act.accounting import serving_latency
from steward.api.constants import variant_label_value
from steward.api.v1alpha1.common import CapacityType
from steward.cost.accounting import account
from steward.cost.catalog import NodeIdentity
from steward.cost.latency import increase, merged, quantile, requests
from steward.cost.usage import Grid, NodeUsage, PodUsage, WorkloadRef
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


def _serving_pod(pod: str, variant: str | None) -> Series:
    """kube-state-metrics' labels of one of the service's pods (``variant`` None: unlabelled)."""
    labels = {"namespace": "ml", "pod": pod, "label_steward_ai_workload": "chat",
              "label_steward_ai_share": "on-demand"}  # fmt: skip
    if variant is not None:
        labels["label_steward_ai_variant"] = variant
    return Series(labels, dict.fromkeys(range(3), 1.0))


def test_a_services_pods_buckets_merge_per_variant_into_its_window_latency() -> None:
    # Over steps 1-2: pod a (the original, on a GPU) serves 100 requests, 90 within 0.2 s; pod b
    # (int8, on a GPU) 100, all in (0.2, 1]; pod c (int8, on CPUs: no GPU series) 10, all
    # within 0.2 s; pod d (no variant label, CPUs) 10 in (0.2, 1]. Per variant: original
    # p95 = rank 95 of 90..100 in (0.2, 1] -> 0.2 + 0.8 x 5 / 10; int8 p95 = rank 104.5 of
    # 10..110 -> 0.2 + 0.8 x 94.5 / 100. The total counts d too: rank 209 of 100..220.
    results = {
        "pod_latency": [
            _bucket("a", "0.2", [0, 40, 90]), _bucket("a", "1", [0, 50, 100]),
            _bucket("a", "+Inf", [0, 50, 100]), _bucket("b", "0.2", [0, 0, 0]),
            _bucket("b", "1", [5, 55, 105]), _bucket("b", "+Inf", [5, 55, 105]),
            _bucket("c", "0.2", [0, 4, 10]), _bucket("c", "1", [0, 4, 10]),
            _bucket("c", "+Inf", [0, 4, 10]), _bucket("d", "0.2", [0, 0, 0]),
            _bucket("d", "1", [0, 5, 10]), _bucket("d", "+Inf", [0, 5, 10]),
        ],
        "pod_workloads": [_serving_pod("a", "original"), _serving_pod("b", "int8_dynamic"),
                          _serving_pod("c", "int8_dynamic"), _serving_pod("d", None)],
        "pod_requests": [Series({"namespace": "ml", "pod": "c"}, {0: 0, 1: 4, 2: 10})],
    }  # fmt: skip
    grid = Grid(START, 15, 2)
    observed = build_usage(results, grid, capacity_labels=PLATFORMS["steward"],
                           required_jobs=(), max_sample_age_seconds=60)  # fmt: skip
    service = WorkloadRef("InferenceService", "ml", "chat")
    identity = NodeIdentity("p5.48xlarge", "us-east-1", CapacityType.ON_DEMAND, "H100", 8)
    pods = tuple(PodUsage("ml", p, "n", service, dict.fromkeys(range(3), 1.0)) for p in "ab")
    usage = replace(observed, nodes=(NodeUsage("n", identity, dict.fromkeys(range(3), 8.0)),),
                    pods=pods, covered=frozenset(range(3)))  # fmt: skip
    ledger = account(usage, CATALOG)
    assert ledger.latency[service] == {
        "original": {0.2: 90.0, 1.0: 100.0, INF: 100.0},
        "int8_dynamic": {0.2: 10.0, 1.0: 110.0, INF: 110.0},
        "": {0.2: 0.0, 1.0: 10.0, INF: 10.0},
    }
    assert ledger.workloads[service].requests == 10  # pod c's, though it holds no GPU
    figures = serving_latency(ledger.latency[service], ledger.start, ledger.end)
    assert figures == {
        "p95Ms": round((0.2 + 0.8 * 109 / 120) * 1000, 3), "requests": 220,
        "windowStart": "2026-11-23T00:00:00Z",
        "windowEnd": (START + timedelta(seconds=30)).isoformat().replace("+00:00", "Z"),
        "variants": [
            {"variant": "int8_dynamic", "p95Ms": round((0.2 + 0.8 * 94.5 / 100) * 1000, 3),
             "requests": 110},
            {"variant": "original", "p95Ms": 600.0, "requests": 100},
        ],
    }  # fmt: skip
    assert serving_latency(None, ledger.start, ledger.end) is None
    assert serving_latency({"int8_dynamic": {0.2: 0.0, INF: 0.0}}, START, START) is None


def test_variant_label_values_are_valid_labels_and_stable() -> None:
    assert variant_label_value("int8_dynamic") == "int8_dynamic"
    assert variant_label_value("original") == "original"
    assert variant_label_value("x" * 63) == "x" * 63  # the longest label value
    for odd in ("int8 dynamic", "-lead", "x" * 64, "über", "_"):
        label = variant_label_value(odd)
        assert re.fullmatch(r"v-[0-9a-f]{16}", label), odd
        assert label == variant_label_value(odd) != variant_label_value(odd + "!")
