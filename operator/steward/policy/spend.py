"""From one window's ledger to what each Budget and workload is told. Pure.

Every Budget and workload remembers how far it has been accounted (``status.accountedUntil``).
A cycle's window is shared by all of them; each takes the part after its own mark, so a restart
or a failed status write repeats nothing and loses nothing. A window that crosses a budget's
period boundary is split there: the old period is closed with its part, the new one opened
with the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from steward.api.v1alpha1.budget import Budget
from steward.cost.accounting import SECONDS_PER_HOUR, Amounts, Attribution, Ledger, account
from steward.cost.catalog import PriceCatalog
from steward.cost.periods import window
from steward.cost.usage import Usage, WorkloadRef
from steward.policy.budgets import BudgetFacts
from steward.policy.scope import WorkloadFacts, selects


class LedgerBook:
    """Ledgers of one window by ``(since, until)``, each computed once however many ask."""

    def __init__(self, usage: Usage, catalog: PriceCatalog, attribution: Attribution) -> None:
        self.usage = usage
        self._catalog = catalog
        self._attribution = attribution
        self._ledgers: dict[tuple[datetime, datetime | None], Ledger] = {}

    @property
    def start(self) -> datetime:
        return self.usage.grid.start

    @property
    def end(self) -> datetime:
        return self.usage.grid.end

    def between(self, since: datetime, until: datetime | None = None) -> Ledger:
        key = (max(since, self.start), until)
        if key not in self._ledgers:
            self._ledgers[key] = account(
                self.usage, self._catalog, since=key[0], until=until, attribution=self._attribution
            )
        return self._ledgers[key]

    def rate_per_hour(self, refs: Sequence[WorkloadRef]) -> Amounts:
        """The spend per hour of ``refs`` over the whole window's covered time."""
        ledger = self.between(self.start)
        if ledger.covered_seconds == 0:
            return Amounts()
        hours = Decimal(ledger.covered_seconds) / SECONDS_PER_HOUR
        total = ledger.for_workloads(refs)
        return Amounts(
            on_demand_usd=total.usd / hours, kwh=total.kwh / hours, kg_co2e=total.kg_co2e / hours
        )

    def freshness(self) -> tuple[datetime | None, str | None]:
        """The newest covered step's time, and why the data is stale when the last step is not
        covered."""
        grid = self.usage.grid
        covered = [i for i in self.usage.covered if i >= 1]
        last = grid.time(max(covered)) if covered else None
        if grid.steps in self.usage.covered:
            return last, None
        since = last.isoformat() if last else "the start of the window"
        return last, f"no complete, fresh metrics since {since}"


def in_scope(budget: Budget, workloads: Sequence[WorkloadFacts]) -> list[WorkloadRef]:
    return [w.ref for w in workloads if selects(budget.spec.scope, w)]


def budget_facts(
    budget: Budget, book: LedgerBook, workloads: Sequence[WorkloadFacts]
) -> list[BudgetFacts]:
    """What the window adds to ``budget``: one part, or two when a period ends inside it.

    Empty when the budget is already accounted to the window's end.
    """
    status = budget.status
    mark = status.accounted_until if status and status.accounted_until else book.start
    since = max(mark, book.start)
    if since >= book.end:
        return []
    refs = in_scope(budget, workloads)
    rate = book.rate_per_hour(refs)
    last_sample, stale = book.freshness()
    parts = []
    while since < book.end:
        period = window(budget.spec.period, since)
        until = min(period.end, book.end)
        ledger = book.between(since, until if until < book.end else None)
        parts.append(
            BudgetFacts(
                period=period,
                spent=ledger.for_workloads(refs),
                rate_per_hour=rate,
                accounted_until=until,
                uncovered_seconds=ledger.uncovered_seconds,
                last_sample_time=last_sample,
                stale_reason=stale,
            )
        )
        since = until
    return parts
