"""An InferenceService's replicas: how many on on-demand nodes, how many on spot, which model.

Two Deployments per service, ``<name>-od`` and ``<name>-spot``, behind one Service. Two
Deployments rather than one with topology rules because the split must be exact and must
move: the scheduler's topology spreading can skew but never guarantees "at least the base on
on-demand", and a Deployment cannot say "these replicas here, those there".

With ``desired`` replicas (``spec.predictor.replicas``, default ``minReplicas``; the governor's
directive may lower it to ``minReplicas`` or raise the spot share), the on-demand
base is ``min(onDemandBase, desired)``, and of the replicas above it ``floor(above x
maxSpotPercent / 100)`` go to spot. Spot replicas that cannot run (unschedulable, or on a node
that is gone or tainted for disruption) are added to the on-demand Deployment until spot
capacity returns, so losing every spot node costs capacity for seconds, never the base.

A promoted compressed variant is rolled back to the original when, in the newest accounted
window, wholly after the promotion, the variant's own pods (``status.latency.variants``, by their
``steward.ai/variant`` label) served at least :data:`MIN_SLO_REQUESTS` requests with a p95
request latency above ``spec.slo.latencyP95Ms``: the rollout's last original pods never count
against the variant, and no figures for it roll nothing back.

Model changes roll: the on-demand Deployment may take down at most its replicas above the base
at once (``maxUnavailable``; with none above the base, a new pod must be Ready before an old one
goes), so a rollout never drops below the base and still progresses without spare GPUs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from steward.api.constants import (
    CAPACITY_LABEL_ON_DEMAND,
    CAPACITY_LABEL_SPOT,
    variant_label_value,
)
from steward.api.directive import read_directive
from steward.api.v1alpha1.common import CapacityType, Condition, ConditionStatus
from steward.api.v1alpha1.inferenceservice import (
    ActiveModel,
    InferenceService,
    InferenceServiceStatus,
)
from steward.policy.conditions import set_condition
from steward.policy.notes import Note
from steward.policy.placement import (
    CapacityLabels,
    gpu_model_requirements,
    is_disrupting,
    node_capacity_requirement,
    node_matches,
)
from steward.snapshot import DeploymentRecord, NodeRecord, PodRecord

ORIGINAL = "original"
#: How long a spot replica may stay unschedulable, while spot nodes exist, before on-demand
#: covers for it: long enough for an autoscaler to bring a spot node.
SPOT_PATIENCE: Final = timedelta(minutes=3)
#: The fewest requests a window's latency must count before it can roll a variant back.
MIN_SLO_REQUESTS: Final = 100
ROLLED_BACK: Final = "RolledBack"


@dataclass(frozen=True)
class ServingObservation:
    service: InferenceService
    deployments: tuple[DeploymentRecord, ...]
    pods: tuple[PodRecord, ...]
    nodes: Mapping[str, NodeRecord]
    now: datetime
    capacity_labels: CapacityLabels
    generation: int | None = None


@dataclass(frozen=True)
class ServingPlan:
    """Replicas per share and the model to serve; the act layer makes the Deployments so."""

    on_demand: int
    spot: int
    base: int
    storage_uri: str
    variant: str
    status: InferenceServiceStatus
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class Split:
    on_demand: int
    spot: int


def split_replicas(desired: int, on_demand_base: int, max_spot_percent: float) -> Split:
    """How ``desired`` replicas divide between on-demand and spot (see the module docstring)."""
    base = min(on_demand_base, desired)
    spot = math.floor((desired - base) * max_spot_percent / 100)
    return Split(on_demand=desired - spot, spot=spot)


def decide_serving(obs: ServingObservation) -> ServingPlan:
    spec = obs.service.spec
    previous = obs.service.status or InferenceServiceStatus()
    desired, spot_percent = effective_scale(obs.service)
    split = split_replicas(desired, spec.capacity.on_demand_base, spot_percent)
    stranded = min(_stranded_spot(obs, obs.capacity_labels), split.spot)
    on_demand = split.on_demand + stranded
    notes = _scaling_notes(obs.deployments, on_demand, split.spot, stranded)
    variant, storage_uri = _active_model(obs.service)
    breach = slo_breach(obs.service)
    if breach is not None:
        variant, storage_uri = ORIGINAL, spec.predictor.model.storage_uri
        notes = (*notes, Note("Warning", ROLLED_BACK, breach))
    status = _status(
        obs, previous, replicas=on_demand + split.spot, variant=variant,
        storage_uri=storage_uri, notes=notes,
    )  # fmt: skip
    status.conditions = _rolled_back(status.conditions, breach, variant, obs)
    base = min(spec.capacity.on_demand_base, desired)
    return ServingPlan(on_demand, split.spot, base, storage_uri, variant, status, notes)


def effective_scale(service: InferenceService) -> tuple[int, float]:
    """Desired replicas and spot percent: the spec's, with the governor's directive overlaid
    (its replicas never below ``minReplicas``)."""
    predictor, capacity = service.spec.predictor, service.spec.capacity
    directive = read_directive(service.metadata.annotations)
    desired, spot_percent = predictor.desired, capacity.max_spot_percent
    if directive is not None and directive.replicas is not None:
        desired = max(directive.replicas, predictor.min_replicas)
    if directive is not None and directive.max_spot_percent is not None:
        spot_percent = directive.max_spot_percent
    return desired, spot_percent


def _stranded_spot(obs: ServingObservation, labels: CapacityLabels) -> int:
    """Spot pods that cannot serve: on a node that is gone or being disrupted; waiting while
    no node could take them at all; or unschedulable for longer than :data:`SPOT_PATIENCE`
    (spot capacity is often provisioned on demand, by Karpenter or a cluster autoscaler)."""
    no_spot_nodes = not any(
        node_matches(node, _spot_requirements(obs.service, labels))
        and is_disrupting(list(node.taints)) is None
        for node in obs.nodes.values()
    )

    def stranded(pod: PodRecord) -> bool:
        if pod.deleting or pod.share != CAPACITY_LABEL_SPOT:
            return False
        if pod.node_name is not None:
            return not _node_healthy(pod, obs.nodes)
        if no_spot_nodes:
            return True
        since = pod.unschedulable_since
        return since is not None and obs.now - since >= SPOT_PATIENCE

    return sum(1 for pod in obs.pods if stranded(pod))


def _spot_requirements(service: InferenceService, labels: CapacityLabels) -> list[dict[str, Any]]:
    predictor = service.spec.predictor
    requirements = [node_capacity_requirement(CapacityType.SPOT, labels)]
    requirements += [
        {"key": key, "operator": "In", "values": [value]}
        for key, value in predictor.node_selector.items()
    ]
    return [*requirements, *gpu_model_requirements(predictor.gpu_model)]


def _node_healthy(pod: PodRecord, nodes: Mapping[str, NodeRecord]) -> bool:
    """The pod's node exists and is not being disrupted (a pod on a vanished node may still
    report Ready until the pod garbage collector removes it)."""
    node = nodes.get(pod.node_name or "")
    return node is not None and is_disrupting(list(node.taints)) is None


def slo_breach(service: InferenceService) -> str | None:
    """Why the promoted variant must go back to the original, or None (module docstring)."""
    status, limit = service.status, service.spec.slo.latency_p95_ms
    active = status.active_model if status else None
    latency = status.latency if status else None
    if limit is None or active is None or latency is None or active.variant == ORIGINAL:
        return None
    if active.since is None or latency.window_start < active.since:
        return None
    own = latency.of_variant(variant_label_value(active.variant))
    if own is None or own.requests < MIN_SLO_REQUESTS or own.p95_ms <= limit:
        return None
    return (
        f"p95 latency {own.p95_ms:g} ms over {own.requests} requests served by variant "
        f"{active.variant}'s pods ({latency.window_start.isoformat()} to "
        f"{latency.window_end.isoformat()}) is above the SLO's {limit:g} ms: serving the "
        "original again"
    )


def _rolled_back(
    conditions: list[Condition], breach: str | None, variant: str, obs: ServingObservation
) -> list[Condition]:
    """``RolledBack`` true with the breach; false again once a variant is promoted anew."""
    if breach is not None:
        return set_condition(conditions, ROLLED_BACK, True, "LatencySLOBreached", breach,
                             now=obs.now, generation=obs.generation)  # fmt: skip
    held = any(c.type == ROLLED_BACK and c.status == ConditionStatus.TRUE for c in conditions)
    if held and variant != ORIGINAL:
        return set_condition(conditions, ROLLED_BACK, False, "Promoted",
                             f"serving variant {variant}", now=obs.now,
                             generation=obs.generation)  # fmt: skip
    return conditions


def _active_model(service: InferenceService) -> tuple[str, str]:
    """The variant served: a promoted compressed variant (recorded in status), else the spec's."""
    active = service.status.active_model if service.status else None
    if active is not None and active.variant != ORIGINAL:
        return active.variant, active.storage_uri
    return ORIGINAL, service.spec.predictor.model.storage_uri


