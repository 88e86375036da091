"""Apply TrainingJob and InferenceService plans: children, status, and an Event per decision.

Every write is idempotent: creates tolerate an existing object of the same deterministic name,
patches are merge patches of the desired state, status is written only when it changed. What the
apiserver returns is handed back (kind, object) so the caller can update its index at once and a
second reconcile before the watch catches up repeats nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from steward.act.accounting import ACCOUNTED_FIELDS
from steward.act.kube import (
    DEPLOYMENTS,
    INFERENCE_SERVICES,
    JOBS,
    SERVICES,
    TRAINING_JOBS,
    Kube,
    RefusedError,
    Resource,
)
from steward.act.manifests import (
    serving_deployment_manifest,
    serving_service_manifest,
    training_job_manifest,
)
from steward.api.constants import ANNOTATION_ENDED, ANNOTATION_ENDED_AT, ANNOTATION_SPEC_HASH
from steward.api.schema import StewardModel
from steward.api.v1alpha1.common import CapacityType
from steward.api.v1alpha1.inferenceservice import InferenceService
from steward.api.v1alpha1.trainingjob import TrainingJob
from steward.policy.notes import Note
from steward.policy.placement import CapacityLabels
from steward.policy.serving import ServingPlan
from steward.policy.training import EndAttempt, StartAttempt, TrainingPlan

Raw = dict[str, Any]
Written = list[tuple[str, Raw]]


class ChildRefusedError(Exception):
    """The apiserver refused a child built from the parent's spec; ``message`` names the field."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def apply_training(
    kube: Kube,
    parent: Raw,
    *,
    job: TrainingJob,
    plan: TrainingPlan,
    labels: CapacityLabels,
    now: datetime,
) -> Written:
    """Carry out ``plan`` for the TrainingJob ``parent`` (raw) / ``job`` (parsed)."""
    written: Written = []
    namespace = parent["metadata"]["namespace"]
    for action in plan.actions:
        if isinstance(action, EndAttempt):
            stopped = kube.merge_patch(
                JOBS,
                namespace,
                action.job_name,
                {
                    "metadata": {
                        "annotations": {
                            ANNOTATION_ENDED: str(action.why),
                            ANNOTATION_ENDED_AT: _rfc3339(action.at),
                        }
                    },
                    "spec": {"suspend": True},
                },
            )
            written.append(("Job", stopped))
        elif isinstance(action, StartAttempt):
            manifest = training_job_manifest(parent, job, action, labels)
            written.append(("Job", _create_child(kube, JOBS, manifest)))
    notes = tuple(a.note for a in plan.actions) + plan.notes
    written += _finish(
        kube, TRAINING_JOBS, kind="TrainingJob", parent=parent, status=plan.status,
        notes=notes, now=now,
    )  # fmt: skip
    return written


def apply_serving(
    kube: Kube,
    parent: Raw,
    *,
    service: InferenceService,
    plan: ServingPlan,
    existing: Mapping[CapacityType, Raw],
    has_service: bool,
    labels: CapacityLabels,
    now: datetime,
) -> Written:
    """Make the on-demand and spot Deployments and the Service of ``parent`` match ``plan``."""
    written: Written = []
    shares = (
        (CapacityType.ON_DEMAND, plan.on_demand, max(plan.on_demand - plan.base, 0)),
        (CapacityType.SPOT, plan.spot, 1),
    )
    for share, replicas, max_unavailable in shares:
        desired = serving_deployment_manifest(
            parent, service=service, share=share, replicas=replicas,
            max_unavailable=max_unavailable, storage_uri=plan.storage_uri,
            variant=plan.variant, labels=labels,
        )  # fmt: skip
        current = existing.get(share)
        if current is None:
            if replicas > 0 or share == CapacityType.ON_DEMAND:
                written.append(("Deployment", _create_child(kube, DEPLOYMENTS, desired)))
        elif _differs(current, desired):
            patch = {
                "metadata": {"annotations": desired["metadata"]["annotations"]},
                "spec": desired["spec"],
            }
            name = desired["metadata"]["name"]
            namespace = desired["metadata"]["namespace"]
            written.append(("Deployment", kube.merge_patch(DEPLOYMENTS, namespace, name, patch)))
    if not has_service:
        manifest = serving_service_manifest(parent, service)
        written.append(("Service", _create_child(kube, SERVICES, manifest)))
    written += _finish(
        kube, INFERENCE_SERVICES, kind="InferenceService", parent=parent, status=plan.status,
        notes=plan.notes, now=now,
    )  # fmt: skip
    return written


def write_status(kube: Kube, resource: Resource, parent: Raw, status: StewardModel) -> Raw | None:
    """Merge-patch ``status`` onto ``parent`` when it differs from what is there; else None."""
    # The accounting owns the cost figures; leaving them out means neither writer undoes the other.
    body = _without_accounting(status.model_dump(mode="json", by_alias=True, exclude_none=True))
    if body == _without_accounting(parent.get("status") or {}):
        return None
    meta = parent["metadata"]
    return kube.merge_patch(resource, meta["namespace"], meta["name"], {"status": body}, "status")


def _without_accounting(status: Raw) -> Raw:
    return {key: value for key, value in status.items() if key not in ACCOUNTED_FIELDS}


def _finish(
    kube: Kube,
    resource: Resource,
    *,
    kind: str,
    parent: Raw,
    status: StewardModel,
    notes: tuple[Note, ...],
    now: datetime,
) -> Written:
    # Status first: whoever sees the Event can already read the status it explains.
    updated = write_status(kube, resource, parent, status)
    for note in notes:
        kube.event(parent, note, now=now, action="Reconcile")
    return [(kind, updated)] if updated is not None else []


def _create_child(kube: Kube, resource: Resource, manifest: Raw) -> Raw:
    try:
        return kube.create(resource, manifest)
    except RefusedError as error:
        raise ChildRefusedError(_parent_wording(error.message)) from error


def _parent_wording(message: str) -> str:
    """Drop the child's name from the apiserver's message: the field path is what matters."""
    _, sep, detail = message.partition(" is invalid: ")
    return detail if sep else message


def _differs(current: Raw, desired: Raw) -> bool:
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    if (
        annotations.get(ANNOTATION_SPEC_HASH)
        != desired["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
    ):
        return True
    spec = current.get("spec") or {}
    return any(spec.get(field) != desired["spec"][field] for field in ("replicas", "strategy"))


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
