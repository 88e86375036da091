"""What the demo applies: one team, its Budget and policies, two node pools, its workloads.

Pure data. Prices are the shipped catalog's for a GCP ``a3-highgpu-8g`` (8 x H100 80GB) in
us-central1, multiplied by :attr:`DemoSettings.price_scale` so that minutes of demo cost what
hours would; the Budget's period is a few minutes long for the same reason. Both are shown on
screen and written in the summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from steward.api.constants import GROUP, VERSION
from steward.cost.catalog import InstancePrice, PriceCatalog

API_VERSION: Final = f"{GROUP}/{VERSION}"
TEAM: Final = "ml-research"
BUDGET: Final = "team-ml-research"
INSTANCE_TYPE: Final = "a3-highgpu-8g"
REGION: Final = "us-central1"
GPU_MODEL: Final = "NVIDIA-H100-80GB-HBM3"
SPOT_POOL: Final = "h100-spot"
ON_DEMAND_POOL: Final = "h100-on-demand"
FINETUNE: Final = "llm-finetune"
NIGHTLY_EVAL: Final = "nightly-eval"
LATE_JOB: Final = "late-sweep"
SERVICE: Final = "embed"
#: The service's GPUs are this busy (simulated DCGM): below the policy's compression trigger.
SERVICE_GPU_PERCENT: Final = 20
SPOT_TAINT: Final = {"key": "steward.ai/capacity-type", "value": "spot", "effect": "NoSchedule"}
LADDER: Final = (
    {"percent": 25, "actions": ["Notify", "ShiftToSpot"]},
    {"percent": 55, "actions": ["SuspendLowPriority"]},
    {"percent": 80, "actions": ["BlockNewWork"]},
)


@dataclass(frozen=True)
class DemoSettings:
    """The knobs that make the story fit in minutes.

    Attributes:
        price_scale: Every catalog price is multiplied by this (60: a minute costs an hour).
        budget_usd: The team's limit for the period, in scaled dollars.
        budget_minutes: The Budget's period length.
        finetune_seconds: Work of the checkpointed fine-tune (kwok runs the pod this long).
        checkpoint_seconds: Checkpoint interval of both training jobs.
        preempt_after_seconds: The fine-tune's first spot node is reclaimed this long after
            its pod starts (after at least one checkpoint).
    """

    price_scale: int = 60
    budget_usd: int = 330
    budget_minutes: int = 30
    finetune_seconds: int = 180
    checkpoint_seconds: int = 20
    preempt_after_seconds: int = 30


def demo_catalog(shipped: PriceCatalog, scale: int, now: datetime) -> PriceCatalog:
    """The demo's one instance type: the shipped catalog's prices in force at ``now``, scaled.

    Raises:
        LookupError: the shipped catalog has no spot and on-demand price for the instance.
    """
    entry = next(
        (p for p in shipped.instances if (p.instance_type, p.region) == (INSTANCE_TYPE, REGION)),
        None,
    )
    spot = entry.spot_at(now) if entry is not None else None
    if entry is None or spot is None:
        raise LookupError(f"the shipped catalog has no spot price for {INSTANCE_TYPE} {REGION}")
    factor = Decimal(scale)
    scaled = InstancePrice(
        instance_type=INSTANCE_TYPE,
        region=REGION,
        gpu_model=entry.gpu_model,
        gpus=entry.gpus,
        on_demand_usd_per_hour=entry.on_demand_usd_per_hour * factor,
        spot_usd_per_hour=spot[0] * factor,
        source=f"{entry.source}; {spot[1]}; x{scale} for the demo",
    )
    return PriceCatalog(
        sources=[*shipped.sources, f"steward demo: every price x{scale}"],
        instances=[scaled],
        regions=shipped.regions,
        defaults=shipped.defaults,
    )


def without_spot_prices(catalog: PriceCatalog) -> PriceCatalog:
    """The same catalog with no spot prices: spot nodes are then charged on-demand (the
    catalog's documented fallback), which is what the same work would cost on on-demand."""
    instances = [
        p.model_copy(update={"spot_usd_per_hour": None, "spot_history": []})
        for p in catalog.instances
    ]
    return catalog.model_copy(update={"instances": instances})


def namespace() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": TEAM, "labels": {"steward.ai/spot-eligible": "true"}},
    }


def node_pools() -> list[dict[str, Any]]:
    """A spot and an on-demand pool of simulated nodes that Steward sizes (Kwok provider)."""
    return [_pool(SPOT_POOL, "Spot"), _pool(ON_DEMAND_POOL, "OnDemand")]


