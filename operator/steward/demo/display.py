"""How the demo looks: a live dashboard on a terminal, plain lines elsewhere (CI, pipes)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from steward.demo.script import Goal
from steward.demo.summary import Summary
from steward.demo.view import Event, View

EVENTS_SHOWN = 9


def dashboard(
    view: View, goals: Sequence[Goal], story: Sequence[str], elapsed: float, scale: int
) -> Group:
    """The live screen: budget, workloads, nodes, Steward's latest Events, the goals."""
    header = Text.from_markup(
        f"[bold]steward demo[/]  {elapsed:4.0f}s   prices x{scale}: a minute here costs what "
        "an hour would; the Budget's period is minutes long"
    )
    return Group(
        header,
        _budget(view),
        _workloads(view),
        _nodes(view),
        _events(view.events),
        _goals(goals),
        Panel("\n".join(story[-4:]) or "-", title="what the demo does"),
    )


def _budget(view: View) -> Panel:
    budget = view.budget
    if budget is None:
        return Panel("no Budget yet", title="budget")
    width = 40
    filled = min(int(width * budget.percent / 100), width)
    bar = "█" * filled + "░" * (width - filled)
    actions = ", ".join(budget.actions) or "none"
    text = (
        f"{bar} {budget.percent:5.1f}%  ${budget.spent_usd:,.2f} of ${budget.limit_usd:,.0f}"
        f"  state {budget.state}  ladder actions: {actions}"
    )
    return Panel(text, title="Budget team-ml-research (from the accounting, per window)")


def _workloads(view: View) -> Table:
    table = Table(title="workloads (status written by Steward)", expand=True)
    for column in ("kind", "name", "phase", "capacity", "detail", "cost USD"):
        table.add_column(column, justify="right" if column == "cost USD" else "left")
    for w in view.workloads:
        table.add_row(w.kind, w.name, w.phase, w.capacity, w.detail, f"{w.usd:,.2f}")
    return table


def _nodes(view: View) -> Table:
    table = Table(title="GPU nodes (created and removed by Steward's node pools)", expand=True)
    for column in ("node", "pool", "capacity", "GPUs used"):
        table.add_column(column)
    for n in view.nodes:
        table.add_row(n.name, n.pool, n.capacity, f"{n.gpus_used}/{n.gpus}")
    return table


def _events(events: Sequence[Event]) -> Table:
    table = Table(title="Steward's latest Events (why it acted)", expand=True)
    table.add_column("object", no_wrap=True)
    table.add_column("reason", no_wrap=True)
    table.add_column("note", overflow="fold")
    for e in events[-EVENTS_SHOWN:]:
        style = "yellow" if e.warning else ""
        table.add_row(f"{e.kind}/{e.name}", Text(e.reason, style=style), e.note[:160])
    return table


def _goals(goals: Sequence[Goal]) -> Table:
    table = Table(title="what Steward must show", expand=True, show_header=False)
    table.add_column("mark", width=2)
    table.add_column("goal")
    for g in goals:
        table.add_row(
            "[green]✓[/]" if g.met else "·", g.text + (f" ({g.detail})" if g.detail else "")
        )
    return table


def event_line(event: Event) -> str:
    """One Event as a plain line (for the non-live output)."""
    return f"  event {event.kind}/{event.name} {event.reason}: {event.note[:200]}"


def summary_table(summary: Summary) -> Group:
    """The final numbers, with where they come from."""
    table = Table(
        title="what the demo cost (USD at demo prices), from the accounting code", expand=True
    )
    for column in (
        "workload",
        "GPU-h",
        "spot USD",
        "on-demand USD",
        "total USD",
        "all on-demand USD",
        "kWh",
        "status USD",
    ):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for w in summary.workloads:
        table.add_row(
            f"{w.kind}/{w.name}",
            f"{w.gpu_hours:.3f}",
            f"{w.spot_usd:,.2f}",
            f"{w.on_demand_usd:,.2f}",
            f"{w.usd:,.2f}",
            f"{w.usd_if_on_demand:,.2f}",
            f"{w.kwh:.3f}",
            "no workload" if w.status_usd is None else f"{w.status_usd:,.2f}",
        )
    scale = summary.price_scale
    carbon = (
        f"{summary.kg_co2e:.3f} kgCO2e"
        if summary.kwh_without_carbon < summary.kwh
        else "no carbon figure (the catalog has no grid intensity for this region)"
    )
    lines = [
        f"Spent ${summary.usd:,.2f}; the same work on on-demand: ${summary.usd_if_on_demand:,.2f}."
        f" [bold green]Saved ${summary.saved_usd:,.2f} ({summary.saved_percent:.1f}%)[/]"
        f" (at real prices: ${summary.saved_usd / scale:,.2f}"
        f" of ${summary.usd_if_on_demand / scale:,.2f}).",
        f"Energy: {summary.kwh:.3f} kWh ({summary.gpu_hours:.3f} GPU-hours, measured DCGM power x"
        f" PUE); {carbon}. Spot changes the price, not the watts: on-demand would use the same.",
        f"The operator's running accounts: Budget spent ${summary.budget_spent_usd:,.2f}, workload"
        f" statuses ${summary.status_total_usd:,.2f} (pods of no workload, such as the"
        f" compression runner, count in the Budget only); largest difference from the one-shot"
        f" accounting ${summary.largest_difference_usd:.4f}.",
        "Formula: node price per hour x step / 3600, shared by requested GPUs (docs/accounting.md);"
        " the on-demand figure re-prices the same Prometheus samples without spot prices.",
        "Prices: " + "; ".join(summary.prices),
    ]
    return Group(table, Text.from_markup("\n".join(lines)))


def plain_console() -> Console:
    """A console for plain lines (no colours, no cursor movement), as CI logs want them."""
    return Console(force_terminal=False, no_color=True, width=200, highlight=False)
