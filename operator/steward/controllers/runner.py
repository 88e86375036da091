"""Start the operator: kopf with Steward's settings and every handler module registered."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Final

import kopf

from steward.act.lease import LeaseSettings
from steward.controllers.accounting import AccountingOptions
from steward.controllers.governor import GovernorOptions
from steward.controllers.leadership import Leadership
from steward.controllers.workloads import WorkloadSettings

#: Modules whose import registers kopf handlers; each later controller adds itself here.
HANDLER_MODULES: Final = (
    "steward.controllers.settings",
    "steward.controllers.leadership",
    "steward.controllers.workloads",
    "steward.controllers.accounting",
    "steward.controllers.governor",
)


def run(
    namespaces: Sequence[str],
    liveness_endpoint: str | None,
    *,
    json_logs: bool = False,
    workloads: WorkloadSettings | None = None,
    accounting: AccountingOptions | None = None,
    governor: GovernorOptions | None = None,
    lease: LeaseSettings | None = None,
) -> None:
    """Run the operator until it is stopped (SIGINT/SIGTERM).

    Watches ``namespaces``, or the whole cluster when empty. With ``lease`` only the replica
    holding it acts (see :mod:`steward.controllers.leadership`); without, this one always does.
    Logs go to stderr at INFO, as JSON lines when ``json_logs`` (for log collectors).
    """
    kopf.configure(log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.FULL)
    logging.getLogger().setLevel(logging.INFO)  # kopf's DEBUG chatter is for `--debug` runs
    # kopf logs every watch event's handler at INFO ("Handler 'on_pod' succeeded"): thousands
    # of lines an hour that say nothing. Steward logs its decisions itself.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)

    register_handlers()
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness_endpoint,
        memo=operator_memo(
            workloads=workloads, accounting=accounting, governor=governor, lease=lease
        ),
    )


def register_handlers() -> None:
    """Import every handler module (importing registers its kopf handlers; twice is a no-op)."""
    for module in HANDLER_MODULES:
        importlib.import_module(module)


def operator_memo(
    *,
    workloads: WorkloadSettings | None,
    accounting: AccountingOptions | None,
    governor: GovernorOptions | None,
    lease: LeaseSettings | None,
) -> kopf.Memo:
    """What every handler finds in ``memo``: the settings of each part of the operator."""
    return kopf.Memo(
        workload_settings=workloads or WorkloadSettings(),
        accounting_options=accounting,
        governor_options=governor or GovernorOptions(),
        leadership=Leadership(settings=lease),
    )
