"""The accounting loop in the operator: one cycle every interval, in a worker thread.

Started by kopf at startup when ``steward run`` is given a Prometheus URL. A bad catalog or query
configuration stops the operator at startup with the file and field named, rather than running
with prices nobody chose.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf

from steward.act.kube import Kube, load_client
from steward.controllers.accountant import Accountant, AccountingSettings, run_cycle
from steward.cost.catalog import CatalogError, load_catalog
from steward.observe.prometheus import Prometheus, PrometheusSettings
from steward.observe.queries import load_query_config

log = logging.getLogger("steward.accounting")


@dataclass(frozen=True)
class AccountingOptions:
    """What ``steward run`` passes: where Prometheus, prices and queries are."""

    prometheus: PrometheusSettings
    accounting: AccountingSettings
    catalog_file: Path | None = None
    queries_file: Path | None = None
    kubeconfig: str | None = None


@kopf.on.startup()
async def start_accounting(memo: kopf.Memo, **_: Any) -> None:
    options: AccountingOptions | None = memo.get("accounting_options")
    if options is None:
        log.info("no Prometheus configured: cost accounting and budgets are off")
        return
    try:
        catalog = load_catalog(options.catalog_file)
        queries = load_query_config(options.queries_file)
    except (CatalogError, ValueError) as error:
        raise kopf.PermanentError(str(error)) from error
    api_client = await asyncio.to_thread(load_client, options.kubeconfig)
    accountant = Accountant(
        settings=options.accounting,
        kube=Kube(api_client),
        prometheus=Prometheus(options.prometheus, queries),
        catalog=catalog,
        queries=queries,
    )
    memo["accountant"] = accountant
    memo["accounting_task"] = asyncio.get_running_loop().create_task(_loop(accountant))


@kopf.on.cleanup()
async def stop_accounting(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get("accounting_task")
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _loop(accountant: Accountant) -> None:
    interval = accountant.settings.interval_seconds
    while True:
        try:
            report = await asyncio.to_thread(run_cycle, accountant, datetime.now(UTC))
            log.info(
                "accounted %s: %d queries, %d budgets, %d workloads%s",
                report.window,
                report.queries,
                report.budgets,
                report.workloads_written,
                f" (stale: {report.stale})" if report.stale else "",
            )
        except Exception:  # one bad cycle must not end the loop; the next one retries
            log.exception("accounting cycle failed")
        await asyncio.sleep(interval)
