"""``steward.ai/v1alpha1``: the six kinds, and a registry of them by kind name."""

from typing import Final

from steward.api.v1alpha1.budget import Budget
from steward.api.v1alpha1.common import CustomResource
from steward.api.v1alpha1.compressionjob import CompressionJob
from steward.api.v1alpha1.costpolicy import CostPolicy
from steward.api.v1alpha1.gpunodepool import GPUNodePool
from steward.api.v1alpha1.inferenceservice import InferenceService
from steward.api.v1alpha1.trainingjob import TrainingJob

#: Every kind of the version, by ``kind`` name, in the order the docs list them.
KINDS: Final[dict[str, type[CustomResource]]] = {
    model.model_fields["kind"].default: model
    for model in (TrainingJob, InferenceService, CostPolicy, Budget, GPUNodePool, CompressionJob)
}

__all__ = [
    "KINDS",
    "Budget",
    "CompressionJob",
    "CostPolicy",
    "CustomResource",
    "GPUNodePool",
    "InferenceService",
    "TrainingJob",
]
