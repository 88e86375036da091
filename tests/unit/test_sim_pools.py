"""The replay on GPU node pools: nodes opened by the operator's autoscaler, runs bin-packed onto
them, spot nodes reclaimed whole, and the bill for every node's lifetime (exact, by hand)."""

from __future__ import annotations

from pathlib import Path

import pytest

from steward.api.v1alpha1.gpunodepool import GPUNodePool
from steward.sim.budgets import Governance, PolicyError, load_governance
from steward.sim.engine import Inputs, PolicyResult, Replay
from steward.sim.mapping import SimMapping
from steward.sim.model import CapacityTrace, EnergyModel, PriceSeries, SimJob
from steward.sim.pools import check_pools
from steward.sim.strategies import STRATEGIES

HOUR = 3600.0
PRICES = PriceSeries.constant("test", on_demand=4.0, spot=1.0)
EXACT = SimMapping(checkpoint_overhead_seconds=0, restart_latency_seconds=0, deadline_slack=None,
                   checkpoint_interval_seconds=1800, fallback_after_seconds=900)  # fmt: skip
#: 500 W busy, 100 W idle, PUE 1.2, 400 g/kWh.
ENERGY = EnergyModel(watts=500.0, pue=1.2, grams_co2e_per_kwh=400.0, idle_watts=100.0)
IDLE = 10 / 60  # scaleDown.idleTime, hours


def _pool(name: str, capacity: str, *, max_nodes: int = 4, cooldown: str = "0s") -> GPUNodePool:
    return GPUNodePool.model_validate({
        "apiVersion": "steward.ai/v1alpha1", "kind": "GPUNodePool", "metadata": {"name": name},
        "spec": {"provider": {"type": "Kwok"}, "instanceType": "a3-highgpu-8g",
                 "gpuModel": "NVIDIA-H100-80GB-HBM3", "gpusPerNode": 8, "capacityType": capacity,
                 "maxNodes": max_nodes, "scaleUp": {"cooldown": cooldown},
                 "scaleDown": {"idleTime": "10m", "cooldown": "0s"}},
    })  # fmt: skip


ON_DEMAND = _pool("on-demand", "OnDemand")
SPOT = _pool("spot", "Spot")


def _job(name: str, hours: float, gpus: float, *, arrival: float = 0.0) -> SimJob:
    return SimJob(name, arrival, gpus, hours * HOUR, spot_eligible=True, checkpointed=True)


def _replay(policy: str, jobs: list[SimJob], *pools: GPUNodePool,
            capacity: tuple[float, ...] = (0.0,)) -> tuple[PolicyResult, Replay]:  # fmt: skip
    inputs = Inputs(jobs, CapacityTrace("cap", HOUR, capacity), PRICES, EXACT, ENERGY,
                    Governance(pools=pools or (ON_DEMAND, SPOT)))  # fmt: skip
    replay = Replay(inputs, STRATEGIES[policy](EXACT))
    return replay.run(), replay


def _done_hours(replay: Replay) -> list[float | None]:
    return [None if s.done_at is None else s.done_at / HOUR for s in replay.states]


def test_runs_share_a_node_and_the_bill_is_the_node_busy_or_idle() -> None:
    result, replay = _replay("on-demand", [_job("a", 2, 3), _job("b", 1, 4)])
    # Both fit one 8-GPU node, open from 0 until 10 min after a ends at 2 h: 8 x 13/6 h x 4 USD.
    assert result.usd == pytest.approx(8 * (2 + IDLE) * 4)
    assert result.node_gpu_hours == pytest.approx(8 * (2 + IDLE))
    assert result.gpu_hours == pytest.approx(3 * 2 + 4 * 1)
    # 10 busy GPU-hours x 500 W, 7 1/3 idle x 100 W, x PUE 1.2.
    assert result.kwh == pytest.approx((10 * 500 + (8 * (2 + IDLE) - 10) * 100) * 1.2 / 1000)
    assert _done_hours(replay) == [2.0, 1.0]


def test_runs_that_do_not_fit_together_each_pay_for_a_whole_node() -> None:
    result, _ = _replay("on-demand", [_job("a", 1, 5), _job("b", 1, 5)])
    # 5 + 5 > 8: two nodes, each 1 h busy + 10 min idle; counted GPUs would have cost 40 USD.
    assert result.usd == pytest.approx(2 * 8 * (1 + IDLE) * 4)
    assert result.gpu_hours == pytest.approx(10)


def test_shared_gpu_pods_pack_in_fractions_of_a_gpu() -> None:
    result, _ = _replay("on-demand", [_job(str(n), 1, 0.5) for n in range(16)])
    # Sixteen half-GPU pods fill one node exactly.
    assert result.node_gpu_hours == pytest.approx(8 * (1 + IDLE))


