"""Names fixed up front: API group, finalizer, labels and annotations Steward owns."""

import hashlib
import re
from typing import Final

GROUP: Final = "steward.ai"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CATEGORY: Final = "steward"

FINALIZER: Final = f"{GROUP}/finalizer"
#: Prefix of the annotations where kopf keeps its progress and diff-base.
KOPF_STORAGE_PREFIX: Final = GROUP

LABEL_MANAGED_BY: Final = f"{GROUP}/managed-by"
LABEL_WORKLOAD: Final = f"{GROUP}/workload"
LABEL_CAPACITY_TYPE: Final = f"{GROUP}/capacity-type"

#: Values of :data:`LABEL_CAPACITY_TYPE` on nodes and pods.
CAPACITY_LABEL_SPOT: Final = "spot"
CAPACITY_LABEL_ON_DEMAND: Final = "on-demand"

#: Kubernetes' extended resource name for NVIDIA GPUs.
GPU_RESOURCE: Final = "nvidia.com/gpu"

#: Value of :data:`LABEL_MANAGED_BY` on every object Steward creates.
MANAGED_BY: Final = "steward"
#: On a TrainingJob's Jobs and pods: which attempt (1, 2, ...) they belong to.
LABEL_ATTEMPT: Final = f"{GROUP}/attempt"
#: On an InferenceService's Deployments and pods: "on-demand" or "spot" (the capacity they use).
LABEL_SHARE: Final = f"{GROUP}/share"
#: On an InferenceService's pods: the model variant they serve (:func:`variant_label_value`).
LABEL_VARIANT: Final = f"{GROUP}/variant"
#: On a Job Steward stopped: why the attempt ended (Preempted, SpotUnavailable, ...).
ANNOTATION_ENDED: Final = f"{GROUP}/ended"
#: On a Job Steward stopped: when (RFC 3339), so lost work can be computed after the fact.
ANNOTATION_ENDED_AT: Final = f"{GROUP}/ended-at"
#: On a child object: hash of the desired spec Steward last applied, to patch only on change.
ANNOTATION_SPEC_HASH: Final = f"{GROUP}/spec-hash"
#: On a TrainingJob or InferenceService: what the governor applied to it (JSON, see
#: :class:`steward.api.directive.GovernorDirective`); the workload controllers overlay it.
ANNOTATION_GOVERNOR: Final = f"{GROUP}/governor"
#: On a CompressionJob the governor created: why (the note of its ``Compress`` Event).
ANNOTATION_GOVERNOR_REASON: Final = f"{GROUP}/governor-reason"
#: On a compression runner's Job and pods: the CompressionJob they run.
LABEL_COMPRESSION_JOB: Final = f"{GROUP}/compression-job"
#: On a Node: the GPUNodePool it belongs to (set by the Kwok provider; may be set by others).
LABEL_NODE_POOL: Final = f"{GROUP}/node-pool"
#: Name of the Lease the replicas of the operator elect their leader with.
LEASE_NAME: Final = "steward-leader"
#: The compression runner image of this release (the Dockerfile's compress-runner target).
DEFAULT_COMPRESSION_IMAGE: Final = "ghcr.io/steward-ai/steward-compress:0.1.0"

_LABEL_VALUE: Final = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def variant_label_value(variant: str) -> str:
    """The :data:`LABEL_VARIANT` value of a model variant ("original", "int8_dynamic", ...).

    The name itself where Kubernetes takes it as a label value; else ``v-`` and the first 16
    hex digits of its SHA-256 (a runner image may name variants freely). The serving pods carry
    it, the accounting reads it back from kube-state-metrics, and the serving controller finds
    the active variant's latency by it: one function, so the three always agree.
    """
    if _LABEL_VALUE.fullmatch(variant):
        return variant
    return "v-" + hashlib.sha256(variant.encode()).hexdigest()[:16]
