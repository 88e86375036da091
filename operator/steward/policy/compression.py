"""Compression triggers: when a served model has grown costly, start a CompressionJob. Pure.

A CostPolicy's ``compression`` triggers fire for an InferenceService it governs when any of:

- ``costPer1kRequestsAboveUSD``: the service's ``status.costPer1kRequestsUSD`` is above it;
- ``gpuUtilizationBelowPercent``: its ``status.gpuUtilizationPercent`` is below it;
- ``budgetStateAtLeast``: a Budget selecting it is in that state or worse.

Status figures count only while fresh (``accountedUntil`` at most ``max_age`` before now); a
missing or stale figure fires nothing. A job starts only for a service that opts in
(``spec.compression`` with ``sourceFormat`` and ``evaluation``), with the methods both allow,
when none of its CompressionJobs is still running and the newest is older than the policy's
``cooldown``. The job's name is deterministic (``<service>-cmp-<n>``, one more than the highest
``n`` so far), so a second replica or a restarted leader creating it again finds it there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from steward.api.v1alpha1.budget import Budget, BudgetState
from steward.api.v1alpha1.common import PolicyMode
from steward.api.v1alpha1.compressionjob import (
    CompressionJob,
    CompressionJobSpec,
    CompressionMethod,
    CompressionPhase,
    Gate,
    Hardware,
    HardwareTarget,
)
from steward.api.v1alpha1.costpolicy import CompressionTriggers, CostPolicy
from steward.api.v1alpha1.inferenceservice import CompressionPreferences, InferenceService
from steward.cost.usage import WorkloadRef

#: How old a service's accounted figures may be and still fire a trigger.
DEFAULT_FIGURES_MAX_AGE: Final = timedelta(minutes=15)
_SEVERITY: Final = {BudgetState.OK: 0, BudgetState.WARNING: 1, BudgetState.EXCEEDED: 2}
_FINISHED: Final = (CompressionPhase.SUCCEEDED, CompressionPhase.FAILED)


@dataclass(frozen=True)
class CompressionRequest:
    """A CompressionJob to start for ``ref`` (an InferenceService), and why."""

    ref: WorkloadRef
    policy: str
    mode: PolicyMode
    name: str
    spec: CompressionJobSpec
    summary: str
    inputs: tuple[tuple[str, str], ...] = ()


def job_name(service: str, sequence: int) -> str:
    return f"{service}-cmp-{sequence}"


def compression_request(
    service: InferenceService,
    policy: CostPolicy,
    *,
    budgets: Sequence[Budget],
    jobs: Sequence[CompressionJob],
    now: datetime,
    max_age: timedelta = DEFAULT_FIGURES_MAX_AGE,
) -> CompressionRequest | None:
    """The CompressionJob ``policy`` starts for ``service`` now, or None (see the module
    docstring). ``jobs`` are the CompressionJobs in the service's namespace."""
    triggers, preferences = policy.spec.compression, service.spec.compression
    if triggers is None or preferences is None or not _ready(preferences):
        return None
    fired = _fired(service, triggers, budgets, now, max_age)
    methods = [m for m in triggers.methods if m in preferences.allowed_methods]
    name = service.metadata.name or ""
    mine = [j for j in jobs if j.spec.target == name]
    if not fired or not methods or _busy(mine, triggers.cooldown, now):
        return None
    ref = WorkloadRef("InferenceService", service.metadata.namespace or "", name)
    return CompressionRequest(
        ref=ref,
        policy=policy.metadata.name or "",
        mode=policy.spec.mode,
        name=job_name(name, _next_sequence(name, mine)),
        spec=_spec(service, preferences, triggers, methods),
        summary=f"Compress: {'; '.join(fired)}; methods {', '.join(m.value for m in methods)}",
        inputs=tuple((label, text) for label, text in _inputs(service)),
    )


def _ready(preferences: CompressionPreferences) -> bool:
    return preferences.source_format is not None and preferences.evaluation is not None


def _fired(
    service: InferenceService,
    triggers: CompressionTriggers,
    budgets: Sequence[Budget],
    now: datetime,
    max_age: timedelta,
) -> list[str]:
    fired: list[str] = []
    status = service.status
    fresh = status is not None and _fresh(status.accounted_until, now, max_age)
    cost = status.cost_per_1k_requests_usd if status and fresh else None
    limit = triggers.cost_per_1k_requests_above_usd
    if cost is not None and limit is not None and cost > limit:
        fired.append(f"cost per 1k requests {cost:.4f} USD above {limit} USD")
    used = status.gpu_utilization_percent if status and fresh else None
    floor = triggers.gpu_utilization_below_percent
    if used is not None and floor is not None and used < floor:
        fired.append(f"GPU utilisation {used:.1f}% below {floor:g}%")
    if triggers.budget_state_at_least is not None:
        least = _SEVERITY[BudgetState(triggers.budget_state_at_least.value)]
        for budget in sorted(budgets, key=lambda b: b.metadata.name or ""):
            state = budget.status.state if budget.status else BudgetState.OK
            if _SEVERITY[state] >= least:
                fired.append(f"Budget {budget.metadata.name} {state.value}")
    return fired


def _fresh(accounted_until: datetime | None, now: datetime, max_age: timedelta) -> bool:
    return accounted_until is not None and now - accounted_until <= max_age


def _busy(jobs: Sequence[CompressionJob], cooldown: timedelta, now: datetime) -> bool:
    """A job still running, or the newest one started less than ``cooldown`` ago."""
    if any(j.status is None or j.status.phase not in _FINISHED for j in jobs):
        return True
    created = [j.metadata.creation_timestamp for j in jobs if j.metadata.creation_timestamp]
    return bool(created) and now - max(created) < cooldown


def _next_sequence(service: str, jobs: Sequence[CompressionJob]) -> int:
    pattern = re.compile(rf"^{re.escape(service)}-cmp-(\d+)$")
    numbers = [int(m.group(1)) for j in jobs if (m := pattern.match(j.metadata.name or ""))]
    return max(numbers, default=0) + 1


def _spec(
    service: InferenceService,
    preferences: CompressionPreferences,
    triggers: CompressionTriggers,
    methods: list[CompressionMethod],
) -> CompressionJobSpec:
    predictor = service.spec.predictor
    storage = predictor.model.storage_uri
    return CompressionJobSpec.model_validate(
        {
            "source": {
                "storageUri": storage,
                "format": preferences.source_format,
                "architecture": preferences.architecture,
            },
            "evaluation": preferences.evaluation,
            "target": service.metadata.name,
            "methods": methods,
            "gate": Gate(
                max_accuracy_drop=min(triggers.max_accuracy_drop, preferences.max_accuracy_drop),
                weights=triggers.weights,
            ),
            "hardware": Hardware(
                target=HardwareTarget.GPU if predictor.gpus_per_replica else HardwareTarget.CPU,
                gpu_model=predictor.gpu_model,
            ),
            "outputUri": preferences.output_uri or f"{storage.rstrip('/')}-compressed",
            "autoPromote": triggers.auto_promote and preferences.auto_promote,
        }
    )


def _inputs(service: InferenceService) -> list[tuple[str, str]]:
    status = service.status
    if status is None:
        return []
    return [
        ("cost per 1k requests", f"{status.cost_per_1k_requests_usd} USD"),
        ("GPU utilisation", f"{status.gpu_utilization_percent}%"),
        ("accounted until", str(status.accounted_until)),
    ]
