"""Names fixed up front: API group, finalizer, labels and annotations Steward owns."""

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
