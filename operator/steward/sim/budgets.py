"""Budgets and CostPolicies from a policies directory, and each Budget's spend per period.

A trace job runs as a TrainingJob named after it in the namespace of its group (openb: ``openb``;
Alibaba: ``org-<organization>``), whose labels are the mapping's ``namespace_labels``; a Budget
or CostPolicy covers the jobs its scope selects, by the operator's own ``selects``. Periods are
the operator's (``steward.cost.periods``) with simulation time 0 at :data:`EPOCH`, so a Monthly
budget resets on its day of the month in its time zone. A breach is a period whose spend of a
limited unit (USD, kWh, kgCO2e) ended above the limit.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final

import yaml
from pydantic import ValidationError

from steward.api.v1alpha1.budget import Budget
from steward.api.v1alpha1.costpolicy import CostPolicy
from steward.api.v1alpha1.gpunodepool import GPUNodePool
from steward.cost.accounting import Amounts
from steward.cost.periods import Window, window
from steward.cost.usage import WorkloadRef
from steward.policy.scope import WorkloadFacts, selects
from steward.sim.mapping import SimMapping
from steward.sim.model import SimJob

#: Simulation time 0 as a moment, for the decision code's datetimes.
EPOCH: Final = datetime(2020, 1, 1, tzinfo=UTC)
TRAINING_JOB: Final = "TrainingJob"
DAY: Final = 86400.0


class PolicyError(ValueError):
    """A policies directory with a Budget or CostPolicy that cannot be used."""


@dataclass(frozen=True)
class Governance:
    """The Budgets and CostPolicies a replay runs under, and its GPU node pools (none: GPUs
    are only counted, :mod:`steward.sim.pools`)."""

    budgets: tuple[Budget, ...] = ()
    policies: tuple[CostPolicy, ...] = ()
    pools: tuple[GPUNodePool, ...] = ()


def load_governance(directory: Path | None) -> Governance:
    """The Budgets, CostPolicies and GPUNodePools in the YAML files of ``directory`` (other
    kinds ignored); :class:`PolicyError` names the file, object and field of an invalid one."""
    if directory is None:
        return Governance()
    budgets: list[Budget] = []
    policies: list[CostPolicy] = []
    pools: list[GPUNodePool] = []
    for path in sorted(directory.glob("*.y*ml")):
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as error:
            raise PolicyError(f"{path}: not YAML: {error}") from None
        for document in documents:
            kind = document.get("kind") if isinstance(document, dict) else None
            try:
                if kind == "Budget":
                    budgets.append(Budget.model_validate(document))
                elif kind == "CostPolicy":
                    policies.append(CostPolicy.model_validate(document))
                elif kind == "GPUNodePool":
                    pools.append(GPUNodePool.model_validate(document))
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                name = (document.get("metadata") or {}).get("name", "?")
                raise PolicyError(f"{path}: {kind} {name}: {where}: {first['msg']}") from None
    return Governance(tuple(budgets), tuple(policies), tuple(pools))


def job_facts(job: SimJob, mapping: SimMapping) -> WorkloadFacts:
    """What scopes select a trace job by (see the module docstring)."""
    ref = WorkloadRef(TRAINING_JOB, job.group, job.name)
    return WorkloadFacts(ref, namespace_labels=mapping.namespace_labels)


def moment(at: float) -> datetime:
    """Simulation time as the decision code's datetime."""
    return EPOCH + timedelta(seconds=at)


def seconds(at: datetime) -> float:
    return (at - EPOCH).total_seconds()


@dataclass
class PeriodSpend:
    """One period of a Budget, in simulation seconds, and what its scope spent in it."""

    start: float
    end: float
    usd: float = 0.0
    kwh: float = 0.0
    kg_co2e: float = 0.0


@dataclass
class _Pending:
    """Spend since the governor last took it (the next accounting window's facts)."""

    spot_usd: float = 0.0
    on_demand_usd: float = 0.0
    kwh: float = 0.0
    kg_co2e: float = 0.0
    gpu_seconds: float = 0.0


