"""One accounting cycle: observe in bulk, account, reconcile budgets, write.

Synchronous and blocking (Kubernetes and Prometheus clients); the kopf side runs it in a thread.
The ladder's actions stay in each Budget's status, where the governor reads them.
Per cycle: four list calls to the apiserver and one range query per configured PromQL query,
whatever the number of workloads; writes only for budgets and for workloads that used GPUs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from steward.act.accounting import (
    serving_latency,
    workload_figures,
    write_budget,
    write_workload,
)
from steward.act.kube import (
    BUDGETS,
    INFERENCE_SERVICES,
    NAMESPACES,
    TRAINING_JOBS,
    Kube,
)
from steward.api.schema import first_error
from steward.api.v1alpha1.budget import Budget, BudgetStatus
from steward.cost.accounting import Amounts, Attribution, Ledger, node_utilization
from steward.cost.catalog import PriceCatalog
from steward.cost.usage import Grid, WorkloadRef
from steward.observe.prometheus import Prometheus, PrometheusError, aligned_end
from steward.observe.queries import QueryConfig
from steward.observe.usage import SERVING, TRAINING, build_usage
from steward.policy.budgets import BudgetPlan, reconcile_budget
from steward.policy.conditions import condition, set_condition
from steward.policy.notes import Note
from steward.policy.placement import CapacityLabels
from steward.policy.scope import WorkloadFacts
from steward.policy.spend import LedgerBook, budget_facts
from steward.snapshot import parse_time

log = logging.getLogger("steward.accounting")
Raw = dict[str, Any]


@dataclass(frozen=True)
class AccountingSettings:
    """How the accounting runs.

    Attributes:
        step_seconds: Grid step of the range queries; at least the scrape interval.
        lag_seconds: How far behind now a window ends, so Prometheus has stored its samples.
        max_sample_age_seconds: A step counts as covered only if every required scrape job
            succeeded at most this long before it.
        max_window_seconds: The longest window one cycle queries; longer catch-ups take
            several cycles.
    """

    capacity_labels: CapacityLabels
    step_seconds: int = 15
    lag_seconds: int = 30
    interval_seconds: float = 30.0
    max_sample_age_seconds: float = 60.0
    max_window_seconds: int = 3600
    attribution: Attribution = Attribution.REQUESTED


@dataclass
class Accountant:
    """The accounting's state between cycles: only the window cursor and what was said."""

    settings: AccountingSettings
    kube: Kube
    prometheus: Prometheus
    catalog: PriceCatalog
    queries: QueryConfig
    cursor: datetime | None = None


@dataclass(frozen=True)
class CycleReport:
    """What a cycle did, for logs, metrics and tests."""

    window: tuple[datetime, datetime] | None
    queries: int
    budgets: int
    workloads_written: int
    stale: str | None = None
    #: Per node: (sum, count) of its GPUs' utilisation samples in the window.
    node_utilization: dict[str, tuple[float, int]] = field(default_factory=dict)
    #: The window's ledger (what each pod and each node's idle part cost), for the metrics.
    ledger: Ledger | None = None


def run_cycle(accountant: Accountant, now: datetime) -> CycleReport:
    """Account the window from the cursor to ``now - lag`` (aligned to the step)."""
    kube = accountant.kube
    budgets = kube.list(BUDGETS)
    grid = _next_grid(accountant, budgets, now)
    if grid is None:
        return CycleReport(None, 0, 0, 0)
    before = accountant.prometheus.queries_issued
    try:
        results = accountant.prometheus.window(grid)
    except PrometheusError as error:
        log.warning("accounting window %s..%s: %s", grid.start, grid.end, error)
        queries = accountant.prometheus.queries_issued - before
        for raw in budgets:
            _stale_budget(kube, raw, str(error), now)
        return CycleReport((grid.start, grid.end), queries, len(budgets), 0, str(error))
    queries = accountant.prometheus.queries_issued - before
    settings = accountant.settings
    usage = build_usage(
        results,
        grid,
        capacity_labels=settings.capacity_labels,
        required_jobs=accountant.queries.required_jobs,
        max_sample_age_seconds=settings.max_sample_age_seconds,
    )
    book = LedgerBook(usage, accountant.catalog, settings.attribution)
    training, serving = kube.list(TRAINING_JOBS), kube.list(INFERENCE_SERVICES)
    namespaces = {_name(ns): _labels(ns) for ns in kube.list(NAMESPACES)}
    workloads = _workload_facts(book, training + serving, namespaces)
    for raw in budgets:
        _account_budget(kube, raw, book, workloads, now)
    written = _write_workloads(kube, book, training + serving)
    accountant.cursor = grid.end
    _, stale = book.freshness()
    return CycleReport(
        (grid.start, grid.end), queries, len(budgets), written, stale,
        node_utilization=node_utilization(usage), ledger=book.between(book.start),
    )  # fmt: skip


