"""Carry out the governor's decisions: Enforce patches one annotation (or creates a
CompressionJob), DryRun only records.

A directive is written as a merge patch of ``metadata.annotations`` that carries the
``resourceVersion`` the decision was taken on: if the object changed since (another replica
acted, a user edited it) the apiserver answers 409 and nothing is applied; the next cycle decides
again on the new version. Events say what was done (or would be) and why, on the workload and on
the policy.

The Event of an action a directive adds is named after the directive's text (and the object's
uid), and the directive lists the actions it added: a leader killed between its patch and its
Events leaves them missing, and its successor, seeing a directive it has not announced, records
them (:func:`announce`); whoever comes second finds the name taken, so each is said once. A
CompressionJob the governor creates carries its reason, and its ``Compress`` Event on the
service is named after the job: the same holds for it (:func:`announce_compression`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from steward.act.kube import COMPRESSION_JOBS, INFERENCE_SERVICES, TRAINING_JOBS, Kube, Resource
from steward.act.manifests import owner_reference
from steward.api.constants import (
    ANNOTATION_GOVERNOR,
    ANNOTATION_GOVERNOR_REASON,
    API_VERSION,
    LABEL_MANAGED_BY,
    LABEL_WORKLOAD,
    MANAGED_BY,
)
from steward.api.directive import GovernorAction, read_directive
from steward.api.v1alpha1.common import PolicyMode
from steward.policy.compression import CompressionRequest
from steward.policy.governor import Decision
from steward.policy.notes import Note

Raw = dict[str, Any]
RESOURCES = {"TrainingJob": TRAINING_JOBS, "InferenceService": INFERENCE_SERVICES}


def describe(decision: Decision) -> str:
    """One line: what the decision does to which workload, and why."""
    ref = decision.ref
    target = f"{ref.kind}/{ref.namespace}/{ref.name}"
    verb = "would apply" if decision.mode == PolicyMode.DRY_RUN else "applied"
    undo = "would reverse" if decision.mode == PolicyMode.DRY_RUN else "reversed"
    parts = [f"{verb} {a.value} to {target}" for a in decision.added]
    parts += [f"{undo} {a.value} on {target}" for a in decision.removed]
    if not parts:
        parts.append(f"{verb} a changed directive to {target}")
    return f"{decision.mode.value}: {'; '.join(parts)} ({decision.summary})"


def enforce(
    kube: Kube, workload: Raw, policy: Raw | None, decision: Decision, *, now: datetime
) -> Raw:
    """Write the directive (or remove it) on ``workload``, then record it; the patched object.

    Raises the typed :class:`~steward.act.kube.KubeError` (409 when the object moved on)."""
    meta = workload["metadata"]
    directive = decision.directive
    added = {"added": list(decision.added)}
    text = directive.model_copy(update=added).to_annotation() if directive else None
    patch = {
        "metadata": {
            "resourceVersion": meta["resourceVersion"],
            "annotations": {ANNOTATION_GOVERNOR: text},
        }
    }
    resource: Resource = RESOURCES[decision.ref.kind]
    patched = kube.merge_patch(resource, meta["namespace"], meta["name"], patch)
    patched.setdefault("kind", decision.ref.kind)
    patched.setdefault("apiVersion", workload.get("apiVersion"))
    record(kube, patched, policy, decision, now=now)
    return patched


def record(
    kube: Kube, workload: Raw, policy: Raw | None, decision: Decision, *, now: datetime
) -> None:
    """Events for ``decision``: one per action added or removed on the workload, and the whole
    line on the policy (when given)."""
    dry = decision.mode == PolicyMode.DRY_RUN
    lines = decision.directive.reasons if decision.directive else []
    reasons = {line.split(":", 1)[0]: line for line in lines}
    for action in decision.added:
        reason = f"WouldApply{action.value}" if dry else action.value
        kube.event(workload, Note("Normal", reason, reasons.get(action.value, decision.summary)),
                   now=now, action=action.value,
                   name=None if dry else directive_event_name(workload, action))  # fmt: skip
    for action in decision.removed:
        reason = f"WouldReverse{action.value}" if dry else f"Reversed{action.value}"
        kube.event(workload, Note("Normal", reason, decision.summary), now=now,
                   action=action.value)  # fmt: skip
    if policy is not None:
        note = Note("Normal", f"BudgetAction{decision.mode.value}", describe(decision))
        kube.event(policy, note, now=now, action="Govern")


def directive_event_name(workload: Raw, action: GovernorAction) -> str:
    """The name of the Event saying that the directive now on ``workload`` added ``action``."""
    text = (workload["metadata"].get("annotations") or {}).get(ANNOTATION_GOVERNOR) or ""
    return _event_name(workload, text, action.value)


def compression_event_name(service: Raw, job: str) -> str:
    """The name of the Event saying that the governor created CompressionJob ``job``."""
    return _event_name(service, f"CompressionJob {job}", GovernorAction.COMPRESS.value)


def _event_name(regarding: Raw, what: str, action: str) -> str:
    meta = regarding["metadata"]
    key = f"{meta.get('uid')}\n{what}\n{action}".encode()
    return f"{meta['name']}.{hashlib.sha256(key).hexdigest()[:20]}"


def announce(kube: Kube, workload: Raw, *, now: datetime) -> int:
    """Make sure the Events of the actions the directive on ``workload`` added exist; how many
    were missing (and are recorded now)."""
    directive = read_directive(workload["metadata"].get("annotations"))
    if directive is None:
        return 0
    reasons = {line.split(":", 1)[0]: line for line in directive.reasons}
    missing = 0
    for action in directive.added:
        said = reasons.get(action.value, f"{action.value} by CostPolicy {directive.policy}")
        missing += kube.event(workload, Note("Normal", action.value, said), now=now,
                              action=action.value,
                              name=directive_event_name(workload, action))  # fmt: skip
    return missing


def announce_compression(kube: Kube, service: Raw, job: Raw, *, now: datetime) -> bool:
    """Make sure the ``Compress`` Event of ``job``, a CompressionJob the governor created for
    ``service``, exists; True when it was missing (and is recorded now)."""
    meta = job["metadata"]
    reason = (meta.get("annotations") or {}).get(ANNOTATION_GOVERNOR_REASON)
    if reason is None:
        return False  # not the governor's
    action = GovernorAction.COMPRESS.value
    note = Note("Normal", action, f"CompressionJob {meta['name']}: {reason}")
    return kube.event(service, note, now=now, action=action,
                      name=compression_event_name(service, meta["name"]))  # fmt: skip


def describe_compression(request: CompressionRequest) -> str:
    ref = request.ref
    verb = "would apply" if request.mode == PolicyMode.DRY_RUN else "applied"
    return (
        f"{request.mode.value}: {verb} {GovernorAction.COMPRESS.value} to "
        f"{ref.kind}/{ref.namespace}/{ref.name}: CompressionJob {request.name} ({request.summary})"
    )


def start_compression(
    kube: Kube, service: Raw, policy: Raw | None, request: CompressionRequest, *, now: datetime
) -> bool:
    """Create the request's CompressionJob, owned by ``service`` (deleted with it), and record
    it; False, recording nothing, when it exists already (an earlier leader created it)."""
    manifest = {
        "apiVersion": API_VERSION,
        "kind": "CompressionJob",
        "metadata": {
            "name": request.name,
            "namespace": request.ref.namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_WORKLOAD: request.ref.name},
            "annotations": {ANNOTATION_GOVERNOR_REASON: request.summary},
            "ownerReferences": [owner_reference(service) | {"controller": False}],
        },
        "spec": request.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    if kube.create_new(COMPRESSION_JOBS, manifest) is None:
        return False
    record_compression(kube, service, policy, request, now=now)
    return True


def record_compression(
    kube: Kube, service: Raw, policy: Raw | None, request: CompressionRequest, *, now: datetime
) -> None:
    """Events for ``request`` on the service and (when given) on the policy."""
    action = GovernorAction.COMPRESS.value
    dry = request.mode == PolicyMode.DRY_RUN
    reason = f"WouldApply{action}" if dry else action
    note = f"CompressionJob {request.name}: {request.summary}"
    kube.event(service, Note("Normal", reason, note), now=now, action=action,
               name=None if dry else compression_event_name(service, request.name))  # fmt: skip
    if policy is not None:
        line = Note("Normal", f"BudgetAction{request.mode.value}", describe_compression(request))
        kube.event(policy, line, now=now, action="Govern")
