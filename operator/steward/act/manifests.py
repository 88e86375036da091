"""The child objects Steward creates, as API JSON: Jobs, Deployments, Services.

Pure functions of the parent's raw body and a decision. Names are deterministic
(``<name>-<attempt>``, ``<name>-od``, ``<name>-spot``, ``<name>``), every child carries an owner
reference (controller, blocking deletion) so Kubernetes garbage-collects it with its parent,
and the labels Steward finds its children by.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Final

from steward.api.constants import (
    ANNOTATION_SPEC_HASH,
    API_VERSION,
    CAPACITY_LABEL_ON_DEMAND,
    CAPACITY_LABEL_SPOT,
    GPU_RESOURCE,
    LABEL_ATTEMPT,
    LABEL_CAPACITY_TYPE,
    LABEL_MANAGED_BY,
    LABEL_SHARE,
    LABEL_VARIANT,
    LABEL_WORKLOAD,
    MANAGED_BY,
    variant_label_value,
)
from steward.api.v1alpha1.common import CapacityType
from steward.api.v1alpha1.inferenceservice import InferenceService
from steward.api.v1alpha1.trainingjob import ResumeStrategy, TrainingJob
from steward.policy.placement import CapacityLabels, gpu_model_requirements, place
from steward.policy.training import StartAttempt

Raw = dict[str, Any]

CHECKPOINT_VOLUME: Final = "steward-checkpoint"
#: Job-level retries for failures of the workload itself (node disruptions are not counted:
#: they fail the Job at once through its podFailurePolicy, and Steward starts a new attempt).
BACKOFF_LIMIT: Final = 3
DEFAULT_SERVING_PORT: Final = 8080


def owner_reference(parent: Raw) -> Raw:
    meta = parent["metadata"]
    return {
        "apiVersion": parent.get("apiVersion", API_VERSION),
        "kind": parent["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def spec_hash(spec: Raw) -> str:
    """A short stable hash of a desired spec, to patch a child only when it changes."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def capacity_label(capacity: CapacityType) -> str:
    return CAPACITY_LABEL_SPOT if capacity == CapacityType.SPOT else CAPACITY_LABEL_ON_DEMAND


# --- TrainingJob -> Job ---------------------------------------------------------------------------
def job_name(training_job_name: str, attempt: int) -> str:
    return f"{training_job_name}-{attempt}"


def training_job_manifest(
    parent: Raw, job: TrainingJob, start: StartAttempt, labels: CapacityLabels
) -> Raw:
    """The batch/v1 Job that runs ``start.attempt`` of ``job`` (``parent`` is its raw body)."""
    name = parent["metadata"]["name"]
    ours = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_WORKLOAD: name,
        LABEL_ATTEMPT: str(start.attempt),
        LABEL_CAPACITY_TYPE: capacity_label(start.capacity),
    }
    template = copy.deepcopy(parent["spec"]["template"])
    pod_meta = template.get("metadata") or {}
    pod_spec = _training_pod_spec(template["spec"], job, start, labels)
    workers = job.spec.workers
    spec: Raw = {
        "completions": workers,
        "parallelism": workers,
        "backoffLimit": BACKOFF_LIMIT,
        "podFailurePolicy": {
            "rules": [{"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget"}]}]
        },
        "template": {
            "metadata": {
                "labels": {**(pod_meta.get("labels") or {}), **ours},
                "annotations": dict(pod_meta.get("annotations") or {}),
            },
            "spec": pod_spec,
        },
    }
    if workers > 1:
        spec["completionMode"] = "Indexed"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name, start.attempt),
            "namespace": parent["metadata"]["namespace"],
            "labels": ours,
            "ownerReferences": [owner_reference(parent)],
        },
        "spec": spec,
    }


