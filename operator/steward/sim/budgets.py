"""Budgets from a policies directory, and how often a replay breached them.

A replay's jobs carry no namespaces the operator would select by, so each Budget's USD limit is
applied to the whole workload's spend (stated in docs/simulator.md); its period is counted in
whole days from the start of the replay: Daily 1, Weekly 7, Monthly 30, Custom its length
(rounded up to days).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml
from pydantic import ValidationError

from steward.api.v1alpha1.budget import Budget, PeriodType

PERIOD_DAYS: Final = {PeriodType.DAILY: 1, PeriodType.WEEKLY: 7, PeriodType.MONTHLY: 30}


class PolicyError(ValueError):
    """A policies directory whose Budget cannot be used."""


@dataclass(frozen=True)
class SimBudget:
    name: str
    limit_usd: float
    period_days: int


def load_budgets(directory: Path | None) -> list[SimBudget]:
    """The Budgets with a USD limit in the YAML files of ``directory``."""
    if directory is None:
        return []
    budgets = []
    for path in sorted(directory.glob("*.y*ml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(document, dict) or document.get("kind") != "Budget":
                continue
            try:
                budget = Budget.model_validate(document)
            except ValidationError as error:
                raise PolicyError(f"{path}: {error.errors()[0]['msg']}") from None
            if budget.spec.limits.usd is not None:
                budgets.append(SimBudget(budget.metadata.name or path.stem,
                                         float(budget.spec.limits.usd), _days(budget)))  # fmt: skip
    return budgets


def _days(budget: Budget) -> int:
    period = budget.spec.period
    if period.type == PeriodType.CUSTOM and period.length is not None:
        return max(math.ceil(period.length.total_seconds() / 86400), 1)
    return PERIOD_DAYS.get(period.type, 30)


def breaches(daily_usd: Sequence[float], budgets: Sequence[SimBudget]) -> int:
    """Periods, over every budget, whose spend exceeded the budget's limit."""
    count = 0
    for budget in budgets:
        for start in range(0, len(daily_usd), budget.period_days):
            if sum(daily_usd[start : start + budget.period_days]) > budget.limit_usd + 1e-9:
                count += 1
    return count