def test_a_pool_at_max_nodes_queues_work_until_a_node_frees() -> None:
    small = _pool("on-demand", "OnDemand", max_nodes=1)
    result, replay = _replay("on-demand", [_job("a", 1, 8), _job("b", 1, 8)], small, SPOT)
    # b waits for a's node, binds to it at 1 h and ends at 2 h; one node from 0 to 2 h 10.
    assert _done_hours(replay) == [1.0, 2.0]
    assert result.usd == pytest.approx(8 * (2 + IDLE) * 4)
    assert result.jct_mean_hours == pytest.approx(1.5)


def test_the_scale_up_cooldown_delays_the_next_node() -> None:
    slow = _pool("on-demand", "OnDemand", cooldown="1m")
    _, replay = _replay("on-demand", [_job("a", 1, 8), _job("b", 1, 8)], slow, SPOT)
    # a opens a node at 0; b's node may come only when the 1-minute cooldown ends.
    assert _done_hours(replay) == [1.0, 1.0 + 1 / 60]


def test_spot_capacity_comes_in_whole_nodes_and_a_reclaimed_node_preempts_its_runs() -> None:
    result, replay = _replay("spot-checkpoint", [_job("a", 2, 2)], capacity=(8, 0, 8, 8, 8))
    # One spot node 0-1 h (reclaimed; a keeps 1 h), a new one from 2 h: a ends at 3 h, the node
    # goes 10 min later. 8 GPUs x (1 + 1 1/6) h x 1 USD; counted GPUs would have cost 4 USD.
    assert result.preemptions == 1
    assert _done_hours(replay) == [3.0]
    assert result.usd == pytest.approx(8 * (1 + 1 + IDLE) * 1)
    assert result.spot_usd == result.usd


def test_less_spot_capacity_than_a_node_opens_no_spot_node() -> None:
    result, replay = _replay("steward", [_job("a", 1, 2)], capacity=(6.0,))
    # Steward waits fallbackAfter (15 min) for spot, then runs on an on-demand node.
    assert _done_hours(replay) == [1.25]
    assert (result.spot_usd, result.usd) == (0.0, pytest.approx(8 * (1 + IDLE) * 4))


def test_node_pools_load_from_the_policies_directory_and_are_checked(tmp_path: Path) -> None:
    (tmp_path / "pools.yaml").write_text(
        "apiVersion: steward.ai/v1alpha1\nkind: GPUNodePool\nmetadata: {name: gpu}\n"
        "spec: {provider: {type: Kwok}, instanceType: a3-highgpu-8g, gpuModel: H100,\n"
        "       gpusPerNode: 8, capacityType: Spot, minNodes: 3, maxNodes: 2}\n"
    )
    with pytest.raises(PolicyError, match=r"pools.yaml: GPUNodePool gpu: .*maxNodes"):
        load_governance(tmp_path)
    with pytest.raises(PolicyError, match="no on-demand GPUNodePool"):
        check_pools(Governance(pools=(SPOT,)), [_job("a", 1, 2)])
    with pytest.raises(PolicyError, match="job big needs 9 GPUs"):
        check_pools(Governance(pools=(ON_DEMAND,)), [_job("big", 1, 9)])
    check_pools(Governance(), [_job("big", 1, 9)])  # GPUs counted: nothing to check


def test_spot_pools_share_the_traces_gpus_in_whole_nodes() -> None:
    small_spot = _pool("small-spot", "Spot").model_copy(deep=True)
    small_spot.spec.gpus_per_node = 1
    jobs = [_job("one", 1, 1), _job("eight", 1, 8, arrival=60)]
    result, replay = _replay("spot-checkpoint", jobs, ON_DEMAND, small_spot, SPOT, capacity=(8.0,))
    # "one" takes a 1-GPU spot node (the same price per GPU: the first pool by name); 7 GPUs
    # are left, not an 8-GPU node, so "eight" waits for "one"'s node to go (idle 10 min after
    # 1 h) and then runs 1 h 10 min to 2 h 10 min.
    assert _done_hours(replay) == [1.0, pytest.approx(2 + IDLE)]
    assert result.usd == pytest.approx(1 * (1 + IDLE) + 8 * (1 + IDLE))


def test_min_nodes_are_kept_and_billed_but_spot_ones_only_as_far_as_the_trace_offers() -> None:
    standing = _pool("spot", "Spot").model_copy(deep=True)
    standing.spec.min_nodes = 2
    result, replay = _replay("on-demand", [_job("a", 1, 1)], ON_DEMAND, standing, capacity=(8.0,))
    # One spot node (8 GPUs offered, not 16), open from 0 until the last job ends at 1 h: 8 USD;
    # a's on-demand node 1 h + 10 min idle: 8 x 7/6 h x 4 USD.
    assert replay.pools is not None
    assert [p.opened for p in replay.pools.pools] == [1, 1]
    assert result.spot_usd == pytest.approx(8.0)
    assert result.usd == pytest.approx(8.0 + 8 * (1 + IDLE) * 4)
