"""Budget reconciliation: spend, forecast, the threshold ladder, and what it hands on. Pure.

Each cycle adds the spend of the scope's workloads in the newly accounted window to the
period's total (``status.spent``), so status alone carries the period across restarts. The
forecast is ``spent + burn rate x time left``, the burn rate being the scope's spend per hour in
the newest window: the work running now is assumed to keep running until the period ends.

A rung of the ladder is reached when the utilisation on its basis (spent, or forecast, over the
limit, highest over the limited units) is at or above its percent; every reached rung's actions
are active. State: ``Exceeded`` at 100 % spent or more, ``Warning`` when any rung is reached,
``Ok`` otherwise. Active actions are handed on as :class:`BudgetDirective` for the governor.

Missing or stale data never moves the ladder: without new facts the status keeps its figures,
state and actions, and says ``DataStale`` with the time of the last good sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from steward.api.v1alpha1.budget import (
    Budget,
    BudgetAction,
    BudgetState,
    BudgetStatus,
    Threshold,
    ThresholdBasis,
)
from steward.api.v1alpha1.common import ResourceAmounts, ScopeSelector
from steward.cost.accounting import Amounts
from steward.cost.periods import Window
from steward.policy.conditions import condition, set_condition
from steward.policy.notes import Note

DATA_STALE: Final = "DataStale"
#: Amounts in status are kept to a millionth of their unit.
QUANTUM: Final = Decimal("0.000001")
_UNITS: Final = (("usd", "USD"), ("kwh", "kWh"), ("kg_co2e", "kgCO2e"))


@dataclass(frozen=True)
class BudgetFacts:
    """What one cycle's accounting says about a budget's scope.

    Attributes:
        period: The period the accounted interval falls in.
        spent: Spend in scope over ``(status.accountedUntil, accounted_until]``.
        rate_per_hour: The scope's spend per hour in the newest window.
        accounted_until: End of the accounted interval.
        uncovered_seconds: Seconds of the interval with incomplete or stale metrics.
        last_sample_time: The newest step with complete, fresh data, if any.
        stale_reason: Why the newest data is not fresh; None when it is.
    """

    period: Window
    spent: Amounts
    rate_per_hour: Amounts
    accounted_until: datetime
    uncovered_seconds: int = 0
    last_sample_time: datetime | None = None
    stale_reason: str | None = None


@dataclass(frozen=True)
class BudgetDirective:
    """An action of the ladder in force, for the governor to carry out on the scope."""

    budget: str
    action: BudgetAction
    threshold_percent: float
    scope: ScopeSelector
    reason: str


@dataclass(frozen=True)
class BudgetPlan:
    status: BudgetStatus
    notes: tuple[Note, ...]
    directives: tuple[BudgetDirective, ...]


def reconcile_budget(
    budget: Budget,
    facts: BudgetFacts | None,
    *,
    now: datetime,
    generation: int | None = None,
    stale_reason: str | None = None,
) -> BudgetPlan:
    """The budget's next status, Events and directives.

    ``facts`` is None when nothing could be accounted this cycle (Prometheus unreachable);
    ``stale_reason`` then says why.
    """
    previous = budget.status or BudgetStatus()
    if facts is None:
        status = _stale(previous, stale_reason or "no metrics", now=now, generation=generation)
        stale_notes = tuple(_stale_notes(previous, status))
        return BudgetPlan(status, stale_notes, _directives(budget, status))
    notes: list[Note] = []
    status = previous
    if previous.period_start != facts.period.start:
        if previous.period_start is not None:
            notes.append(_period_note(budget, previous, facts.period))
        status = BudgetStatus(conditions=previous.conditions)
    status = _account(budget, status, facts, generation)
    status = _ladder(budget, status, previous if not notes else BudgetStatus(), notes)
    reason = facts.stale_reason
    status = (
        _fresh(status, now=now, generation=generation)
        if reason is None
        else _stale(status, reason, now=now, generation=generation)
    )
    notes.extend(_stale_notes(previous, status))
    return BudgetPlan(status, tuple(notes), _directives(budget, status))


def _account(
    budget: Budget, status: BudgetStatus, facts: BudgetFacts, generation: int | None
) -> BudgetStatus:
    spent = _add(status.spent, facts.spent)
    hours_left = Decimal(max((facts.period.end - facts.accounted_until).total_seconds(), 0)) / 3600
    rate = _amounts(facts.rate_per_hour)
    forecast = _add(spent, _scale(facts.rate_per_hour, hours_left))
    limits = budget.spec.limits
    return status.model_copy(
        update={
            "period_start": facts.period.start,
            "period_end": facts.period.end,
            "spent": spent,
            "forecast": forecast,
            "burn_rate_per_hour": rate,
            "utilization_percent": _percent_of(spent, limits),
            "forecast_utilization_percent": _percent_of(forecast, limits),
            "accounted_until": facts.accounted_until,
            "uncovered_seconds": status.uncovered_seconds + facts.uncovered_seconds,
            "last_sample_time": facts.last_sample_time or status.last_sample_time,
            "observed_generation": generation,
        }
    )


def _ladder(
    budget: Budget, status: BudgetStatus, before: BudgetStatus, notes: list[Note]
) -> BudgetStatus:
    reached = [rung for rung in budget.spec.thresholds if _reached(rung, status)]
    actions = [a for a in BudgetAction if any(a in rung.actions for rung in reached)]
    if status.utilization_percent >= 100:
        state = BudgetState.EXCEEDED
    elif reached:
        state = BudgetState.WARNING
    else:
        state = BudgetState.OK
    top = max((rung.percent for rung in reached), default=None)
    updated = status.model_copy(
        update={"state": state, "active_threshold_percent": top, "active_actions": actions}
    )
    name = budget.metadata.name or ""
    for rung in reached:
        if (
            before.active_threshold_percent is None
            or rung.percent > before.active_threshold_percent
        ):
            notes.append(_rung_note(name, rung, updated, budget))
    if state != before.state:
        words = f"budget {name} is {state.value}: {_usage_words(updated, budget)}"
        if state == BudgetState.OK:
            notes.append(Note("Normal", "BudgetOk", words))
        else:
            notes.append(Note("Warning", f"Budget{state.value}", words))
    return updated


def _reached(rung: Threshold, status: BudgetStatus) -> bool:
    if rung.basis == ThresholdBasis.FORECAST:
        return status.forecast_utilization_percent >= rung.percent
    return status.utilization_percent >= rung.percent


def _rung_note(name: str, rung: Threshold, status: BudgetStatus, budget: Budget) -> Note:
    basis = "forecast" if rung.basis == ThresholdBasis.FORECAST else "spent"
    return Note(
        "Warning",
        "ThresholdReached",
        f"budget {name} reached its {rung.percent:g}% rung ({basis}): "
        f"{_usage_words(status, budget)}; actions {', '.join(a.value for a in rung.actions)}",
    )


def _usage_words(status: BudgetStatus, budget: Budget) -> str:
    parts = []
    for field, unit in _UNITS:
        limit = getattr(budget.spec.limits, field)
        if limit is not None:
            spent = getattr(status.spent, field) or Decimal(0)
            forecast = getattr(status.forecast, field) or Decimal(0)
            parts.append(f"spent {spent:.2f} of {limit} {unit}, forecast {forecast:.2f}")
    return (
        "; ".join(parts)
        + f" ({status.utilization_percent:.1f}% used, {status.forecast_utilization_percent:.1f}%"
        " forecast at period end)"
    )


def _period_note(budget: Budget, previous: BudgetStatus, period: Window) -> Note:
    return Note(
        "Normal",
        "PeriodStarted",
        f"budget {budget.metadata.name} starts the period {period.start.isoformat()} to "
        f"{period.end.isoformat()}; the previous one closed at "
        f"{_usage_words(previous, budget)}",
    )


def _fresh(status: BudgetStatus, *, now: datetime, generation: int | None) -> BudgetStatus:
    conditions = set_condition(
        status.conditions,
        DATA_STALE,
        False,
        "MetricsFresh",
        "every required metric source is fresh",
        now=now,
        generation=generation,
    )
    conditions = set_condition(
        conditions,
        "Ready",
        True,
        "Accounted",
        "spend accounted from Prometheus",
        now=now,
        generation=generation,
    )
    return status.model_copy(update={"conditions": conditions})


def _stale(
    status: BudgetStatus, reason: str, *, now: datetime, generation: int | None
) -> BudgetStatus:
    last = status.last_sample_time.isoformat() if status.last_sample_time else "never"
    message = f"{reason}; last good sample {last}; figures and actions held, nothing escalates"
    conditions = set_condition(
        status.conditions,
        DATA_STALE,
        True,
        "MetricsMissing",
        message,
        now=now,
        generation=generation,
    )
    return status.model_copy(update={"conditions": conditions})


def _stale_notes(previous: BudgetStatus, status: BudgetStatus) -> list[Note]:
    """An Event when data goes stale or comes back, not every cycle it stays so."""
    before, after = (
        condition(previous.conditions, DATA_STALE),
        condition(status.conditions, DATA_STALE),
    )
    if after is None or (before is not None and before.status == after.status):
        return []
    if after.status.value == "True":
        return [Note("Warning", DATA_STALE, after.message)]
    if before is None:
        return []
    return [Note("Normal", "DataFresh", "metrics are fresh again; accounting resumed")]


def _directives(budget: Budget, status: BudgetStatus) -> tuple[BudgetDirective, ...]:
    name = budget.metadata.name or ""
    top = status.active_threshold_percent or 0.0
    reason = f"budget {name}: {_usage_words(status, budget)}"
    return tuple(
        BudgetDirective(name, action, top, budget.spec.scope, reason)
        for action in status.active_actions
    )


def _add(total: ResourceAmounts, delta: Amounts) -> ResourceAmounts:
    return ResourceAmounts(
        usd=status_amount((total.usd or Decimal(0)) + delta.usd),
        kwh=status_amount((total.kwh or Decimal(0)) + delta.kwh),
        kg_co2e=status_amount((total.kg_co2e or Decimal(0)) + delta.kg_co2e),
    )


def _amounts(amounts: Amounts) -> ResourceAmounts:
    return _add(ResourceAmounts(), amounts)


def _scale(amounts: Amounts, factor: Decimal) -> Amounts:
    return Amounts(
        on_demand_usd=amounts.usd * factor,
        kwh=amounts.kwh * factor,
        kg_co2e=amounts.kg_co2e * factor,
    )


def _percent_of(amounts: ResourceAmounts, limits: ResourceAmounts) -> float:
    shares = [
        getattr(amounts, field) / limit * 100
        for field, _ in _UNITS
        if (limit := getattr(limits, field)) is not None
        and limit > 0
        and getattr(amounts, field) is not None
    ]
    return round(float(max(shares, default=Decimal(0))), 3)


def status_amount(value: Decimal) -> Decimal:
    """An amount as status keeps it: never negative, to a millionth of its unit."""
    return max(value, Decimal(0)).quantize(QUANTUM)
