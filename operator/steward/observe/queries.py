"""Every PromQL query Steward issues, in one place, each replaceable by configuration.

Each cycle runs each query once, as a range query over the accounting window: the number of
queries is fixed, whatever the number of nodes, pods or workloads (results are grouped by node,
namespace and pod inside Prometheus). A replacement must return series with the labels its
default returns (the contract in :data:`CONTRACTS`); ``label_replace`` adapts other names, e.g.
dcgm-exporter's ``hostname`` instead of ``Hostname``, or Kepler's metrics for energy.

Defaults follow NVIDIA dcgm-exporter and kube-state-metrics. kube-state-metrics must publish the
node and pod labels Steward reads: ``--metric-labels-allowlist=nodes=[*],pods=[steward.ai/workload,
steward.ai/attempt,steward.ai/share,steward.ai/variant]`` (or ``[*]``).
"""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Annotated, Final

import yaml
from pydantic import Field, ValidationError, field_validator

from steward.api.schema import StewardModel, first_error

_DCGM_NODE: Final = 'label_replace({metric}, "node", "$1", "Hostname", "(.+)")'


def _per_gpu(metric: str) -> str:
    return f"max by (UUID, node, namespace, pod) ({_DCGM_NODE.format(metric=metric)})"


DEFAULT_QUERIES: Final[dict[str, str]] = {
    "node_gpus": 'max by (node) (kube_node_status_capacity{resource="nvidia_com_gpu"})',
    "node_labels": "kube_node_labels",
    "pod_gpus": (
        "sum by (namespace, pod, node) ("
        'kube_pod_container_resource_requests{resource="nvidia_com_gpu"}'
        " * on (namespace, pod) group_left () (max by (namespace, pod) "
        '(kube_pod_status_phase{phase="Running"}) == 1))'
    ),
    "pod_workloads": (
        "max by (namespace, pod, label_steward_ai_workload, label_steward_ai_attempt, "
        "label_steward_ai_share, label_steward_ai_variant) "
        '(kube_pod_labels{label_steward_ai_workload!=""})'
    ),
    "gpu_energy": _per_gpu("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"),
    "gpu_power": _per_gpu("DCGM_FI_DEV_POWER_USAGE"),
    "gpu_utilization": _per_gpu("DCGM_FI_DEV_GPU_UTIL"),
    # vLLM's names carry a colon, which an OpenMetrics scrape of prometheus_client escapes to
    # "_": either spelling counts.
    "pod_requests": 'sum by (namespace, pod) ({__name__=~"vllm[:_]request_success_total"})',
    "pod_latency": (
        'sum by (namespace, pod, le) ({__name__=~"vllm[:_]e2e_request_latency_seconds_bucket"})'
    ),
    # Seconds since each required scrape job last succeeded; $jobs is their regex alternation.
    # timestamp() reads sample times only of a plain selector (of `up == 1` it would return the
    # evaluation time), so the age is taken first and filtered on `up == 1` after.
    "scrape_age": (
        'max by (job) ((time() - timestamp(up{job=~"$jobs"})) '
        'and on (job, instance) (up{job=~"$jobs"} == 1))'
    ),
}

#: The labels each query's series must carry, and what their values mean.
CONTRACTS: Final[dict[str, str]] = {
    "node_gpus": "node; value: GPUs the node has",
    "node_labels": "node and label_<key> for the node's labels (kube-state-metrics naming)",
    "pod_gpus": "namespace, pod, node; value: GPUs the running pod requests",
    "pod_workloads": "namespace, pod, label_steward_ai_workload, label_steward_ai_attempt or "
    "label_steward_ai_share (with label_steward_ai_variant where a serving pod has one)",
    "gpu_energy": "UUID, node, namespace, pod (empty when idle); value: energy counter in mJ",
    "gpu_power": "UUID, node, namespace, pod; value: watts",
    "gpu_utilization": "UUID, node, namespace, pod; value: percent",
    "pod_requests": "namespace, pod; value: a counter of requests served",
    "pod_latency": "namespace, pod, le; value: a counter of requests served within le seconds "
    "(a histogram's buckets)",
    "scrape_age": "job; value: seconds since the job's last successful scrape",
}

#: Scrape jobs whose data the accounting cannot do without, by default.
DEFAULT_REQUIRED_JOBS: Final = ("kube-state-metrics", "dcgm-exporter")


class QueryConfig(StewardModel):
    """Overrides of the default queries, read from YAML (a ConfigMap key in a cluster)."""

    queries: dict[str, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)
    required_jobs: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] = (
        Field(default_factory=lambda: list(DEFAULT_REQUIRED_JOBS))
    )

    @field_validator("queries")
    @classmethod
    def _known_names(cls, queries: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(queries) - set(DEFAULT_QUERIES))
        if unknown:
            raise ValueError(
                f"unknown queries {unknown}; known: {', '.join(sorted(DEFAULT_QUERIES))}"
            )
        return queries

    def resolved(self) -> dict[str, str]:
        """Every query, overrides applied and ``$jobs`` filled in."""
        jobs = "|".join(self.required_jobs)
        merged = {**DEFAULT_QUERIES, **self.queries}
        return {name: Template(text).safe_substitute(jobs=jobs) for name, text in merged.items()}


def load_query_config(path: Path | None) -> QueryConfig:
    """The configuration at ``path`` (YAML), or the defaults; ``ValueError`` names the field."""
    if path is None:
        return QueryConfig()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return QueryConfig.model_validate(document)
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: {error}") from None
    except ValidationError as error:
        raise ValueError(f"{path}: {first_error(error)}") from None