def _scaling_notes(
    deployments: tuple[DeploymentRecord, ...], on_demand: int, spot: int, stranded: int
) -> tuple[Note, ...]:
    current = {d.share: d.replicas for d in deployments}
    notes: list[Note] = []
    old_od = current.get(CAPACITY_LABEL_ON_DEMAND)
    if old_od is not None and old_od != on_demand:
        why = (
            f"{stranded} spot replica(s) have no spot node"
            if stranded
            else "spot replicas are back on spot"
            if old_od > on_demand
            else "desired replicas changed"
        )
        notes.append(
            Note("Normal", "ScaledOnDemand", f"on-demand replicas {old_od} -> {on_demand}: {why}")
        )
    old_spot = current.get(CAPACITY_LABEL_SPOT)
    if old_spot is not None and old_spot != spot:
        notes.append(Note("Normal", "ScaledSpot", f"spot replicas {old_spot} -> {spot}"))
    return tuple(notes)


def _status(
    obs: ServingObservation,
    previous: InferenceServiceStatus,
    *,
    replicas: int,
    variant: str,
    storage_uri: str,
    notes: tuple[Note, ...],
) -> InferenceServiceStatus:
    status = previous.model_copy(deep=True)
    serving = [p for p in obs.pods if p.ready and not p.deleting and _node_healthy(p, obs.nodes)]
    status.replicas = replicas
    status.ready_replicas = len(serving)
    status.spot_replicas = sum(1 for p in serving if p.share == CAPACITY_LABEL_SPOT)
    old = previous.active_model
    if old is None or (old.variant, old.storage_uri) != (variant, storage_uri):
        status.active_model = ActiveModel(variant=variant, storage_uri=storage_uri, since=obs.now)
    if notes:
        status.last_decision = notes[-1].message
    status.observed_generation = obs.generation
    base = min(obs.service.spec.capacity.on_demand_base, replicas)
    ready_on_demand = len(serving) - status.spot_replicas
    ready = status.ready_replicas >= replicas
    message = (
        f"{status.ready_replicas}/{replicas} replicas ready, {ready_on_demand} on on-demand "
        f"(base {base}), {status.spot_replicas} on spot"
    )
    reason = "Available" if ready else ("BaseAvailable" if ready_on_demand >= base else "Degraded")
    status.conditions = set_condition(
        status.conditions, "Ready", ready, reason, message, now=obs.now, generation=obs.generation
    )
    return status