@dataclass
class _Ledger:
    budget: Budget
    periods: list[PeriodSpend] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    pending: _Pending = field(default_factory=_Pending)
    daily_usd: list[float] = field(default_factory=list)


class BudgetBook:
    """Each Budget's spend per period over the jobs its scope selects."""

    def __init__(self, budgets: Sequence[Budget], facts: Sequence[WorkloadFacts]) -> None:
        self._ledgers = [_Ledger(budget) for budget in budgets]
        #: Per job, the indices of the budgets selecting it.
        self.members: list[tuple[int, ...]] = [
            tuple(i for i, budget in enumerate(budgets) if selects(budget.spec.scope, f))
            for f in facts
        ]

    @property
    def budgets(self) -> tuple[Budget, ...]:
        return tuple(ledger.budget for ledger in self._ledgers)

    def period(self, budget: int, at: float) -> PeriodSpend:
        """The period of budget number ``budget`` that contains ``at``."""
        ledger = self._ledgers[budget]
        if not ledger.periods:
            self._append(ledger, window(ledger.budget.spec.period, moment(at)))
        while ledger.periods[-1].end <= at:
            self._append(ledger, window(ledger.budget.spec.period, moment(ledger.periods[-1].end)))
        index = max(bisect_right(ledger.starts, at) - 1, 0)
        return ledger.periods[index]

    @staticmethod
    def _append(ledger: _Ledger, period: Window) -> None:
        ledger.periods.append(PeriodSpend(seconds(period.start), seconds(period.end)))
        ledger.starts.append(ledger.periods[-1].start)

    def add(
        self,
        job: int,
        at: float,
        *,
        usd: float,
        on_spot: bool,
        kwh: float,
        kg_co2e: float,
        gpu_seconds: float,
    ) -> None:
        """Charge spend at ``at`` (within one period of every budget) to the job's budgets."""
        for budget in self.members[job]:
            period = self.period(budget, at)
            period.usd += usd
            period.kwh += kwh
            period.kg_co2e += kg_co2e
            ledger = self._ledgers[budget]
            day = int(at // DAY)
            if day >= len(ledger.daily_usd):
                ledger.daily_usd.extend([0.0] * (day + 1 - len(ledger.daily_usd)))
            ledger.daily_usd[day] += usd
            pending = ledger.pending
            if on_spot:
                pending.spot_usd += usd
            else:
                pending.on_demand_usd += usd
            pending.kwh += kwh
            pending.kg_co2e += kg_co2e
            pending.gpu_seconds += gpu_seconds

    def take(self, budget: int) -> Amounts:
        """The budget's spend since the last call, as the accounting's figures."""
        ledger = self._ledgers[budget]
        pending, ledger.pending = ledger.pending, _Pending()
        return Amounts(
            spot_usd=Decimal(repr(pending.spot_usd)),
            on_demand_usd=Decimal(repr(pending.on_demand_usd)),
            kwh=Decimal(repr(pending.kwh)),
            kg_co2e=Decimal(repr(pending.kg_co2e)),
            gpu_seconds=Decimal(repr(pending.gpu_seconds)),
        )

    def spend(self, budget: int) -> list[PeriodSpend]:
        """The periods of budget number ``budget`` up to the last one that saw spend."""
        return list(self._ledgers[budget].periods)

    def daily_usd(self, budget: int) -> list[float]:
        """USD budget number ``budget`` saw per day of simulation time."""
        return list(self._ledgers[budget].daily_usd)

    def breaches(self) -> int:
        """Periods, over every budget, whose spend of a limited unit ended above its limit."""
        count = 0
        for ledger in self._ledgers:
            limits = ledger.budget.spec.limits
            for period in ledger.periods:
                over = (
                    (limits.usd, period.usd),
                    (limits.kwh, period.kwh),
                    (limits.kg_co2e, period.kg_co2e),
                )
                if any(limit is not None and spent > float(limit) + 1e-9 for limit, spent in over):
                    count += 1
        return count
