"""The replay engine on tiny hand-built traces, against costs computed by hand."""

from __future__ import annotations

import pytest

from steward.api.v1alpha1.budget import Budget
from steward.sim.budgets import Governance
from steward.sim.engine import Inputs, Replay, lower_bound
from steward.sim.mapping import SimMapping
from steward.sim.model import CapacityTrace, EnergyModel, PriceSeries, SimJob
from steward.sim.replay import replay_all
from steward.sim.strategies import STRATEGIES

HOUR = 3600.0
#: Spot 1 USD and on-demand 4 USD per GPU-hour; no restart latency or checkpoint overhead,
#: so that every figure is a small exact sum.
PRICES = PriceSeries.constant("test", on_demand=4.0, spot=1.0)
EXACT = SimMapping(checkpoint_overhead_seconds=0, restart_latency_seconds=0, deadline_slack=None,
                   checkpoint_interval_seconds=1800, fallback_after_seconds=900)  # fmt: skip
ENERGY = EnergyModel(watts=500.0, pue=1.2, grams_co2e_per_kwh=400.0)


def _job(work_hours: float = 2.0, gpus: float = 2.0, **kw: object) -> SimJob:
    fields = {"spot_eligible": True, "checkpointed": True, **kw}
    return SimJob("j", 0.0, gpus, work_hours * HOUR, **fields)  # type: ignore[arg-type]


def _replay(policy: str, jobs: list[SimJob], capacity: list[float], mapping: SimMapping = EXACT,
            prices: PriceSeries = PRICES):  # type: ignore[no-untyped-def]  # fmt: skip
    inputs = Inputs(jobs, CapacityTrace("cap", HOUR, tuple(capacity)), prices, mapping, ENERGY)
    return Replay(inputs, STRATEGIES[policy](mapping)).run()


def test_steady_spot_costs_the_spot_price_and_on_demand_the_on_demand_price() -> None:
    spot = _replay("steward", [_job()], [8.0])
    assert (spot.usd, spot.spot_usd, spot.gpu_hours, spot.spot_share) == (4.0, 4.0, 4.0, 1.0)
    assert (spot.preemptions, spot.jct_mean_hours) == (0, 2.0)
    on_demand = _replay("on-demand", [_job()], [8.0])
    assert (on_demand.usd, on_demand.spot_share) == (16.0, 0.0)
    # 4 GPU-hours x 500 W x PUE 1.2 = 2.4 kWh; x 400 g/kWh = 0.96 kg.
    assert on_demand.kwh == pytest.approx(2.4, abs=1e-12)
    assert on_demand.kg_co2e == pytest.approx(0.96, abs=1e-12)


# Spot capacity: 8 GPUs for an hour, none the second hour, 8 from then on.
OUTAGE = [8.0, 0.0, 8.0, 8.0, 8.0, 8.0]


def test_checkpointed_spot_without_fallback_waits_out_the_outage_and_resumes() -> None:
    result = _replay("spot-checkpoint", [_job()], OUTAGE)
    # 0-1 h on spot (1 h kept at the checkpoint), wait, 2-3 h on spot: 2 GPUs x 2 h x 1 USD.
    assert (result.usd, result.preemptions, result.lost_gpu_hours) == (4.0, 1, 0.0)
    assert result.jct_mean_hours == 3.0


def test_naive_spot_restarts_from_scratch_on_demand_after_a_preemption() -> None:
    result = _replay("naive-spot", [_job()], OUTAGE)
    # 0-1 h spot (2 USD, all lost), then the whole 2 h on on-demand from 1 h (16 USD).
    assert (result.usd, result.spot_usd, result.lost_gpu_hours) == (18.0, 2.0, 2.0)
    assert result.jct_mean_hours == 3.0


def test_steward_resumes_on_demand_after_waiting_fallback_after_for_spot() -> None:
    result = _replay("steward", [_job()], OUTAGE)
    # 0-1 h spot (2 USD, 1 h kept); waits 15 min for spot (fallbackAfter); the last hour on
    # on-demand from 1.25 h (8 USD).
    assert (result.usd, result.spot_usd, result.preemptions) == (10.0, 2.0, 1)
    assert result.jct_mean_hours == 2.25


def test_steward_keeps_jobs_without_checkpoints_off_spot() -> None:
    result = _replay("steward", [_job(checkpointed=False)], [8.0])
    assert (result.usd, result.spot_share) == (16.0, 0.0)


def test_after_max_preemptions_steward_stays_on_demand() -> None:
    mapping = EXACT.model_copy(update={"max_preemptions": 1, "fallback_after_seconds": 7200})
    result = _replay("steward", [_job()], [8.0, 0.0, 8.0], mapping)
    # Preempted at 1 h (1 h kept): maxPreemptions reached, so the last hour runs on-demand at
    # once, although spot would return at 2 h.
    assert (result.usd, result.jct_mean_hours) == (2.0 + 8.0, 2.0)


def test_a_run_takes_restart_latency_and_checkpoint_pauses() -> None:
    mapping = EXACT.model_copy(update={"restart_latency_seconds": 300.0,
                                       "checkpoint_overhead_seconds": 60.0})  # fmt: skip
    result = _replay("spot-checkpoint", [_job(work_hours=1.0, gpus=1.0)], [8.0] * 4, mapping)
    # First attempt, no restart latency: 1 h of work with one checkpoint pause in between.
    assert result.jct_mean_hours * HOUR == pytest.approx(3600 + 60)
    assert result.usd == pytest.approx(3660 / 3600)
    preempted = _replay("spot-checkpoint", [_job(work_hours=1.0, gpus=1.0)],
                        [8.0, 0.0, 8.0], mapping)  # fmt: skip
    # 0-1 h: 1800 s worked, 60 s paused, 1740 s worked past the checkpoint (lost); at 2 h the
    # second attempt restarts (300 s) and works the 1800 s left: done at 2 h + 2100 s.
    assert preempted.jct_mean_hours * HOUR == pytest.approx(2 * HOUR + 2100)
    assert preempted.lost_gpu_hours * HOUR == pytest.approx(3600 - 1800)


