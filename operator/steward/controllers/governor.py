"""The governor loop: every interval, on the leader only, account then govern, in a thread.

Accounting (when Prometheus is configured) writes each Budget's spend, state and active
actions; governing then reads them with the workloads and policies and carries out ``decide``'s
plan. One loop, so a cycle's decisions always rest on the budgets that cycle accounted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf

from steward.act.kube import Kube, load_client
from steward.controllers import metrics
from steward.controllers.accountant import Accountant, run_cycle
from steward.controllers.governing import Governor, govern
from steward.controllers.leadership import Leadership
from steward.cost.catalog import CatalogError, load_catalog
from steward.policy.governor import SpotEconomics

log = logging.getLogger("steward.governor")


@dataclass(frozen=True)
class GovernorOptions:
    """What ``steward run`` passes to the loop."""

    interval_seconds: float = 30.0
    catalog_file: Path | None = None
    metrics_port: int = 0
    kubeconfig: str | None = None
    economics: SpotEconomics = field(default_factory=SpotEconomics)


@kopf.on.startup()
async def start_governor(memo: kopf.Memo, **_: Any) -> None:
    options: GovernorOptions = memo.get("governor_options") or GovernorOptions()
    try:
        catalog = load_catalog(options.catalog_file)
    except CatalogError as error:
        raise kopf.PermanentError(str(error)) from error
    api_client = await asyncio.to_thread(load_client, options.kubeconfig)
    governor = Governor(Kube(api_client), catalog, options.economics)
    await asyncio.to_thread(metrics.serve, options.metrics_port)
    leadership: Leadership = memo.get("leadership") or Leadership()
    memo["governor_task"] = asyncio.get_running_loop().create_task(
        _loop(memo, governor, leadership, options.interval_seconds)
    )


@kopf.on.cleanup()
async def stop_governor(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get("governor_task")
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _loop(
    memo: kopf.Memo, governor: Governor, leadership: Leadership, interval: float
) -> None:
    while True:
        leading = leadership.holds()
        metrics.LEADER.set(1 if leading else 0)
        if not leading:
            metrics.step_down()
        if leading:
            accountant: Accountant | None = memo.get("accountant")
            if accountant is not None:
                await _phase("accounting", _account, accountant, governor)
            if leadership.holds():  # accounting may take a while: still the leader?
                await _phase("governor", _govern, governor)
        await asyncio.sleep(interval)


async def _phase(name: str, step: Any, *subjects: Any) -> None:
    started = time.monotonic()
    try:
        await asyncio.to_thread(step, *subjects)
    except Exception:  # one bad cycle must not end the loop; the next one retries
        log.exception("%s cycle failed", name)
    metrics.CYCLE_SECONDS.labels(name).observe(time.monotonic() - started)


def _account(accountant: Accountant, governor: Governor) -> None:
    report = run_cycle(accountant, datetime.now(UTC))
    if report.window is None:
        return
    if report.node_utilization:  # the newest window's; kept through a window without data
        governor.node_utilization = report.node_utilization
    metrics.QUERIES_PER_CYCLE.set(report.queries)
    if report.ledger is not None:
        metrics.count_window(report.ledger.pods, report.ledger.idle.values())
    log.info(
        "accounted %s: %d queries, %d budgets, %d workloads%s",
        report.window, report.queries, report.budgets, report.workloads_written,
        f" (stale: {report.stale})" if report.stale else "",
    )  # fmt: skip


def _govern(governor: Governor) -> None:
    report = govern(governor, datetime.now(UTC))
    if report.plan.decisions or report.conflicts:
        log.info(
            "governed: %d decisions, %d applied, %d conflicts, %d deferred",
            len(report.plan.decisions), report.applied, report.conflicts,
            len(report.plan.deferred),
        )  # fmt: skip
