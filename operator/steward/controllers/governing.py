"""One governor cycle: list in bulk, ``decide`` (pure), carry the plan out. Blocking; the loop
runs it in a thread.

Nine list calls per cycle whatever the number of workloads or nodes; writes only for decisions
(and each GPUNodePool's status). Enforce
decisions patch the workload or create a CompressionJob (see :mod:`steward.act.governor`); DryRun
decisions are recorded as Events once per distinct decision, so a standing DryRun decision does
not repeat every cycle.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from steward.act.governor import (
    announce,
    announce_compression,
    describe,
    describe_compression,
    enforce,
    record,
    record_compression,
    start_compression,
)
from steward.act.kube import (
    BUDGETS,
    COMPRESSION_JOBS,
    COST_POLICIES,
    GPU_NODE_POOLS,
    INFERENCE_SERVICES,
    NAMESPACES,
    NODES,
    PODS,
    TRAINING_JOBS,
    Kube,
    KubeError,
)
from steward.api.constants import ANNOTATION_GOVERNOR, LABEL_ATTEMPT, LABEL_WORKLOAD
from steward.api.directive import GovernorAction, read_directive
from steward.api.schema import valid_objects
from steward.api.v1alpha1.budget import Budget
from steward.api.v1alpha1.common import PolicyMode
from steward.api.v1alpha1.compressionjob import CompressionJob
from steward.api.v1alpha1.costpolicy import CostPolicy
from steward.api.v1alpha1.inferenceservice import InferenceService
from steward.api.v1alpha1.trainingjob import TrainingJob
from steward.controllers import metrics
from steward.controllers.scaling import PoolMemory, scale_pools
from steward.cost.catalog import GPUHourPrices, PriceCatalog
from steward.cost.usage import WorkloadRef
from steward.policy.compression import CompressionRequest
from steward.policy.governor import (
    Decision,
    Plan,
    Snapshot,
    SpotEconomics,
    WorkloadView,
    data_stale,
    decide,
)
from steward.policy.scope import WorkloadFacts, selects

log = logging.getLogger("steward.governor")
Raw = dict[str, Any]


@dataclass
class Governor:
    """What the governor keeps between cycles: which DryRun decisions it has recorded, which
    directives in force it has announced (their Events made sure of), pool memory."""

    kube: Kube
    catalog: PriceCatalog
    economics: SpotEconomics = field(default_factory=SpotEconomics)
    recorded: dict[WorkloadRef, str] = field(default_factory=dict)
    recorded_compressions: set[tuple[WorkloadRef, str]] = field(default_factory=set)
    #: Per workload: the directive text whose Events are known to exist.
    announced: dict[WorkloadRef, str] = field(default_factory=dict)
    #: CompressionJobs (namespace, name) whose Compress Events are known to exist.
    announced_compressions: set[tuple[str, str]] = field(default_factory=set)
    pools: PoolMemory = field(default_factory=PoolMemory)
    #: Per node: (sum, count) of GPU utilisation samples in the newest accounted window.
    node_utilization: dict[str, tuple[float, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class GovernReport:
    plan: Plan
    applied: int
    conflicts: int


def govern(governor: Governor, now: datetime) -> GovernReport:
    """Decide on the cluster as listed now, and carry the decisions out."""
    kube = governor.kube
    budgets = valid_objects(kube.list(BUDGETS), Budget)
    policy_raws = {raw["metadata"]["name"]: raw for raw in kube.list(COST_POLICIES)}
    policies = valid_objects(policy_raws.values(), CostPolicy)
    namespaces = {
        raw["metadata"]["name"]: raw["metadata"].get("labels") or {}
        for raw in kube.list(NAMESPACES)
    }
    objects: dict[WorkloadRef, Raw] = {}
    views: list[WorkloadView] = []
    for raw in kube.list(TRAINING_JOBS) + kube.list(INFERENCE_SERVICES):
        view = _view(raw, namespaces)
        if view is not None:
            objects[view.facts.ref] = raw
            views.append(view)
    compression_raws = kube.list(COMPRESSION_JOBS)
    snapshot = Snapshot(
        budgets=tuple(budgets),
        workloads=tuple(views),
        prices=_prices(governor.catalog, views, now),
        economics=governor.economics,
        compression_jobs=tuple(valid_objects(compression_raws, CompressionJob)),
    )
    _announce(governor, objects, now)
    _announce_compressions(governor, objects, compression_raws, now)
    plan = decide(snapshot, policies, now)
    applied = conflicts = 0
    for decision in plan.decisions:
        done = _carry_out(governor, objects[decision.ref], policy_raws, decision, now)
        applied += done is True
        conflicts += done is None
    for request in plan.compressions:
        applied += _compress(governor, objects[request.ref], policy_raws, request, now)
    wanted = {(r.ref, r.name) for r in plan.compressions}
    governor.recorded_compressions &= wanted
    by_ref = {view.facts.ref: view for view in views}
    scale_pools(
        kube, governor.catalog, governor.pools,
        lists={"pools": kube.list(GPU_NODE_POOLS), "nodes": kube.list(NODES),
               "pods": kube.list(PODS)},
        budgets=budgets, policies=policies, now=now, utilization=governor.node_utilization,
        budgets_of=lambda pod: _budgets_of(_pod_facts(pod, by_ref, namespaces), budgets),
    )  # fmt: skip
    decided = {d.ref for d in plan.decisions}
    for ref in [r for r in governor.recorded if r not in decided and not _dry_pending(plan, r)]:
        del governor.recorded[ref]
    _observe(plan, budgets)
    return GovernReport(plan, applied, conflicts)


def _carry_out(
    governor: Governor, raw: Raw, policy_raws: dict[str, Raw], decision: Decision, now: datetime
) -> bool | None:
    """True: applied; False: recorded only (DryRun, or already recorded); None: conflict."""
    policy = policy_raws.get(decision.policy)
    if decision.mode == PolicyMode.DRY_RUN:
        key = json.dumps(decision.directive.effect() if decision.directive else None)
        if governor.recorded.get(decision.ref) == key:
            return False
        governor.recorded[decision.ref] = key
        log.info("%s", describe(decision))
        record(governor.kube, raw, policy, decision, now=now)
        _count(decision)
        return False
    try:
        patched = enforce(governor.kube, raw, policy, decision, now=now)
    except KubeError as error:
        if error.status == 409:
            ref = decision.ref
            log.info("%s/%s changed meanwhile; deciding again next cycle", ref.namespace, ref.name)
            return None
        raise
    governor.announced[decision.ref] = _directive_text(patched)
    log.info("%s", describe(decision))
    _count(decision)
    return True


def _announce(governor: Governor, objects: dict[WorkloadRef, Raw], now: datetime) -> None:
    """Directives in force this governor has not seen yet (all of them, on a new leader): make
    sure their Events exist, once."""
    for ref in [r for r in governor.announced if r not in objects]:
        del governor.announced[ref]
    for ref, raw in objects.items():
        text = _directive_text(raw)
        if text and governor.announced.get(ref) != text:
            if announce(governor.kube, raw, now=now):
                log.info("%s/%s: recorded the Events of its directive", ref.namespace, ref.name)
            governor.announced[ref] = text


def _announce_compressions(
    governor: Governor, objects: dict[WorkloadRef, Raw], jobs: list[Raw], now: datetime
) -> None:
    """CompressionJobs of the governor's this one has not seen yet (all, on a new leader):
    make sure their Compress Events on the services exist, once."""
    present = {(j["metadata"]["namespace"], j["metadata"]["name"]) for j in jobs}
    governor.announced_compressions &= present
    for job in jobs:
        meta = job["metadata"]
        key = (meta["namespace"], meta["name"])
        workload = (meta.get("labels") or {}).get(LABEL_WORKLOAD, "")
        service = objects.get(WorkloadRef("InferenceService", meta["namespace"], workload))
        if key in governor.announced_compressions or service is None:
            continue
        if announce_compression(governor.kube, service, job, now=now):
            log.info("%s/%s: recorded the Event of CompressionJob %s", key[0], workload, key[1])
        governor.announced_compressions.add(key)


def _directive_text(raw: Raw) -> str:
    return str((raw["metadata"].get("annotations") or {}).get(ANNOTATION_GOVERNOR) or "")


def _compress(
    governor: Governor,
    raw: Raw,
    policy_raws: dict[str, Raw],
    request: CompressionRequest,
    now: datetime,
) -> bool:
    """True when the CompressionJob was created now."""
    policy = policy_raws.get(request.policy)
    if request.mode == PolicyMode.DRY_RUN:
        if (request.ref, request.name) not in governor.recorded_compressions:
            governor.recorded_compressions.add((request.ref, request.name))
            log.info("%s", describe_compression(request))
            record_compression(governor.kube, raw, policy, request, now=now)
            metrics.ACTIONS.labels(GovernorAction.COMPRESS.value, request.mode.value, "apply").inc()
        return False
    if not start_compression(governor.kube, raw, policy, request, now=now):
        return False
    governor.announced_compressions.add((request.ref.namespace, request.name))
    log.info("%s", describe_compression(request))
    metrics.ACTIONS.labels(GovernorAction.COMPRESS.value, request.mode.value, "apply").inc()
    return True


def _dry_pending(plan: Plan, ref: WorkloadRef) -> bool:
    return any(d.ref == ref for d in plan.deferred)


def _count(decision: Decision) -> None:
    for action in decision.added:
        metrics.ACTIONS.labels(action.value, decision.mode.value, "apply").inc()
    for action in decision.removed:
        metrics.ACTIONS.labels(action.value, decision.mode.value, "reverse").inc()


def _observe(plan: Plan, budgets: list[Budget]) -> None:
    metrics.DEFERRED.set(len(plan.deferred))
    metrics.SAVINGS.set(float(plan.savings_usd_per_hour))
    for budget in budgets:
        metrics.show_budget(budget, stale=data_stale(budget))


def _view(raw: Raw, namespaces: dict[str, dict[str, str]]) -> WorkloadView | None:
    meta = raw["metadata"]
    ref = WorkloadRef(raw["kind"], meta["namespace"], meta["name"])
    try:
        training = TrainingJob.model_validate(raw) if ref.kind == "TrainingJob" else None
        serving = InferenceService.model_validate(raw) if training is None else None
    except ValidationError:
        return None  # its controller reports the refused spec on the object
    spec = (training or serving).spec  # type: ignore[union-attr]
    facts = WorkloadFacts(
        ref=ref,
        labels=meta.get("labels") or {},
        cost_center=spec.cost_center,
        namespace_labels=namespaces.get(ref.namespace, {}),
    )
    directive = read_directive(meta.get("annotations"))
    return WorkloadView(facts, training=training, serving=serving, directive=directive)


def _pod_facts(
    pod: Raw, views: dict[WorkloadRef, WorkloadView], namespaces: dict[str, dict[str, str]]
) -> WorkloadFacts:
    """The workload a pod runs for (its TrainingJob or InferenceService), else the pod itself."""
    meta = pod["metadata"]
    labels = meta.get("labels") or {}
    kind = "TrainingJob" if LABEL_ATTEMPT in labels else "InferenceService"
    view = views.get(WorkloadRef(kind, meta["namespace"], labels.get(LABEL_WORKLOAD, "")))
    if view is not None:
        return view.facts
    ref = WorkloadRef("", meta["namespace"], meta["name"])
    return WorkloadFacts(ref, labels=labels, namespace_labels=namespaces.get(ref.namespace, {}))


def _budgets_of(facts: WorkloadFacts, budgets: list[Budget]) -> tuple[str, ...]:
    return tuple(
        b.metadata.name or "" for b in budgets if b.status and selects(b.spec.scope, facts)
    )


def _prices(
    catalog: PriceCatalog, views: list[WorkloadView], now: datetime
) -> dict[str | None, GPUHourPrices]:
    models: set[str | None] = {None}
    for view in views:
        if view.training is not None:
            models.add(view.training.spec.gpu_model)
        elif view.serving is not None:
            models.add(view.serving.spec.predictor.gpu_model)
    found = {model: catalog.gpu_hour_prices(model, now) for model in models}
    return {model: prices for model, prices in found.items() if prices is not None}
