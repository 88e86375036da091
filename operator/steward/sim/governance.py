"""Steward's governance in a replay, through the operator's own pure code.

At every governor tick (each ``governor_interval_seconds`` of simulated time, and at every
period boundary of a Budget) :meth:`SimGovernor.tick`:

1. accounts each Budget with ``steward.policy.budgets.reconcile_budget``: the spend of the jobs
   its scope selects since the last tick (running jobs accrued up to now) is the window's
   spend, and the burn rate over that window makes the forecast, as in the operator; the
   status it returns (state, the ladder's active actions) is what the governor reads;
2. decides with ``steward.policy.governor.decide`` over a snapshot of the live jobs as
   TrainingJobs (spec from the mapping, phase and attempt from the replay, GPU-hour prices from
   the traces at that moment). Enforce decisions become the job's directive; DryRun ones are
   only counted.

   ``decide`` sees only the jobs whose phase or attempt moved since it last saw them, the ones
   it deferred, or every live job when a Budget's actions, its staleness or the spot price
   moved. That gives the decisions a full snapshot gives: a job's decision depends only on its
   own inputs and those, and the per-policy rate limit is consumed only by jobs whose
   directive is not yet the desired one, which are always in. (Under DryRun nothing is
   applied, so the operator would also re-decide unchanged jobs each cycle; the replay counts
   each recorded decision once, as the operator records it once.)

New jobs pass ``steward.policy.governor.admission`` before their first attempt (at arrival and,
while held, at every tick), as the TrainingJob controller asks it. The engine carries the
directives out as the controller does: suspension and capacity moves wait for the next
checkpoint (:func:`steward.policy.training.capacity_move`), resuming when the directive goes.

The replay's data is never stale, so the staleness rules never hold anything here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from steward.api.directive import GovernorDirective
from steward.api.v1alpha1.budget import Budget
from steward.api.v1alpha1.common import ObjectMeta, PolicyMode
from steward.api.v1alpha1.trainingjob import (
    TrainingJob,
    TrainingJobPhase,
    TrainingJobSpec,
    TrainingJobStatus,
)
from steward.cost.accounting import Amounts
from steward.cost.catalog import GPUHourPrices
from steward.cost.periods import Window
from steward.policy.budgets import BudgetFacts, reconcile_budget
from steward.policy.governor import (
    Decision,
    Snapshot,
    WorkloadView,
    admission,
    data_stale,
    decide,
)
from steward.policy.scope import WorkloadFacts
from steward.sim.budgets import BudgetBook, Governance, PeriodSpend, moment
from steward.sim.model import PriceSeries, SimJob


@dataclass(frozen=True)
class LiveJob:
    """A job the governor sees: arrived, not finished."""

    index: int
    phase: TrainingJobPhase
    attempt: int


class SimGovernor:
    """Budgets, directives and admission for one replay (see the module docstring)."""

    def __init__(
        self,
        governance: Governance,
        book: BudgetBook,
        *,
        jobs: Sequence[SimJob],
        facts: Sequence[WorkloadFacts],
        specs: Sequence[TrainingJobSpec],
        prices: PriceSeries,
        interval: float,
    ) -> None:
        self.budgets: list[Budget] = list(book.budgets)
        self.policies = governance.policies
        self.book = book
        self.jobs, self.facts, self.specs, self.prices = jobs, facts, specs, prices
        self.interval = interval
        self.directives: dict[int, GovernorDirective] = {}
        #: Actions applied (Enforce), and recorded (DryRun ``Would<Action>``, once per job and
        #: action as the operator records each distinct decision once), by name.
        self.actions: Counter[str] = Counter()
        self._recorded: set[tuple[int, str]] = set()
        self._views: dict[int, tuple[LiveJob, TrainingJob]] = {}
        #: What ``decide`` last saw: the budgets' actions and the price, each job, deferrals.
        self._context: tuple[object, ...] = ()
        self._seen: dict[int, LiveJob] = {}
        self._deferred: set[int] = set()
        self._admission_context: tuple[object, ...] = ()
        self._index = {f.ref: i for i, f in enumerate(facts)}
        self._last = 0.0
        self._spot_rules = any(p.spec.spot and p.spec.spot.training for p in self.policies)

    def next_tick(self, now: float) -> float:
        """The next tick after ``now``: an interval on, or a Budget's period boundary first."""
        ends = [self.book.period(i, now).end for i in range(len(self.budgets))]
        return min([now + self.interval, *(end for end in ends if end > now)])

    # --- One tick -------------------------------------------------------------------------------
    def tick(self, now: float, live: Sequence[LiveJob]) -> list[int]:
        """Account the Budgets up to ``now`` (every run accrued to it), decide, apply Enforce
        decisions; the indices of the jobs whose directive changed."""
        for number, budget in enumerate(self.budgets):
            self.budgets[number] = self._account(number, budget, now)
        self._last = now
        if not self._may_decide():
            return []
        prices = self._prices(now)
        seen = self._seen
        context = (tuple(_asked(b) for b in self.budgets), prices.spot)
        if context != self._context:
            self._context, seen = context, {}
        changed = [j for j in live if seen.get(j.index) != j or j.index in self._deferred]
        if not changed:
            return []
        snapshot = Snapshot(budgets=tuple(self.budgets), prices={None: prices},
                            workloads=tuple(self._view(job) for job in changed))  # fmt: skip
        plan = decide(snapshot, self.policies, moment(now))
        self._seen.update((j.index, j) for j in changed)
        self._deferred = {self._index[d.ref] for d in plan.deferred}
        return [index for d in plan.decisions if (index := self._apply(d)) is not None]

    def forget(self, index: int) -> None:
        """Job ``index`` is done: nothing more to decide for it."""
        self.directives.pop(index, None)
        self._seen.pop(index, None)
        self._views.pop(index, None)

    def _account(self, number: int, budget: Budget, now: float) -> Budget:
        """The budget reconciled with its spend over ``(last tick, now]`` (one period: ticks
        fall on period boundaries), and at a boundary once more with the new empty period."""
        period = self.book.period(number, self._last)
        spent = self.book.take(number)
        hours = Decimal(repr(max(now - self._last, 1.0) / 3600))
        rate = Amounts(on_demand_usd=spent.usd / hours, kwh=spent.kwh / hours,
                       kg_co2e=spent.kg_co2e / hours)  # fmt: skip
        budget = self._reconcile(budget, BudgetFacts(_window(period), spent, rate, moment(now)))
        if now >= period.end:
            new = _window(self.book.period(number, now))
            budget = self._reconcile(budget, BudgetFacts(new, Amounts(), Amounts(), moment(now)))
        return budget

    @staticmethod
    def _reconcile(budget: Budget, facts: BudgetFacts) -> Budget:
        at = facts.accounted_until
        fresh = replace(facts, last_sample_time=at)
        status = reconcile_budget(budget, fresh, now=at).status
        return budget.model_copy(update={"status": status})

    def _may_decide(self) -> bool:
        """``decide`` changes nothing without an action in force, a directive to remove or a
        policy's own spot rule: skipping it then is exact, and keeps long replays fast."""
        asked = any(b.status and b.status.active_actions for b in self.budgets)
        return bool(self.directives) or self._spot_rules or asked

    def _view(self, job: LiveJob) -> WorkloadView:
        """The job as the governor sees it; built again only when its phase or attempt moved
        (pydantic objects are the replay's most expensive part)."""
        cached = self._views.get(job.index)
        if cached is None or cached[0] != job:
            facts = self.facts[job.index]
            meta = ObjectMeta(name=facts.ref.name, namespace=facts.ref.namespace)
            status = TrainingJobStatus(phase=job.phase, attempt=job.attempt)
            training = TrainingJob(metadata=meta, spec=self.specs[job.index], status=status)
            cached = self._views[job.index] = (job, training)
        directive = self.directives.get(job.index)
        return WorkloadView(self.facts[job.index], training=cached[1], directive=directive)

    def _prices(self, now: float) -> GPUHourPrices:
        prices = self.prices
        return GPUHourPrices(Decimal(repr(prices.on_demand)), Decimal(repr(prices.spot_at(now))),
                             f"trace {prices.name}")  # fmt: skip

    def _apply(self, decision: Decision) -> int | None:
        index = self._index[decision.ref]
        if decision.mode != PolicyMode.ENFORCE:
            for action in decision.added:
                self._record(index, f"Would{action.value}")
            return None
        self.actions.update(action.value for action in decision.added)
        if decision.directive is None:
            self.directives.pop(index, None)
        else:
            self.directives[index] = decision.directive
        return index

    # --- Admission ------------------------------------------------------------------------------
    def admits(self, index: int, now: float) -> bool:
        """Whether job ``index`` may start its first attempt now (``admission`` under Enforce;
        a DryRun block is counted and the job starts)."""
        if not self.policies:
            return True
        held = admission(self.facts[index], self.jobs[index].priority, self.budgets,
                         self.policies, moment(now))  # fmt: skip
        if held is None:
            return True
        if held.mode != PolicyMode.ENFORCE:
            self._record(index, "WouldBlockNewWork")
            return True
        return False

    def released(self, held: Sequence[int], now: float) -> list[int]:
        """Which of the jobs ``admission`` held may start now. ``admission`` reads only the
        Budgets' actions in force (and staleness), so while those stand still nothing is
        released and the jobs are not asked about again."""
        asked = tuple(_asked(b) for b in self.budgets)
        if asked == self._admission_context:
            return []
        self._admission_context = asked
        return [index for index in held if self.admits(index, now)]

    def _record(self, index: int, action: str) -> None:
        if (index, action) not in self._recorded:
            self._recorded.add((index, action))
            self.actions[action] += 1

    def directive(self, index: int) -> GovernorDirective | None:
        return self.directives.get(index)


def _asked(budget: Budget) -> tuple[object, ...]:
    """What of a budget's status ``decide`` acts on: its actions in force and staleness."""
    status = budget.status
    return (tuple(status.active_actions) if status else (), data_stale(budget))


def _window(period: PeriodSpend) -> Window:
    return Window(moment(period.start), moment(period.end))
