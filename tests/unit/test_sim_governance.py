"""The replay's Steward under Budgets and CostPolicies: the ladder through the operator's own
``reconcile_budget``, ``decide`` and ``admission``, on tiny traces with costs worked out by hand.

Prices: spot 1 USD, on-demand 4 USD per GPU-hour; 8 spot GPUs always; checkpoints every 30 min
with no pause, no restart latency; the governor ticks every 30 min. Budgets are Daily (UTC
midnight), so a period resets every 24 h.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from steward.api.v1alpha1.budget import Budget
from steward.api.v1alpha1.common import Priority
from steward.api.v1alpha1.costpolicy import CostPolicy
from steward.sim.budgets import Governance, PolicyError, load_governance
from steward.sim.engine import Inputs, PolicyResult, Replay
from steward.sim.mapping import SimMapping
from steward.sim.model import CapacityTrace, EnergyModel, PriceSeries, SimJob
from steward.sim.strategies import STRATEGIES

HOUR = 3600.0
PRICES = PriceSeries.constant("test", on_demand=4.0, spot=1.0)
MAPPING = SimMapping(checkpoint_overhead_seconds=0, restart_latency_seconds=0, deadline_slack=None,
                     checkpoint_interval_seconds=1800, governor_interval_seconds=1800)  # fmt: skip
ENERGY = EnergyModel(watts=500.0, pue=1.2, grams_co2e_per_kwh=400.0)


def _budget(usd: float, *rungs: tuple[float, str]) -> Budget:
    thresholds = [{"percent": percent, "actions": [action]} for percent, action in rungs]
    return Budget.model_validate({
        "metadata": {"name": "team"},
        "spec": {"period": {"type": "Daily"}, "limits": {"usd": usd}, "thresholds": thresholds},
    })  # fmt: skip


def _policy(mode: str = "Enforce", **actions: object) -> CostPolicy:
    return CostPolicy.model_validate(
        {"metadata": {"name": "team"}, "spec": {"mode": mode, "budgetActions": actions}}
    )


def _job(name: str, hours: float, gpus: float, priority: Priority, *, arrival: float = 0.0,
         checkpointed: bool = True) -> SimJob:  # fmt: skip
    return SimJob(name, arrival, gpus, hours * HOUR, spot_eligible=False,
                  checkpointed=checkpointed, priority=priority)  # fmt: skip


def _steward(jobs: list[SimJob], budget: Budget, policy: CostPolicy) -> tuple[PolicyResult, Replay]:
    inputs = Inputs(jobs, CapacityTrace("spot", HOUR, (8.0,)), PRICES, MAPPING, ENERGY,
                    Governance((budget,), (policy,)))  # fmt: skip
    replay = Replay(inputs, STRATEGIES["steward"](MAPPING))
    return replay.run(), replay


def _done_hours(replay: Replay, index: int) -> float | None:
    done = replay.states[index].done_at
    return None if done is None else done / HOUR


def test_shift_to_spot_moves_on_demand_training_to_spot_at_a_checkpoint() -> None:
    # 2 GPUs on-demand burn 8 USD/h of a 20 USD day: 40 % at the 1 h tick reaches the 30 % rung;
    # the job stops at the checkpoint written then (1 h of work kept) and goes on on spot.
    result, replay = _steward([_job("a", 4, 2, Priority.NORMAL)],
                              _budget(20, (30, "ShiftToSpot")), _policy())  # fmt: skip
    assert result.usd == 1 * 2 * 4 + 3 * 2 * 1  # 8 on-demand + 6 spot
    assert (result.gpu_hours, result.spot_gpu_hours) == (8.0, 6.0)
    assert _done_hours(replay, 0) == 4.0
    assert result.governor_actions == {"ShiftToSpot": 1}
    assert result.budget_breaches == 0
    on_demand = Replay(replay.inputs, STRATEGIES["on-demand"](MAPPING)).run()
    assert (on_demand.usd, on_demand.budget_breaches) == (32.0, 1)


def test_suspend_low_priority_stops_at_a_checkpoint_and_resumes_when_the_period_resets() -> None:
    # 8 USD/h against 20 USD a day: 60 % at the 1.5 h tick passes the 50 % rung each day, so
    # the job runs 1.5 h a day (12 USD) and resumes at midnight from its checkpoint.
    result, replay = _steward([_job("low", 6, 2, Priority.LOW)],
                              _budget(20, (50, "SuspendLowPriority")), _policy())  # fmt: skip
    assert result.daily_usd == [12.0, 12.0, 12.0, 12.0]
    assert result.usd == 48.0  # the same work, not a cent lost to the stops
    assert _done_hours(replay, 0) == 72 + 1.5
    assert result.budget_breaches == 0
    assert result.governor_actions == {"SuspendLowPriority": 4 - 1}


def test_a_priority_the_policy_does_not_suspend_runs_on_and_breaches() -> None:
    result, replay = _steward([_job("high", 6, 2, Priority.HIGH)],
                              _budget(20, (50, "SuspendLowPriority")), _policy())  # fmt: skip
    assert (result.usd, _done_hours(replay, 0)) == (48.0, 6.0)
    assert (result.budget_breaches, result.governor_actions) == (1, {})


def _high_then_late() -> list[SimJob]:
    return [_job("high", 2, 2, Priority.HIGH), _job("late", 1, 1, Priority.LOW, arrival=6300)]


def test_block_new_work_holds_a_new_job_until_the_period_resets() -> None:
    # "high" spends 8 USD/h; at the 1.5 h tick (12 of 20 USD) BlockNewWork is in force, so
    # "late" (Low, arriving at 1.75 h) waits for midnight, then runs 1 h on-demand.
    jobs = _high_then_late()
    result, replay = _steward(jobs, _budget(20, (50, "BlockNewWork")),
                              _policy(blockPriorities=["Low"]))  # fmt: skip
    assert (_done_hours(replay, 0), _done_hours(replay, 1)) == (2.0, 25.0)
    assert result.daily_usd == [16.0, 4.0]
    assert result.governor_actions == {"BlockNewWork": 1}


def test_dry_run_changes_nothing_and_records_each_decision_once() -> None:
    jobs = _high_then_late()
    result, replay = _steward(jobs, _budget(20, (50, "BlockNewWork")),
                              _policy("DryRun", blockPriorities=["Low"]))  # fmt: skip
    assert (_done_hours(replay, 0), _done_hours(replay, 1)) == (2.0, 2.75)
    assert result.usd == 20.0
    assert result.governor_actions == {"WouldBlockNewWork": 1}


def test_the_baselines_are_not_governed() -> None:
    jobs = [_job("low", 6, 2, Priority.LOW)]
    governance = Governance((_budget(20, (50, "SuspendLowPriority")),), (_policy(),))
    inputs = Inputs(jobs, CapacityTrace("spot", HOUR, (8.0,)), PRICES, MAPPING, ENERGY, governance)
    for name in ("on-demand", "naive-spot", "spot-checkpoint"):
        result = Replay(inputs, STRATEGIES[name](MAPPING)).run()
        assert (result.usd, result.governor_actions, result.budget_breaches) == (48.0, {}, 1)


def test_budgets_count_only_the_jobs_their_scope_selects() -> None:
    budget = _budget(20, (50, "SuspendLowPriority")).model_copy(deep=True)
    budget.spec.scope.namespaces = ["elsewhere"]
    result, replay = _steward([_job("low", 6, 2, Priority.LOW)], budget, _policy())
    assert (result.usd, _done_hours(replay, 0), result.budget_breaches) == (48.0, 6.0, 0)


def test_policies_directory_loads_budgets_and_policies_and_names_a_bad_field(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: steward.ai/v1alpha1\nkind: Budget\nmetadata: {name: b}\n"
        "spec: {limits: {usd: 5}, thresholds: [{percent: 50, actions: [Notify]}]}\n---\n"
        "apiVersion: steward.ai/v1alpha1\nkind: CostPolicy\nmetadata: {name: p}\nspec: {}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\n"
    )
    governance = load_governance(tmp_path)
    assert [b.metadata.name for b in governance.budgets] == ["b"]
    assert [p.metadata.name for p in governance.policies] == ["p"]
    (tmp_path / "b.yaml").write_text(
        "apiVersion: steward.ai/v1alpha1\nkind: CostPolicy\nmetadata: {name: bad}\n"
        "spec: {mode: Sometimes}\n"
    )
    with pytest.raises(PolicyError, match=r"b.yaml: CostPolicy bad: spec.mode"):
        load_governance(tmp_path)


def test_a_job_the_ladder_stops_before_it_ever_works_again_ends_the_replay_unfinished() -> None:
    # An hour to restart and a tick every 30 min: each period the job is suspended again
    # before it works; the replay stops at its horizon instead of ticking forever.
    slow = MAPPING.model_copy(update={"restart_latency_seconds": 3600.0})
    inputs = Inputs([_job("low", 6, 2, Priority.LOW)], CapacityTrace("spot", HOUR, (8.0,)),
                    PRICES, slow, ENERGY,
                    Governance((_budget(1, (1, "SuspendLowPriority")),), (_policy(),)))  # fmt: skip
    result = Replay(inputs, STRATEGIES["steward"](slow)).run()
    assert result.unfinished == 1
    assert result.daily_usd[0] == 0.5 * 2 * 4  # worked to its first checkpoint, then stopped
    assert result.daily_usd[1] == 0.5 * 2 * 4  # 30 min of restart, stopped before any work
