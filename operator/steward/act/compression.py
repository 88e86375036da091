"""The compression runner's Job for a CompressionJob: ``steward compress`` with the job's
model, methods, data, gate and output, its image and resources, a GPU when the hardware target
asks, and ``pvc://<claim>/...`` URIs mounted under /pvc. The runner writes its result to the
termination message, where the controller reads it."""

from __future__ import annotations

import json
from typing import Any, Final

from steward.act.manifests import owner_reference
from steward.api.compression_result import TERMINATION_MESSAGE_PATH
from steward.api.constants import GPU_RESOURCE, LABEL_COMPRESSION_JOB, LABEL_MANAGED_BY, MANAGED_BY
from steward.api.v1alpha1.compressionjob import CompressionJob, HardwareTarget
from steward.policy.compression_run import runner_name
from steward.policy.placement import GPU_PRODUCT_LABEL

Raw = dict[str, Any]
PVC_ROOT: Final = "/pvc"


def runner_job_manifest(parent: Raw, job: CompressionJob, default_image: str) -> Raw:
    """The batch/v1 Job that runs the compression runner once (no retries: a failed run is
    reported, not repeated)."""
    name = job.metadata.name or ""
    spec = job.spec
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPRESSION_JOB: name}
    uris = [spec.source.storage_uri, spec.evaluation.dataset_uri, spec.output_uri]
    claims = sorted({uri.removeprefix("pvc://").split("/", 1)[0] for uri in uris
                     if uri.startswith("pvc://")})  # fmt: skip
    container: Raw = {
        "name": "runner",
        "image": spec.image or default_image,
        "args": _args(job),
        "env": [{"name": "STEWARD_PVC_ROOT", "value": PVC_ROOT}],
        "resources": spec.resources.model_dump(mode="json", exclude_defaults=False),
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "File",
        "volumeMounts": [{"name": f"pvc-{c}", "mountPath": f"{PVC_ROOT}/{c}"} for c in claims],
    }
    pod: Raw = {"restartPolicy": "Never", "containers": [container],
                "volumes": [{"name": f"pvc-{c}", "persistentVolumeClaim": {"claimName": c}}
                            for c in claims]}  # fmt: skip
    if spec.hardware.target == HardwareTarget.GPU:
        resources = container["resources"]
        for kind in ("limits", "requests"):
            resources.setdefault(kind, {}).setdefault(GPU_RESOURCE, "1")
        if spec.hardware.gpu_model:
            pod["nodeSelector"] = {GPU_PRODUCT_LABEL: spec.hardware.gpu_model}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": runner_name(name),
            "namespace": job.metadata.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(parent)],
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels, "annotations": dict(spec.pod_annotations)},
                "spec": pod,
            },
        },
    }


def _args(job: CompressionJob) -> list[str]:
    spec = job.spec
    args = [
        "compress",
        "--model", spec.source.storage_uri,
        "--format", spec.source.format.value,
        "--methods", ",".join(m.value for m in spec.methods),
        "--eval", spec.evaluation.dataset_uri,
        "--min-samples", str(spec.evaluation.min_samples),
        "--batch-sizes", ",".join(str(b) for b in spec.evaluation.batch_sizes),
        "--max-accuracy-drop", str(spec.gate.max_accuracy_drop),
        "--max-latency-ratio", str(spec.gate.max_latency_ratio),
        "--alpha", str(spec.gate.weights.alpha),
        "--beta", str(spec.gate.weights.beta),
        "--hardware", spec.hardware.target.value,
        "--options", json.dumps(spec.options, sort_keys=True),
        "--out", spec.output_uri,
        "--result-file", TERMINATION_MESSAGE_PATH,
    ]  # fmt: skip
    if spec.source.architecture:
        args += ["--architecture", spec.source.architecture]
    if spec.evaluation.compile:
        args.append("--compile")
    train = spec.options.get("trainDatasetUri")
    if isinstance(train, str):
        args += ["--train", train]
    return args