def _next_grid(accountant: Accountant, budgets: list[Raw], now: datetime) -> Grid | None:
    settings = accountant.settings
    step = settings.step_seconds
    end = aligned_end(now, step, settings.lag_seconds)
    start = accountant.cursor
    if start is None:
        marks = [
            mark
            for raw in budgets
            if (mark := parse_time((raw.get("status") or {}).get("accountedUntil"))) is not None
        ]
        start = min(marks, default=end - timedelta(seconds=step))
    start = aligned_end(start, step, 0)
    start = max(start, end - timedelta(seconds=settings.max_window_seconds * 24))
    end = min(end, start + timedelta(seconds=settings.max_window_seconds))
    steps = int((end - start).total_seconds()) // step
    if steps <= 0:
        return None
    return Grid(start.astimezone(UTC), step, steps)


def _workload_facts(
    book: LedgerBook, objects: list[Raw], namespaces: dict[str, dict[str, str]]
) -> list[WorkloadFacts]:
    """Every workload the window or the cluster knows: live objects with their labels and cost
    center; deleted ones and pods of no workload with their namespace only."""
    facts: dict[WorkloadRef, WorkloadFacts] = {}
    for obj in objects:
        meta = obj["metadata"]
        ref = WorkloadRef(obj["kind"], meta["namespace"], meta["name"])
        facts[ref] = WorkloadFacts(
            ref=ref,
            labels=meta.get("labels") or {},
            cost_center=(obj.get("spec") or {}).get("costCenter"),
            namespace_labels=namespaces.get(ref.namespace, {}),
        )
    for ref in book.between(book.start).workloads:
        facts.setdefault(
            ref, WorkloadFacts(ref=ref, namespace_labels=namespaces.get(ref.namespace, {}))
        )
    return list(facts.values())


def _account_budget(
    kube: Kube, raw: Raw, book: LedgerBook, workloads: list[WorkloadFacts], now: datetime
) -> None:
    """Add the window to the budget and write its status and Events; the governor reads the
    ladder's actions from that status."""
    try:
        budget = Budget.model_validate(raw)
    except ValidationError as error:
        _refuse_budget(kube, raw, first_error(error), now)
        return
    generation = raw["metadata"].get("generation")
    plan: BudgetPlan | None = None
    notes: list[Note] = []
    for facts in budget_facts(budget, book, workloads):
        plan = reconcile_budget(budget, facts, now=now, generation=generation)
        notes.extend(plan.notes)
        budget = budget.model_copy(update={"status": plan.status})
    if plan is None:
        return
    status = plan.status.model_copy(
        update={
            "conditions": set_condition(
                plan.status.conditions,
                "Valid",
                True,
                "Accepted",
                "the budget is valid",
                now=now,
                generation=generation,
            )
        }
    )
    write_budget(kube, raw, status, tuple(notes), now)


def _stale_budget(kube: Kube, raw: Raw, reason: str, now: datetime) -> None:
    try:
        budget = Budget.model_validate(raw)
    except ValidationError:
        return
    generation = raw["metadata"].get("generation")
    plan = reconcile_budget(budget, None, now=now, generation=generation, stale_reason=reason)
    write_budget(kube, raw, plan.status, plan.notes, now)


def _refuse_budget(kube: Kube, raw: Raw, message: str, now: datetime) -> None:
    """Valid=False and one Event naming the field; the budget is not accounted."""
    try:
        status = BudgetStatus.model_validate(raw.get("status") or {})
    except ValidationError:
        status = BudgetStatus()
    generation = raw["metadata"].get("generation")
    before = condition(status.conditions, "Valid")
    conditions = set_condition(
        status.conditions, "Valid", False, "InvalidSpec", message, now=now, generation=generation
    )
    notes: tuple[Note, ...] = ()
    if before is None or before.message != message or before.status.value != "False":
        notes = (Note("Warning", "InvalidSpec", message),)
    write_budget(kube, raw, status.model_copy(update={"conditions": conditions}), notes, now)


def _write_workloads(kube: Kube, book: LedgerBook, objects: list[Raw]) -> int:
    """Add the window to every workload that used GPUs in it, past its own mark."""
    latest = book.between(book.start)
    written = 0
    for obj in objects:
        meta, status = obj["metadata"], obj.get("status") or {}
        ref = WorkloadRef(obj["kind"], meta["namespace"], meta["name"])
        window = latest.workloads.get(ref)
        if window is None or ref.kind not in (TRAINING, SERVING):
            continue
        mark = parse_time(status.get("accountedUntil")) or book.start
        if mark >= book.end:
            continue
        added = book.between(mark).workloads.get(ref, Amounts())
        figures = workload_figures(
            ref.kind,
            status,
            added=added,
            window=window,
            window_seconds=latest.covered_seconds,
            until=book.end,
            latency=serving_latency(latest.latency.get(ref), latest.start, latest.end),
        )
        write_workload(kube, ref.kind, ref.namespace, ref.name, figures)
        written += 1
    return written


def _name(raw: Raw) -> str:
    return str(raw["metadata"]["name"])


def _labels(raw: Raw) -> dict[str, str]:
    return dict(raw["metadata"].get("labels") or {})