def test_the_most_recently_started_spot_run_is_preempted_first() -> None:
    early = SimJob("early", 0.0, 4.0, 3 * HOUR, True, True)
    late = SimJob("late", 600.0, 4.0, 3 * HOUR, True, True)
    inputs = Inputs([early, late], CapacityTrace("cap", HOUR, (8.0, 4.0, 4.0, 4.0, 4.0, 4.0)),
                    PRICES, EXACT, ENERGY)  # fmt: skip
    result = Replay(inputs, STRATEGIES["spot-checkpoint"](EXACT)).run()
    assert result.preemptions == 1
    # early runs through (3 h); late: 600-3600 s kept 1800 s, resumes when early ends at 3 h.
    assert result.jct_mean_hours == pytest.approx((3.0 + (3 * HOUR + 3 * HOUR - 1800 - 600)
                                                   / HOUR) / 2)  # fmt: skip


def test_spot_prices_are_integrated_over_the_run_and_split_by_day() -> None:
    prices = PriceSeries("steps", 4.0, (0.0, HOUR), (1.0, 3.0))
    result = _replay("steward", [_job(work_hours=2.0)], [8.0], prices=prices)
    assert result.usd == 2 * (1.0 + 3.0)
    crossing = SimJob("night", 23 * HOUR, 1.0, 2 * HOUR, False, False)
    on_demand = _replay("on-demand", [crossing], [8.0])
    assert on_demand.daily_usd == [4.0, 4.0]  # 23-24 h on day 0, 24-25 h on day 1


def test_lower_bound_prices_all_work_at_the_cheapest_spot_price() -> None:
    prices = PriceSeries("steps", 4.0, (0.0, HOUR), (1.0, 0.5))
    inputs = Inputs([_job(), _job(work_hours=1.0, gpus=1.0)], CapacityTrace("c", HOUR, (0.0,)),
                    prices, EXACT, ENERGY)  # fmt: skip
    bound = lower_bound(inputs)
    assert (bound.usd, bound.gpu_hours, bound.preemptions) == (2.5, 5.0, 0)


def _budget(name: str, period: dict[str, object], usd: float) -> Budget:
    notify = [{"percent": 80, "actions": ["Notify"]}]
    spec = {"period": period, "limits": {"usd": usd}, "thresholds": notify}
    return Budget.model_validate({"metadata": {"name": name}, "spec": spec})


def test_budget_breaches_count_periods_whose_spend_ended_over_the_limit() -> None:
    # On-demand at 4 USD per GPU-hour, 1 GPU each: 2 h on day 0 (8 USD), 1 h on day 1 (4 USD),
    # 22:00 day 2 to 02:00 day 3 (8 USD on each day: split at the boundary).
    jobs = [SimJob("a", 0.0, 1.0, 2 * HOUR, False, False),
            SimJob("b", 24 * HOUR, 1.0, HOUR, False, False),
            SimJob("c", 70 * HOUR, 1.0, 4 * HOUR, False, False)]  # fmt: skip
    daily = _budget("daily", {"type": "Daily"}, 5.5)
    # 2020-01-01 is a Wednesday: the Monday-reset week runs to 2020-01-06, 28 USD in it.
    weekly = _budget("weekly", {"type": "Weekly"}, 20.0)
    inputs = Inputs(jobs, CapacityTrace("c", HOUR, (0.0,)), PRICES, EXACT, ENERGY,
                    Governance(budgets=(daily, weekly)))  # fmt: skip
    result = Replay(inputs, STRATEGIES["on-demand"](EXACT)).run()
    assert result.usd == 28.0
    assert result.budget_daily_usd["daily"][:4] == [8.0, 4.0, 8.0, 8.0]
    assert result.budget_breaches == 3 + 1


def test_the_report_gives_stewards_cost_as_a_ratio_of_each_policy() -> None:
    inputs = Inputs([_job()], CapacityTrace("cap", HOUR, tuple(OUTAGE)), PRICES, EXACT, ENERGY)
    inputs = Inputs(inputs.jobs, inputs.capacity, PRICES, EXACT, ENERGY,
                    Governance(budgets=(_budget("b", {"type": "Daily"}, 12.0),)))  # fmt: skip
    report = replay_all(inputs, names=("w", "c", "p"))
    usd = {r.policy: r.usd for r in report.results}
    assert usd == {"on-demand": 16.0, "naive-spot": 18.0, "spot-checkpoint": 4.0,
                   "steward": 10.0, "lower-bound": 4.0}  # fmt: skip
    assert report.ratio("on-demand") == 10.0 / 16.0
    assert report.ratio("lower-bound") == 2.5
    breached = {r.policy: r.budget_breaches for r in report.results}
    assert breached == {"on-demand": 1, "naive-spot": 1, "spot-checkpoint": 0, "steward": 0,
                        "lower-bound": None}  # fmt: skip
    markdown = report.markdown()
    assert "| steward | 10.00 |" in markdown
    assert report.to_json()["results"][0]["steward_ratio"] == 0.625
