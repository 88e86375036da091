"""Node-pool sizing: bin-packing, spot first with fallback, limits, budget caps, safe scale-down."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from steward.api.v1alpha1.costpolicy import NodePoolRules
from steward.api.v1alpha1.gpunodepool import GPUNodePool
from steward.policy.autoscaling import (
    BudgetFigures,
    PendingPod,
    PoolNode,
    PoolView,
    autoscale,
    budget_cap,
    hosts,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SPOT_TOLERATION = {"key": "steward.ai/capacity-type", "operator": "Equal", "value": "spot",
                   "effect": "NoSchedule"}  # fmt: skip


def _pool(name: str = "od", *, spot: bool = False, gpus: int = 8, **spec: Any) -> GPUNodePool:
    body: dict[str, Any] = {
        "provider": {"type": "Kwok"}, "instanceType": "p5.48xlarge",
        "gpuModel": "NVIDIA-H100-80GB-HBM3", "gpusPerNode": gpus,
        "capacityType": "Spot" if spot else "OnDemand", "maxNodes": 10,
        "scaleDown": {"idleTime": "10m", "maxStep": 2, "cooldown": "0s"},
    }  # fmt: skip
    if spot:
        body["taints"] = [{"key": "steward.ai/capacity-type", "value": "spot",
                           "effect": "NoSchedule"}]  # fmt: skip
    return GPUNodePool.model_validate({"metadata": {"name": name}, "spec": body | spec})


def _view(pool: GPUNodePool, nodes: tuple[PoolNode, ...] = (), **fields: Any) -> PoolView:
    price = Decimal(40) if pool.spec.capacity_type.value == "Spot" else Decimal(98)
    base = PoolView(pool, nodes, desired=len(nodes), price_per_node_hour=price)
    return replace(base, **fields)


def _pod(name: str, gpus: int, *, spot: bool = False, waited: timedelta = timedelta(0),
         **fields: Any) -> PendingPod:  # fmt: skip
    tolerations = (SPOT_TOLERATION,) if spot else ()
    return PendingPod(("team", name), gpus, NOW - waited, tolerations=tolerations, **fields)


def _node(name: str, allocated: int = 0, idle: timedelta | None = None, **fields: Any) -> PoolNode:
    idle_since = NOW - idle if idle is not None else None
    return PoolNode(name, True, 8, allocated, idle_since, **fields)


def test_pods_are_bin_packed_not_counted() -> None:
    # 3 x 5 GPUs: 15 GPUs would "fit" 2 nodes of 8, but no two of these pods share a node.
    [decision] = autoscale([_view(_pool())], [_pod(f"p{i}", 5) for i in range(3)], NOW)
    assert (decision.from_nodes, decision.to_nodes) == (0, 3)
    # 4 + 4 + 2 + 2 + 2 + 2 = 16 GPUs: two full nodes, largest first.
    pods = [_pod("a", 4), _pod("b", 4), *(_pod(f"s{i}", 2) for i in range(4))]
    [decision] = autoscale([_view(_pool())], pods, NOW)
    assert decision.to_nodes == 2
    assert "6 pending pod(s) bin-packed onto 2 new node(s)" in decision.reason


def test_free_gpus_on_existing_and_asked_for_nodes_absorb_pending_pods() -> None:
    view = _view(_pool(), (_node("n1", allocated=6),))
    [decision] = autoscale([view], [_pod("a", 2)], NOW)
    assert not decision.changes
    asked = replace(view, desired=2)  # one more node asked for, not registered yet
    [decision] = autoscale([asked], [_pod("b", 8), _pod("c", 2)], NOW)
    assert not decision.changes


def test_a_pod_goes_only_where_labels_taints_and_gpus_allow() -> None:
    spot = _pool("spot", spot=True)
    assert not hosts(spot, _pod("intolerant", 1))
    assert hosts(spot, _pod("tolerant", 1, spot=True))
    assert not hosts(_pool(gpus=4), _pod("big", 8))
    assert hosts(_pool(), _pod("sel", 1, node_selector={"nvidia.com/gpu.product":
                                                        "NVIDIA-H100-80GB-HBM3"}))  # fmt: skip
    assert not hosts(_pool(), _pod("sel", 1, node_selector={"zone": "b"}))
    affinity = (({"key": "steward.ai/capacity-type", "operator": "In", "values": ["spot"]},),)
    assert not hosts(_pool(), _pod("aff", 1, affinity_terms=affinity))
    assert hosts(spot, _pod("aff", 1, spot=True, affinity_terms=affinity))


def test_spot_eligible_work_grows_the_spot_pool_first() -> None:
    decisions = autoscale([_view(_pool()), _view(_pool("spot", spot=True))],
                          [_pod("a", 8, spot=True)], NOW)  # fmt: skip
    by_pool = {d.pool: d for d in decisions}
    assert (by_pool["spot"].to_nodes, by_pool["od"].to_nodes) == (1, 0)


def test_on_demand_takes_spot_eligible_work_only_after_the_fallback_delay() -> None:
    full_spot = _view(_pool("spot", spot=True, maxNodes=0))
    views = [_view(_pool()), full_spot]
    early = {d.pool: d for d in autoscale(views, [_pod("a", 8, spot=True)], NOW)}
    assert early["od"].to_nodes == 0
    assert early["spot"].blocked is not None
    assert early["spot"].blocked.text == "at maxNodes 0"
    late_pod = _pod("a", 8, spot=True, waited=timedelta(minutes=10))  # default fallback 10m
    late = {d.pool: d for d in autoscale(views, [late_pod], NOW)}
    assert late["od"].to_nodes == 1


def test_growth_respects_max_nodes_steps_and_cooldown() -> None:
    pods = [_pod(f"p{i}", 8) for i in range(6)]
    [capped] = autoscale([_view(_pool(maxNodes=3))], pods, NOW)
    assert capped.to_nodes == 3
    assert capped.blocked is not None
    assert capped.blocked.text == "at maxNodes 3"
    [stepped] = autoscale([_view(_pool(scaleUp={"maxStep": 2}))], pods, NOW)
    assert stepped.to_nodes == 2
    rules = NodePoolRules(max_scale_up_step=1)
    [policy] = autoscale([_view(_pool(), rules=rules)], pods, NOW)
    assert policy.to_nodes == 1
    cooling = _view(_pool(), last_scale_up=NOW - timedelta(seconds=30))  # cooldown 1m
    [held] = autoscale([cooling], pods, NOW)
    assert not held.changes
    assert held.blocked is not None
    assert held.blocked.key == "cooldown"


def _figures(forecast: int, *, hours: float = 2, running: int = 0) -> BudgetFigures:
    return BudgetFigures("team", Decimal(1000), Decimal(500), Decimal(forecast),
                         NOW + timedelta(hours=hours), Decimal(running))  # fmt: skip


def test_a_budget_cap_stops_growth_and_says_why() -> None:
    # 1000 - 500 spent - 300 committed (forecast) = 200 USD; a node: 40 USD/h x 2 h = 80 USD.
    cap = budget_cap(_figures(800), Decimal(40), NOW)
    assert cap.nodes == 2
    view = _view(_pool(), budget_caps={"team": cap})
    pods = [_pod(f"p{i}", 8, budgets=("team",)) for i in range(4)]
    [decision] = autoscale([view], pods, NOW)
    assert decision.to_nodes == 2
    assert decision.blocked is not None
    assert decision.blocked.key == "budget/team"
    assert "Budget team has 200.00 USD of 1000 USD left" in decision.blocked.text
    uncapped = replace(view, rules=NodePoolRules(budget_cap=False))
    assert autoscale([uncapped], pods, NOW)[0].to_nodes == 4
    assert budget_cap(_figures(1200), Decimal(40), NOW).nodes == 0


def test_nodes_running_now_count_before_the_forecast_catches_up() -> None:
    # The forecast still says 300 committed; 2 nodes at 98 USD/h for 2 h commit 392.
    assert budget_cap(_figures(800, running=196), Decimal(40), NOW).nodes == 1
    # Near the period's end a new node still counts for an hour: 200 / 40 = 5.
    assert budget_cap(_figures(800, hours=1 / 60), Decimal(40), NOW).nodes == 5


def test_scale_down_removes_only_long_idle_evictable_nodes_down_to_min() -> None:
    nodes = (
        _node("busy", allocated=8),
        _node("young", idle=timedelta(minutes=5)),
        _node("pinned", idle=timedelta(hours=1), non_evictable=("team/standalone",)),
        _node("old1", idle=timedelta(hours=2)),
        _node("old2", idle=timedelta(hours=1)),
    )
    [decision] = autoscale([_view(_pool(), nodes)], [], NOW)
    assert decision.remove == ("old1", "old2")
    assert (decision.from_nodes, decision.to_nodes) == (5, 3)
    [floor] = autoscale([_view(_pool(minNodes=4), nodes)], [], NOW)
    assert floor.remove == ("old1",)
    [pending] = autoscale([_view(_pool(), nodes)], [_pod("a", 8)], NOW)
    assert not pending.remove  # pending work first: nothing shrinks


def test_below_min_nodes_the_pool_grows_to_it() -> None:
    [decision] = autoscale([_view(_pool(minNodes=2))], [], NOW)
    assert decision.to_nodes == 2


# --- Properties -----------------------------------------------------------------------------------
node_lists = st.lists(
    st.builds(
        PoolNode,
        name=st.sampled_from([f"n{i}" for i in range(8)]),
        ready=st.booleans(),
        gpus=st.just(8),
        allocated_gpus=st.integers(0, 8),
        idle_since=st.one_of(
            st.none(), st.integers(0, 120).map(lambda m: NOW - timedelta(minutes=m))
        ),
        non_evictable=st.one_of(st.just(()), st.just(("team/pinned",))),
    ),
    max_size=8,
    unique_by=lambda n: n.name,
)
pod_lists = st.lists(
    st.builds(
        _pod,
        name=st.sampled_from([f"p{i}" for i in range(10)]),
        gpus=st.integers(1, 8),
        spot=st.booleans(),
        waited=st.integers(0, 30).map(lambda m: timedelta(minutes=m)),
    ),
    max_size=10,
    unique_by=lambda p: p.key,
)


@settings(max_examples=200, deadline=None)
@given(node_lists, pod_lists, st.integers(0, 3), st.integers(3, 8), st.booleans())
def test_decisions_stay_within_bounds_and_never_remove_pinned_nodes(
    nodes: list[PoolNode], pods: list[PendingPod], minimum: int, maximum: int, spot: bool
) -> None:
    pool = _pool("p", spot=spot, minNodes=minimum, maxNodes=maximum)
    view = _view(pool, tuple(nodes))
    decisions = autoscale([view], pods, NOW)
    assert decisions == autoscale([view], pods, NOW)
    [decision] = decisions
    by_name = {n.name: n for n in nodes}
    for name in decision.remove:
        assert not by_name[name].non_evictable
        assert by_name[name].allocated_gpus == 0
    if decision.to_nodes > decision.from_nodes:
        assert decision.to_nodes <= max(maximum, minimum)
    if decision.to_nodes < decision.from_nodes:
        assert decision.to_nodes >= minimum


def test_shared_gpus_pack_in_slices_of_a_gpu() -> None:
    # 1,000 slices per GPU: twenty 0.5-GPU pods need 10,000 of an 8-GPU node's 8,000: two nodes;
    # counted as whole GPUs (1 slice per GPU) a 500-GPU pod fits no node at all.
    pods = [_pod(f"p{i}", 500) for i in range(20)]
    [shared] = autoscale([_view(_pool(), slices_per_gpu=1000)], pods, NOW)
    assert shared.to_nodes == 2
    [whole] = autoscale([_view(_pool())], pods, NOW)
    assert whole.to_nodes == 0
