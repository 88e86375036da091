"""The accounting in the operator: built at startup, run by the governor loop each cycle.

Built by kopf at startup when ``steward run`` is given a Prometheus URL. A bad catalog or query
configuration stops the operator at startup with the file and field named, rather than running
with prices nobody chose.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from steward.act.kube import Kube, load_client
from steward.controllers.accountant import Accountant, AccountingSettings
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
