"""The ledger: node cost = price x time, split exactly into pods and idle; energy from the
counter or from power; carbon from intensity; money in Decimal without drift."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from steward.api.v1alpha1.common import CapacityType
from steward.cost.accounting import Attribution, account, node_utilization
from steward.cost.catalog import NodeIdentity, parse_catalog
from steward.cost.usage import GPUSamples, Grid, NodeUsage, PodUsage, Usage, WorkloadRef

START = datetime(2026, 11, 1, tzinfo=UTC)
CATALOG = parse_catalog(
    """
instances:
  - {instanceType: p5.48xlarge, region: us-east-1, gpuModel: H100, gpus: 8,
     onDemandUSDPerHour: 98.32, spotUSDPerHour: 39.33,
     spotHistory: [{since: "2026-11-01T00:10:00Z", usdPerHour: 41.07}]}
gpuModels:
  - {gpuModel: L4, usdPerGPUHour: 0.35}
regions:
  - {region: us-east-1, gramsCO2ePerKWh: 379.069, pue: 1.135}
  - {region: onprem, gramsCO2ePerKWh: 400, pue: 1.4, electricityUSDPerKWh: 0.12}
""",
    "test",
)


def _near(actual: Decimal, expected: Decimal | Fraction) -> bool:
    """Equal to 30 decimal places: far below a cent, far above the 50-digit working precision."""
    return abs(Fraction(actual) - Fraction(expected)) < Fraction(1, 10**30)


def _node(name: str, capacity: CapacityType, steps: int, gpus: int = 8) -> NodeUsage:
    identity = NodeIdentity("p5.48xlarge", "us-east-1", capacity, "H100", gpus)
    return NodeUsage(name, identity, dict.fromkeys(range(steps + 1), float(gpus)))


def _pod(name: str, node: str, gpus: int, steps: range) -> PodUsage:
    ref = WorkloadRef("TrainingJob", "team", name)
    return PodUsage("team", name, node, ref, dict.fromkeys(steps, float(gpus)))


def _usage(nodes, pods, gpus=(), steps: int = 12, covered=None) -> Usage:  # type: ignore[no-untyped-def]
    grid = Grid(START, 15, steps)
    return Usage(
        grid, tuple(nodes), tuple(pods), tuple(gpus), {},
        frozenset(range(steps + 1) if covered is None else covered),
    )  # fmt: skip


def test_node_cost_is_price_times_time_and_pods_pay_their_gpu_share() -> None:
    usage = _usage([_node("n", CapacityType.ON_DEMAND, 12)], [_pod("a", "n", 2, range(13))])
    ledger = account(usage, CATALOG)
    assert _near(ledger.nodes["n"].on_demand_usd, Fraction("98.32") * 180 / 3600)
    assert _near(ledger.pods[("team", "a")].usd, Fraction("98.32") * 180 / 3600 * 2 / 8)
    assert _near(ledger.idle["n"].usd, Fraction("98.32") * 180 / 3600 * 6 / 8)
    assert ledger.workloads[WorkloadRef("TrainingJob", "team", "a")].gpu_seconds == 2 * 180


def test_spot_nodes_use_the_spot_price_in_force_at_each_step() -> None:
    # 60 steps of 15 s: the first 40 before 00:10, the rest after the history point.
    usage = _usage([_node("s", CapacityType.SPOT, 60)], [], steps=60)
    ledger = account(usage, CATALOG)
    expected = (Fraction("39.33") * 40 + Fraction("41.07") * 20) * 15 / 3600
    assert _near(ledger.nodes["s"].spot_usd, expected)
    assert ledger.nodes["s"].on_demand_usd == 0
    assert "spot price since" in " ".join(ledger.prices["s"])


def test_uncovered_steps_are_not_charged_but_reported() -> None:
    usage = _usage([_node("n", CapacityType.ON_DEMAND, 12)], [], covered=set(range(7)))
    ledger = account(usage, CATALOG)
    assert _near(ledger.nodes["n"].usd, Fraction("98.32") * 6 * 15 / 3600)
    assert (ledger.covered_seconds, ledger.uncovered_seconds) == (90, 90)


def test_energy_from_the_counter_with_a_reset_else_from_power() -> None:
    holders = dict.fromkeys(range(1, 5), ("team", "a"))
    counter = {0: 1000.0, 1: 10_001_000.0, 2: 20_001_000.0, 3: 5_000_000.0}  # reset before 3
    gpu = GPUSamples("GPU-1", "n", holders, counter, {4: 400.0})
    usage = _usage([_node("n", CapacityType.ON_DEMAND, 4)], [_pod("a", "n", 1, range(5))],
                   [gpu], steps=4)  # fmt: skip
    ledger = account(usage, CATALOG)
    joules = 10_000 + 10_000 + 5_000 + 400 * 15
    kwh = Fraction(joules, 3_600_000) * Fraction("1.135")
    assert _near(ledger.pods[("team", "a")].kwh, kwh)
    assert _near(ledger.pods[("team", "a")].kg_co2e, kwh * Fraction("379.069") / 1000)
    assert ledger.idle["n"].kwh == 0


def test_on_premises_nodes_pay_per_gpu_hour_plus_electricity() -> None:
    identity = NodeIdentity("", "onprem", CapacityType.ON_DEMAND, "L4", 4)
    node = NodeUsage("rack", identity, dict.fromkeys(range(5), 4.0))
    gpu = GPUSamples("GPU-2", "rack", {}, {}, dict.fromkeys(range(5), 72.0))
    ledger = account(_usage([node], [], [gpu], steps=4), CATALOG)
    kwh = Fraction(72 * 60, 3_600_000) * Fraction("1.4")
    expected = Fraction("0.35") * 4 * 60 / 3600 + kwh * Fraction("0.12")
    assert _near(ledger.nodes["rack"].usd, expected)


def test_utilization_attribution_counts_unused_gpus_as_idle() -> None:
    holders = dict.fromkeys(range(1, 13), ("team", "a"))
    gpu = GPUSamples("GPU-3", "n", holders, utilization_percent=dict.fromkeys(range(13), 25.0))
    usage = _usage([_node("n", CapacityType.ON_DEMAND, 12)], [_pod("a", "n", 1, range(13))],
                   [gpu])  # fmt: skip
    by_request = account(usage, CATALOG).pods[("team", "a")].usd
    by_use = account(usage, CATALOG, attribution=Attribution.UTILIZATION).pods[("team", "a")].usd
    assert _near(by_use, Fraction(by_request) / 4)


def test_gpu_utilization_is_the_time_weighted_mean_over_measured_steps_only() -> None:
    # Two GPUs of pod a: one 25 % busy over steps 1-12, one 75 % over 1-6 and unmeasured after;
    # a GPU nobody holds is never counted.
    one = GPUSamples("GPU-1", "n", dict.fromkeys(range(1, 13), ("team", "a")),
                     utilization_percent=dict.fromkeys(range(13), 25.0))  # fmt: skip
    two = GPUSamples("GPU-2", "n", dict.fromkeys(range(1, 13), ("team", "a")),
                     utilization_percent=dict.fromkeys(range(7), 75.0))  # fmt: skip
    free = GPUSamples("GPU-3", "n", {}, utilization_percent=dict.fromkeys(range(13), 0.0))
    usage = _usage([_node("n", CapacityType.ON_DEMAND, 12)], [_pod("a", "n", 2, range(13))],
                   [one, two, free], covered=set(range(13)) - {3})  # fmt: skip
    ledger = account(usage, CATALOG)
    pod = ledger.pods[("team", "a")]
    assert pod.measured_gpu_seconds == 15 * (11 + 5)  # step 3 uncovered
    assert _near(pod.busy_gpu_seconds * 100 / pod.measured_gpu_seconds,
                 Fraction(25 * 11 + 75 * 5, 16))  # fmt: skip
    workload = ledger.workloads[WorkloadRef("TrainingJob", "team", "a")]
    assert workload.busy_gpu_seconds == pod.busy_gpu_seconds
    # Utilisation is the pod's alone: the node's idle carries none of it.
    assert ledger.idle["n"].measured_gpu_seconds == 0
    assert ledger.idle["n"].busy_gpu_seconds == 0


def test_node_utilization_sums_every_gpu_sample_of_covered_steps() -> None:
    busy = GPUSamples("GPU-1", "n", {}, utilization_percent=dict.fromkeys(range(13), 80.0))
    idle = GPUSamples("GPU-2", "n", {}, utilization_percent=dict.fromkeys(range(13), 0.0))
    other = GPUSamples("GPU-3", "m", {}, utilization_percent={5: 150.0})  # clamped
    usage = _usage([_node("n", CapacityType.ON_DEMAND, 12)], [], [busy, idle, other],
                   covered=set(range(13)) - {3})  # fmt: skip
    assert node_utilization(usage) == {"n": (80.0 * 12, 24), "m": (100.0, 1)}


def test_windows_split_at_any_moment_add_up_to_the_whole() -> None:
    usage = _usage([_node("n", CapacityType.ON_DEMAND, 12)], [_pod("a", "n", 3, range(13))])
    whole = account(usage, CATALOG)
    middle = datetime(2026, 11, 1, 0, 1, 7, tzinfo=UTC)  # inside step 5
    first = account(usage, CATALOG, until=middle)
    second = account(usage, CATALOG, since=middle)
    assert first.nodes["n"].gpu_seconds == 5 * 15 * 8
    assert _near(first.nodes["n"].usd + second.nodes["n"].usd, whole.nodes["n"].usd)
    split = first.pods[("team", "a")].usd + second.pods[("team", "a")].usd
    assert _near(split, whole.pods[("team", "a")].usd)


@settings(max_examples=60, deadline=None)
@given(
    gpus_per_pod=st.lists(st.integers(min_value=0, max_value=8), min_size=1, max_size=6),
    steps=st.integers(min_value=1, max_value=400),
    step_seconds=st.sampled_from([1, 5, 15, 30, 60]),
)
def test_pods_plus_idle_equal_the_node_exactly_and_match_exact_fractions(
    gpus_per_pod: list[int], steps: int, step_seconds: int
) -> None:
    grid_steps = range(steps + 1)
    node = _node("n", CapacityType.ON_DEMAND, steps)
    pods = [_pod(f"p{i}", "n", g, grid_steps) for i, g in enumerate(gpus_per_pod)]
    usage = Usage(Grid(START, step_seconds, steps), (node,), tuple(pods), (), {},
                  frozenset(grid_steps))  # fmt: skip
    ledger = account(usage, CATALOG)
    charged = sum((Fraction(a.usd) for a in ledger.pods.values()), Fraction(0))
    assert _near(ledger.nodes["n"].usd, charged + Fraction(ledger.idle["n"].usd))
    exact_node = Fraction("98.32") * steps * step_seconds / 3600
    assert _near(ledger.nodes["n"].usd, exact_node)
    claimed = sum(gpus_per_pod)
    assert abs(charged - exact_node * Fraction(claimed, max(claimed, 8))) < Fraction(1, 10**30)