def _training_pod_spec(
    pod_spec: Raw, job: TrainingJob, start: StartAttempt, labels: CapacityLabels
) -> Raw:
    spec = job.spec
    extra = gpu_model_requirements(spec.gpu_model)
    placed = place(pod_spec, start.capacity, labels, extra)
    placed["restartPolicy"] = "Never"  # a podFailurePolicy requires it
    env = [
        {"name": "STEWARD_ATTEMPT", "value": str(start.attempt)},
        {"name": "STEWARD_WORKERS", "value": str(spec.workers)},
        {"name": "STEWARD_RESUME", "value": "1" if start.resume else "0"},
    ]
    checkpoint = spec.checkpoint
    if checkpoint is not None:
        env.append({"name": "STEWARD_CHECKPOINT_DIR", "value": checkpoint.path})
        interval = str(int(checkpoint.interval.total_seconds()))
        env.append({"name": "STEWARD_CHECKPOINT_INTERVAL_SECONDS", "value": interval})
        if checkpoint.claim_name:
            placed["volumes"] = [
                *placed.get("volumes", []),
                {
                    "name": CHECKPOINT_VOLUME,
                    "persistentVolumeClaim": {"claimName": checkpoint.claim_name},
                },
            ]
    containers = placed["containers"]
    for index, container in enumerate(containers):
        container["env"] = [*container.get("env", []), *env]
        if checkpoint is not None and checkpoint.claim_name:
            mount = {"name": CHECKPOINT_VOLUME, "mountPath": checkpoint.path}
            container["volumeMounts"] = [*container.get("volumeMounts", []), mount]
        if index == 0:
            _request_gpus(container, spec.gpus_per_worker)
    resume = checkpoint.resume if checkpoint is not None else None
    if (
        start.resume
        and checkpoint is not None
        and resume is not None
        and resume.strategy == ResumeStrategy.ARGUMENT
        and resume.argument is not None
    ):
        argument = resume.argument.replace("{path}", checkpoint.path)
        containers[0]["args"] = [*containers[0].get("args", []), argument]
    return placed


def _request_gpus(container: Raw, gpus: int) -> None:
    """GPUs are requested by the first container (extended resources: request = limit)."""
    resources = container.setdefault("resources", {})
    for kind in ("limits", "requests"):
        resources.setdefault(kind, {})[GPU_RESOURCE] = str(gpus)


# --- InferenceService -> Deployments + Service ----------------------------------------------------
def deployment_name(service_name: str, share: str) -> str:
    return f"{service_name}-{'spot' if share == CAPACITY_LABEL_SPOT else 'od'}"


def serving_deployment_manifest(
    parent: Raw,
    *,
    service: InferenceService,
    share: CapacityType,
    replicas: int,
    max_unavailable: int,
    storage_uri: str,
    variant: str,
    labels: CapacityLabels,
) -> Raw:
    """The Deployment of one share.

    Its spec hash covers the pod template and selector; replicas and the rollout strategy are
    compared on their own. ``max_unavailable`` is how many replicas a rollout may take down at
    once (the on-demand share passes its replicas above the base, so a rollout never drops
    below the base yet progresses without spare GPUs); one more may surge.
    """
    name = parent["metadata"]["name"]
    share_label = capacity_label(share)
    selector = {LABEL_WORKLOAD: name, LABEL_SHARE: share_label}
    pod_labels = {
        **selector,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_CAPACITY_TYPE: share_label,
        LABEL_VARIANT: variant_label_value(variant),
    }
    predictor = service.spec.predictor
    container = predictor.container.model_dump(mode="json", by_alias=True, exclude_none=True)
    container["env"] = [
        *container.get("env", []),
        {"name": "STEWARD_MODEL_URI", "value": storage_uri},
        {"name": "STEWARD_MODEL_FORMAT", "value": predictor.model.model_format.name},
        {"name": "STEWARD_MODEL_VARIANT", "value": variant},
    ]
    if predictor.gpus_per_replica:
        _request_gpus(container, predictor.gpus_per_replica)
    extra = gpu_model_requirements(predictor.gpu_model)
    pod_spec: Raw = {"containers": [container]}
    if predictor.node_selector:
        pod_spec["nodeSelector"] = dict(predictor.node_selector)
    template: Raw = {
        "metadata": {"labels": pod_labels},
        "spec": place(pod_spec, share, labels, extra),
    }
    if predictor.pod_annotations:
        template["metadata"]["annotations"] = dict(predictor.pod_annotations)
    spec: Raw = {"selector": {"matchLabels": selector}, "template": template}
    digest = spec_hash(spec)
    spec["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": max_unavailable, "maxSurge": 1},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(name, share_label),
            "namespace": parent["metadata"]["namespace"],
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_WORKLOAD: name,
                LABEL_SHARE: share_label,
            },
            "annotations": {ANNOTATION_SPEC_HASH: digest},
            "ownerReferences": [owner_reference(parent)],
        },
        "spec": {**spec, "replicas": replicas},
    }


def serving_service_manifest(parent: Raw, service: InferenceService) -> Raw:
    """One Service in front of both shares, on the predictor's first container port."""
    name = parent["metadata"]["name"]
    ports = service.spec.predictor.container.model_extra or {}
    declared = ports.get("ports") or [{}]
    target = int(declared[0].get("containerPort", DEFAULT_SERVING_PORT))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": parent["metadata"]["namespace"],
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_WORKLOAD: name},
            "ownerReferences": [owner_reference(parent)],
        },
        "spec": {
            "selector": {LABEL_WORKLOAD: name, LABEL_MANAGED_BY: MANAGED_BY},
            "ports": [{"name": "http", "port": 80, "targetPort": target}],
        },
    }
