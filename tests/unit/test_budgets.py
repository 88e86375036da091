"""Budget reconciliation: the ladder, its Events and directives; stale data holds everything;
a new period starts from zero."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from steward.api.v1alpha1.budget import Budget
from steward.cost.accounting import Amounts
from steward.cost.periods import Window
from steward.policy.budgets import BudgetFacts, reconcile_budget

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
PERIOD = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
BUDGET = Budget.model_validate(
    {
        "apiVersion": "steward.ai/v1alpha1", "kind": "Budget", "metadata": {"name": "team"},
        "spec": {
            "limits": {"usd": 100},
            "thresholds": [
                {"percent": 80, "actions": ["Notify", "ShiftToSpot"]},
                {"percent": 100, "actions": ["BlockNewWork"]},
            ],
        },
    }
)  # fmt: skip


def _facts(usd: str, until: datetime = NOW, period: Window = PERIOD) -> BudgetFacts:
    return BudgetFacts(period, Amounts(on_demand_usd=Decimal(usd)), Amounts(), until)


def _step(budget: Budget, facts: BudgetFacts | None) -> tuple[Budget, list[str]]:
    plan = reconcile_budget(budget, facts, now=NOW, stale_reason="prometheus down")
    return budget.model_copy(update={"status": plan.status}), [n.reason for n in plan.notes]


def test_the_ladder_moves_with_events_once_per_rung_and_hands_actions_on() -> None:
    budget, notes = _step(BUDGET, _facts("50"))
    assert (budget.status.state.value, notes) == ("Ok", [])  # type: ignore[union-attr]
    budget, notes = _step(budget, _facts("31"))
    assert budget.status.state.value == "Warning"  # type: ignore[union-attr]
    assert notes == ["ThresholdReached", "BudgetWarning"]
    budget, notes = _step(budget, _facts("0"))
    assert notes == []  # nothing new: no repeated Events
    budget, notes = _step(budget, _facts("20"))
    assert budget.status.spent.usd == Decimal(101)  # type: ignore[union-attr]
    assert notes == ["ThresholdReached", "BudgetExceeded"]
    plan = reconcile_budget(budget, _facts("0"), now=NOW)
    assert [d.action.value for d in plan.directives] == ["Notify", "ShiftToSpot", "BlockNewWork"]


def test_stale_data_holds_figures_state_and_actions() -> None:
    budget, _ = _step(BUDGET, _facts("90"))
    held, notes = _step(budget, None)
    assert notes == ["DataStale"]
    assert held.status.spent == budget.status.spent  # type: ignore[union-attr]
    assert held.status.state == budget.status.state  # type: ignore[union-attr]
    stale = [c for c in held.status.conditions if c.type == "DataStale"]  # type: ignore[union-attr]
    assert stale[0].status.value == "True"
    assert "prometheus down" in stale[0].message
    again, notes = _step(held, None)
    assert notes == []  # said once
    _, notes = _step(again, _facts("1"))
    assert notes == ["DataFresh"]


def test_a_new_period_starts_from_zero_with_an_event() -> None:
    budget, _ = _step(BUDGET, _facts("120"))
    assert budget.status.state.value == "Exceeded"  # type: ignore[union-attr]
    december = Window(PERIOD.end, datetime(2027, 1, 1, tzinfo=UTC))
    budget, notes = _step(budget, _facts("5", PERIOD.end + timedelta(minutes=1), december))
    assert notes[0] == "PeriodStarted"
    assert budget.status.spent.usd == Decimal(5)  # type: ignore[union-attr]
    assert budget.status.state.value == "Ok"  # type: ignore[union-attr]
    assert budget.status.active_actions == []  # type: ignore[union-attr]
