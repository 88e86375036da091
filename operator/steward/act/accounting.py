"""Write what the accounting found: Budget status and Events, workload cost figures.

Status goes first and Events after, so whoever reads an Event finds the status it explains.
Budget status is merge-patched whole with nulls for cleared fields (a merge patch deletes
them). Workload figures are patched alone: the workload controllers never write them, so the
two writers never undo each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from steward.act.kube import BUDGETS, INFERENCE_SERVICES, TRAINING_JOBS, Kube
from steward.api.quantities import decimal_to_json, to_decimal
from steward.api.v1alpha1.budget import BudgetStatus
from steward.cost.accounting import Amounts
from steward.cost.latency import Buckets, merged, quantile, requests
from steward.policy.budgets import status_amount
from steward.policy.notes import Note

Raw = dict[str, Any]
TRAINING: Final = "TrainingJob"
SERVING: Final = "InferenceService"
#: Status fields only the accounting writes (wire names).
ACCOUNTED_FIELDS: Final = frozenset(
    {
        "gpuHours",
        "cost",
        "energyKWh",
        "carbonKgCO2e",
        "costPerHourUSD",
        "costPer1kRequestsUSD",
        "gpuUtilizationPercent",
        "latency",
        "accountedUntil",
    }
)
_RESOURCES: Final = {TRAINING: TRAINING_JOBS, SERVING: INFERENCE_SERVICES}


def write_budget(
    kube: Kube, raw: Raw, status: BudgetStatus, notes: tuple[Note, ...], now: datetime
) -> None:
    """Patch the Budget's status when it changed, then record ``notes`` as Events."""
    body = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    if body != raw.get("status"):
        full = status.model_dump(mode="json", by_alias=True)
        kube.merge_patch(BUDGETS, None, raw["metadata"]["name"], {"status": full}, "status")
    for note in notes:
        kube.event(raw, note, now=now, action="Account")


def workload_figures(
    kind: str,
    status: Raw,
    *,
    added: Amounts,
    window: Amounts,
    window_seconds: int,
    until: datetime,
    latency: Raw | None = None,
) -> Raw:
    """The accounting part of a workload's status after adding ``added``.

    ``window`` is the workload's spend over the newest window of ``window_seconds`` covered
    seconds; serving rates (USD per hour, per 1,000 requests) and GPU utilisation come from it,
    and ``latency`` (:func:`serving_latency`) is that window's request latency.
    """
    cost = status.get("cost") or {}
    spot = _number(cost.get("spotUSD")) + added.spot_usd
    on_demand = _number(cost.get("onDemandUSD")) + added.on_demand_usd
    figures: Raw = {
        "cost": {
            "spotUSD": _json(spot),
            "onDemandUSD": _json(on_demand),
            "totalUSD": _json(spot + on_demand),
        },
        "energyKWh": _json(_number(status.get("energyKWh")) + added.kwh),
        "carbonKgCO2e": _json(_number(status.get("carbonKgCO2e")) + added.kg_co2e),
        "accountedUntil": _time(until),
    }
    if kind == TRAINING:
        hours = _number(status.get("gpuHours")) + added.gpu_seconds / 3600
        figures["gpuHours"] = _json(hours)
    if kind == SERVING and window_seconds > 0:
        figures["costPerHourUSD"] = _json(window.usd * 3600 / window_seconds)
        if window.requests > 0:
            figures["costPer1kRequestsUSD"] = _json(window.usd * 1000 / window.requests)
        if window.measured_gpu_seconds > 0:
            percent = window.busy_gpu_seconds * 100 / window.measured_gpu_seconds
            figures["gpuUtilizationPercent"] = _json(percent)
        if latency is not None:
            figures["latency"] = latency
    return figures


def serving_latency(
    per_variant: Mapping[str, Buckets] | None, start: datetime, end: datetime
) -> Raw | None:
    """A window's latency histograms (per variant label, "" for pods with none) as status
    figures: p95 in ms over all of them, and per named variant; None without requests."""
    if not per_variant:
        return None
    total = _latency_figures(merged(per_variant.values()))
    if total is None:
        return None
    rows = [
        {"variant": variant, **figures}
        for variant, buckets in sorted(per_variant.items())
        if variant and (figures := _latency_figures(buckets)) is not None
    ]
    return {**total, "windowStart": _time(start), "windowEnd": _time(end), "variants": rows}


def _latency_figures(buckets: Buckets) -> Raw | None:
    p95 = quantile(0.95, buckets)
    if p95 is None:
        return None
    return {"p95Ms": round(p95 * 1000, 3), "requests": round(requests(buckets))}


def write_workload(kube: Kube, kind: str, namespace: str, name: str, figures: Raw) -> None:
    kube.merge_patch(_RESOURCES[kind], namespace, name, {"status": figures}, "status")


def _time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _number(value: Any) -> Decimal:
    return to_decimal(value) if value is not None else Decimal(0)


def _json(value: Decimal) -> int | float:
    return decimal_to_json(status_amount(value))
