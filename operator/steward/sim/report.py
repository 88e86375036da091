"""The replay's report: per policy the figures, and Steward's cost as a ratio of each baseline
and of the lower bound; as a rich table, Markdown, JSON and PNG plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from steward.api.v1alpha1.budget import Budget
from steward.sim.engine import PolicyResult

STEWARD = "steward"
#: (column title, attribute, format) of the summary.
COLUMNS = (
    ("policy", "policy", "{}"),
    ("USD", "usd", "{:,.2f}"),
    ("GPU-h", "gpu_hours", "{:,.1f}"),
    ("node GPU-h", "node_gpu_hours", "{:,.1f}"),
    ("spot share", "spot_share", "{:.1%}"),
    ("kWh", "kwh", "{:,.1f}"),
    ("kgCO2e", "kg_co2e", "{:,.1f}"),
    ("deadline misses", "deadline_misses", "{}"),
    ("JCT mean h", "jct_mean_hours", "{:.2f}"),
    ("JCT p95 h", "jct_p95_hours", "{:.2f}"),
    ("preemptions", "preemptions", "{}"),
    ("lost GPU-h", "lost_gpu_hours", "{:,.1f}"),
    ("budget breaches", "budget_breaches", "{}"),
    ("governor actions", "governor_actions", ""),
    ("Steward / this", "", ""),
)


@dataclass(frozen=True)
class Report:
    """A replay's inputs (names) and each policy's result."""

    workload: str
    capacity: str
    prices: str
    jobs: int
    results: Sequence[PolicyResult]
    budgets: Sequence[Budget] = ()

    def ratio(self, policy: str) -> float | None:
        """Steward's USD over ``policy``'s (``None`` without a Steward result or cost)."""
        steward = self._result(STEWARD)
        other = self._result(policy)
        if steward is None or other is None or other.usd == 0:
            return None
        return steward.usd / other.usd

    def _result(self, policy: str) -> PolicyResult | None:
        return next((r for r in self.results if r.policy == policy), None)

    def rows(self) -> list[list[str]]:
        rows = []
        for result in self.results:
            row = [_cell(getattr(result, attr), fmt) for _, attr, fmt in COLUMNS[:-1]]
            ratio = self.ratio(result.policy)
            row.append("-" if ratio is None else f"{ratio:.3f}")
            rows.append(row)
        return rows

    def table(self) -> Table:
        table = Table(title=f"{self.workload} on {self.capacity}, prices {self.prices}")
        for title, _, _ in COLUMNS:
            table.add_column(title, justify="left" if title == "policy" else "right")
        for row in self.rows():
            table.add_row(*row)
        return table

    def markdown(self) -> str:
        head = "| " + " | ".join(title for title, _, _ in COLUMNS) + " |"
        rule = "|" + "---|" * len(COLUMNS)
        lines = [f"### {self.workload} on {self.capacity} (prices: {self.prices})", "",
                 f"{self.jobs} jobs.", "", head, rule]  # fmt: skip
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "capacity": self.capacity,
            "prices": self.prices,
            "jobs": self.jobs,
            "results": [
                {**asdict(r), "spot_share": r.spot_share, "steward_ratio": self.ratio(r.policy)}
                for r in self.results
            ],
        }


def _cell(value: object, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):  # the governor's actions: "ShiftToSpot 3, SuspendLowPriority 1"
        return ", ".join(f"{name} {count}" for name, count in value.items()) or "-"
    return fmt.format(value)


def write(report: Report, folder: Path) -> list[Path]:
    """Write report.md, report.json and the plots into ``folder``; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "report.md", folder / "report.json"]
    written[0].write_text(report.markdown(), encoding="utf-8")
    written[1].write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    written += plot(report, folder)
    return written


def plot(report: Report, folder: Path) -> list[Path]:
    """Cumulative cost per policy, daily spot share, and the budget burn-down (PNG)."""
    import matplotlib  # noqa: PLC0415 (optional: only for plots)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    paths = []
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for result in report.results:
        total, series = 0.0, []
        for usd in result.daily_usd:
            total += usd
            series.append(total)
        axes.plot(range(len(series)), series, label=result.policy)
    axes.set(xlabel="day", ylabel="cumulative USD", title="Cost over time per policy")
    axes.legend()
    paths.append(_save(figure, folder / "cost.png"))
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for result in report.results:
        if result.policy == "lower-bound":
            continue
        share = [s / u if u else 0.0 for s, u in zip(result.daily_spot_usd, result.daily_usd,
                                                      strict=False)]  # fmt: skip
        axes.plot(range(len(share)), share, label=result.policy)
    axes.set(xlabel="day", ylabel="spot share of the day's USD", title="Spot share")
    axes.legend()
    paths.append(_save(figure, folder / "spot-share.png"))
    priced = [b for b in report.budgets if b.spec.limits.usd is not None]
    if priced:
        paths.append(_burn_down(report, priced[0], folder / "budget-burn-down.png"))
    return paths


def _burn_down(report: Report, budget: Budget, path: Path) -> Path:
    """USD left of ``budget``'s limit at the end of each day of its periods (its spend counted
    from the day each period starts); below zero is a breach. Replayed policies only."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    name, limit = budget.metadata.name or "0", float(budget.spec.limits.usd or 0)
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for result in report.results:
        if name not in result.budget_daily_usd:
            continue
        starts = set(result.budget_period_days[name])
        left, series = limit, []
        for day, usd in enumerate(result.budget_daily_usd[name]):
            left = (limit if day in starts else left) - usd
            series.append(left)
        axes.plot(range(len(series)), series, label=result.policy)
    axes.axhline(0, color="black", linewidth=0.8)
    title = f"Budget {name}: {limit:,.0f} USD per {budget.spec.period.type.value} period"
    axes.set(xlabel="day", ylabel="USD left in the period", title=title)
    axes.legend()
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.close(figure)
    return path