def _pool(name: str, capacity: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "provider": {"type": "Kwok"},
        "instanceType": INSTANCE_TYPE,
        "gpuModel": GPU_MODEL,
        "gpusPerNode": 8,
        "capacityType": capacity,
        "region": REGION,
        "zone": f"{REGION}-a",
        "minNodes": 0,
        "maxNodes": 3,
        "labels": {"steward.ai/demo-pool": name},
        "scaleUp": {"maxStep": 2, "cooldown": "0s"},
        "scaleDown": {"idleTime": "20s", "maxStep": 3, "cooldown": "0s"},
    }
    if capacity == "Spot":
        spec["taints"] = [SPOT_TAINT]
    return {
        "apiVersion": API_VERSION,
        "kind": "GPUNodePool",
        "metadata": {"name": name, "labels": {"steward.ai/autoscale": "true"}},
        "spec": spec,
    }


def policies() -> list[dict[str, Any]]:
    """Node pools sized by pending work; the team's training on spot; idle serving compressed."""
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "CostPolicy",
            "metadata": {"name": "demo-node-pools"},
            "spec": {
                "mode": "Enforce",
                "selector": {"namespaces": ["none"]},
                "nodePools": {
                    "poolSelector": {"matchLabels": {"steward.ai/autoscale": "true"}},
                    "spotFallbackAfter": "60s",
                    "scaleDownIdleTime": "20s",
                    # The cap reserves a node-hour per new node: more than the demo's
                    # minutes-long Budget holds at scaled prices.
                    "budgetCap": False,
                },
            },
        },
        {
            "apiVersion": API_VERSION,
            "kind": "CostPolicy",
            "metadata": {"name": "demo-team"},
            "spec": {
                "mode": "Enforce",
                "selector": {"namespaces": [TEAM]},
                "budgetActions": {
                    "suspendPriorities": ["Low"],
                    "blockPriorities": ["Low", "Normal"],
                    "cooldown": "0s",
                },
                "compression": {
                    "gpuUtilizationBelowPercent": 50,
                    "methods": ["DynamicInt8", "StructuredPruning"],
                    "maxAccuracyDrop": 0.02,
                    "autoPromote": True,
                },
            },
        },
    ]


def budget(settings: DemoSettings, anchor: datetime) -> dict[str, Any]:
    """The team's dollar Budget, its period starting at ``anchor``, with the ladder."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Budget",
        "metadata": {"name": BUDGET},
        "spec": {
            "scope": {"namespaces": [TEAM]},
            "period": {
                "type": "Custom",
                "length": f"{settings.budget_minutes}m",
                "anchor": anchor.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "limits": {"usd": settings.budget_usd},
            "thresholds": list(LADDER),
        },
    }


def training_job(
    name: str, settings: DemoSettings, *, priority: str, capacity: str, seconds: int
) -> dict[str, Any]:
    """A one-worker, 8-GPU training job that checkpoints; kwok runs it ``seconds``."""
    spec: dict[str, Any] = {
        "workers": 1,
        "gpusPerWorker": 8,
        "priority": priority,
        "checkpoint": {
            "path": f"/checkpoints/{name}",
            "interval": f"{settings.checkpoint_seconds}s",
        },
        "capacity": {"type": capacity},
        "template": {
            "metadata": {
                "annotations": {
                    "steward.ai/run-time": f"{seconds}s",
                    "steward.ai/gpu-profile": "90",
                }
            },
            "spec": {"containers": [{"name": "trainer", "image": "ghcr.io/example/trainer:1"}]},
        },
    }
    if capacity == "SpotWithFallback":
        spec["capacity"] |= {"maxPreemptions": 3, "fallbackAfter": "90s"}
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": TEAM},
        "spec": spec,
    }


def inference_service(model_dir: Path) -> dict[str, Any]:
    """A one-GPU embedding service, mostly idle, that allows compressed variants."""
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": SERVICE, "namespace": TEAM},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "pytorch"},
                    "storageUri": str(model_dir / "model.pt"),
                },
                "container": {"image": "ghcr.io/example/server:1"},
                "minReplicas": 1,
                "maxReplicas": 1,
                "gpusPerReplica": 1,
                "podAnnotations": {"steward.ai/gpu-profile": f"{SERVICE_GPU_PERCENT}"},
            },
            "capacity": {"onDemandBase": 1},
            "compression": {
                "allowedMethods": ["DynamicInt8", "StructuredPruning"],
                "sourceFormat": "TorchSave",
                "maxAccuracyDrop": 0.02,
                "autoPromote": True,
                # Latency gates at the largest batch: 64 requests, as the service batches them
                # (at batch 1 this small model's time is call overhead, and the verdict noise).
                "evaluation": {
                    "datasetUri": str(model_dir / "eval.pt"),
                    "minSamples": 500,
                    "batchSizes": [1, 64],
                },
            },
        },
    }
