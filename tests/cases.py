"""Broken variants of the shipped manifests, shared by the offline and the apiserver tests.

Each case breaks one field of one file and says which field path the error must name and which
words its message must contain.
"""

from pathlib import Path
from typing import Any

import yaml

BUDGET = "policies/budget-team-ml-research.yaml"
POOLS = "policies/gpunodepools.yaml"
TRAINING = "examples/trainingjob-spot.yaml"
SERVICE = "examples/inferenceservice.yaml"


def load_doc(repo: Path, name: str, index: int = 0) -> dict[str, Any]:
    return [d for d in yaml.safe_load_all((repo / name).read_text()) if d][index]


def set_field(document: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = document
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value


DELETE = object()

BROKEN = [
    # (file, field to break, bad value, path reported, words in the message)
    (BUDGET, "spec.limits.usd", "lots", "spec.limits.usd", "must be a number"),
    (BUDGET, "spec.limits.usd", -100, "spec.limits.usd", "greater than or equal to 0"),
    (BUDGET, "spec.period.resetDay", 3, "spec.period.resetDay", "unknown field"),
    (BUDGET, "spec.period.type", "Yearly", "spec.period.type", "'Monthly'"),
    (BUDGET, "spec.period.timeZone", "Mars/Olympus", "spec.period.timeZone", "time zone"),
    (BUDGET, "spec.thresholds.1.percent", 40, "spec.thresholds", "strictly ascending"),
    (BUDGET, "spec.thresholds.0.actions", ["Panic"], "spec.thresholds[0].actions[0]", "'Notify'"),
    (BUDGET, "spec.limits", {}, "spec.limits", "at least one of usd"),
    (BUDGET, "spec.period.resetWeekday", "Monday", "spec.period.resetWeekday", "Weekly"),
    (BUDGET, "spec.thresholds", DELETE, "spec.thresholds", "required field is missing"),
    (POOLS, "spec.minNodes", 9, "spec.maxNodes", "at least minNodes"),
    (POOLS, "spec.gpusPerNode", "eight", "spec.gpusPerNode", "valid integer"),
    (POOLS, "spec.provider.ref", DELETE, "spec.provider.ref", "required for the ClusterAPI"),
    (POOLS, "spec.pricePerNodeHourUSD", -3, "spec.pricePerNodeHourUSD", "greater than or equal"),
    (POOLS, "spec.scaleDown.idleTime", "0s", "spec.scaleDown.idleTime", "longer than zero"),
    (TRAINING, "spec.capacity.type", "Preemptible", "spec.capacity.type", "'SpotWithFallback'"),
    (TRAINING, "spec.checkpoint", DELETE, "spec.checkpoint", "needs a checkpoint"),
    (TRAINING, "spec.checkpoint.interval", 1200, "spec.checkpoint.interval", "duration"),
    (
        TRAINING,
        "spec.checkpoint.resume.argument",
        DELETE,
        "spec.checkpoint.resume.argument",
        "required when strategy is Argument",
    ),
    (TRAINING, "spec.template.spec.containers", [], "spec.template.spec.containers", "at least 1"),
    (TRAINING, "spec.workers", 0, "spec.workers", "greater than or equal to 1"),
    (
        SERVICE,
        "spec.predictor.minReplicas",
        9,
        "spec.predictor.maxReplicas",
        "at least minReplicas",
    ),
    (SERVICE, "spec.capacity.onDemandBase", 3, "spec.capacity", "onDemandBase cannot exceed"),
    (
        SERVICE,
        "spec.compression.allowedMethods",
        ["BF16", "BF16"],
        "spec.compression.allowedMethods",
        "at most once",
    ),
    (
        SERVICE,
        "spec.compression.maxAccuracyDrop",
        1.5,
        "spec.compression.maxAccuracyDrop",
        "less than or equal to 1",
    ),
]


#: Cases only Python can check: CEL has no IANA time-zone database.
PYTHON_ONLY = frozenset({"spec.period.timeZone"})
