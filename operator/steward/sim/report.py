"""The replay's report: per policy the figures, and Steward's cost as a ratio of each baseline
and of the lower bound; as a rich table, Markdown, JSON and PNG plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from steward.sim.budgets import SimBudget
from steward.sim.engine import PolicyResult

STEWARD = "steward"
#: (column title, attribute, format) of the summary.
COLUMNS = (
    ("policy", "policy", "{}"),
    ("USD", "usd", "{:,.2f}"),
    ("GPU-h", "gpu_hours", "{:,.1f}"),
    ("spot share", "spot_share", "{:.1%}"),
    ("kWh", "kwh", "{:,.1f}"),
    ("kgCO2e", "kg_co2e", "{:,.1f}"),
    ("deadline misses", "deadline_misses", "{}"),
    ("JCT mean h", "jct_mean_hours", "{:.2f}"),
    ("JCT p95 h", "jct_p95_hours", "{:.2f}"),
    ("preemptions", "preemptions", "{}"),
    ("lost GPU-h", "lost_gpu_hours", "{:,.1f}"),
    ("budget breaches", "budget_breaches", "{}"),
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
    budgets: Sequence[SimBudget] = ()

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
            row = [fmt.format(getattr(result, attr)) for _, attr, fmt in COLUMNS[:-1]]
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
    if report.budgets:
        paths.append(_burn_down(report, report.budgets[0], folder / "budget-burn-down.png"))
    return paths


def _burn_down(report: Report, budget: SimBudget, path: Path) -> Path:
    """USD left of ``budget`` at the end of each day, its period restarting every
    ``period_days``; below zero is a breach."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for result in report.results:
        left, series = budget.limit_usd, []
        for day, usd in enumerate(result.daily_usd):
            if day % budget.period_days == 0:
                left = budget.limit_usd
            left -= usd
            series.append(left)
        axes.plot(range(len(series)), series, label=result.policy)
    axes.axhline(0, color="black", linewidth=0.8)
    title = f"Budget {budget.name}: {budget.limit_usd:,.0f} USD per {budget.period_days} d"
    axes.set(xlabel="day", ylabel="USD left in the period", title=title)
    axes.legend()
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.close(figure)
    return path
