"""A dcgm-exporter-compatible endpoint for the kwok GPU nodes of the local cluster.

Run as ``python -m steward.devcluster.gpumetrics --kubeconfig K --port P``. Every second it lists
GPU nodes and running pods, works out what each GPU does (``gpusim``), and serves the series
dcgm-exporter serves, with its label names:

- ``DCGM_FI_DEV_GPU_UTIL`` (%), ``DCGM_FI_DEV_POWER_USAGE`` (W), ``DCGM_FI_DEV_FB_USED`` (MiB);
- ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (mJ since the exporter started; a counter in
  dcgm-exporter, published under the same name, without prometheus_client's ``_total``);

and, for serving pods that say what they serve (``gpusim.ServingMeter``), vLLM's
``vllm:request_success_total`` and ``vllm:e2e_request_latency_seconds_bucket`` (``namespace``,
``pod``, and ``le`` for the buckets).
"""

from __future__ import annotations

import argparse
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Final

from kubernetes.client import CoreV1Api
from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from steward.api.constants import GPU_RESOURCE
from steward.devcluster.gpusim import (
    Assignment,
    EnergyMeter,
    GPUReading,
    NodeView,
    PodView,
    ServingMeter,
    assign,
    readings,
)
from steward.devcluster.kube import core_api, list_items
from steward.devcluster.nodes import LABEL_GPU_PRODUCT

LABELS: Final = ("gpu", "UUID", "modelName", "Hostname", "namespace", "pod", "container")
log = logging.getLogger("steward.gpumetrics")


def node_views(nodes: list[dict[str, Any]]) -> list[NodeView]:
    """GPU nodes (``nvidia.com/gpu`` capacity above zero) from raw Node objects."""
    views = []
    for node in nodes:
        gpus = int(node.get("status", {}).get("capacity", {}).get(GPU_RESOURCE, "0"))
        if gpus > 0:
            meta = node["metadata"]
            views.append(
                NodeView(meta["name"], gpus, meta.get("labels", {}).get(LABEL_GPU_PRODUCT, ""))
            )
    return views


def pod_views(pods: list[dict[str, Any]]) -> list[PodView]:
    """Running pods that hold GPUs, from raw Pod objects."""
    views = []
    for pod in pods:
        spec, status, meta = pod.get("spec", {}), pod.get("status", {}), pod["metadata"]
        if status.get("phase") != "Running" or not spec.get("nodeName"):
            continue
        per_container = [(c["name"], _gpus_of(c)) for c in spec.get("containers", [])]
        gpus = sum(n for _, n in per_container)
        if gpus == 0:
            continue
        container = next(name for name, n in per_container if n)
        started = _timestamp(status.get("startTime"))
        views.append(
            PodView(
                meta["uid"],
                meta["namespace"],
                meta["name"],
                container,
                spec["nodeName"],
                gpus,
                started,
                meta.get("annotations", {}),
            )
        )
    return views


def _gpus_of(container: dict[str, Any]) -> int:
    resources = container.get("resources", {})
    wanted = resources.get("limits", {}).get(GPU_RESOURCE) or resources.get("requests", {}).get(
        GPU_RESOURCE
    )
    return int(wanted or 0)


def _timestamp(rfc3339: str | None) -> float:
    if not rfc3339:
        return time.time()
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class GPUCollector(Collector):
    """Serves the latest samples; a background thread replaces them every interval."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: list[GPUReading] = []
        self._energy = EnergyMeter.start()
        self._serving = ServingMeter()

    def update(
        self, samples: list[GPUReading], now: float, pods: list[PodView] | None = None
    ) -> None:
        with self._lock:
            self._energy.record(samples, now)
            self._serving.record(pods or [], now)
            self._samples = samples

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            samples, energy = list(self._samples), dict(self._energy.millijoules)
            served = dict(self._serving.requests)
            buckets = {key: dict(counts) for key, counts in self._serving.buckets.items()}
        families: dict[str, tuple[str, Callable[[GPUReading], float]]] = {
            "DCGM_FI_DEV_GPU_UTIL": ("GPU utilization (in %).", lambda s: s.utilization),
            "DCGM_FI_DEV_POWER_USAGE": ("Power draw (in W).", lambda s: s.watts),
            "DCGM_FI_DEV_FB_USED": ("Framebuffer memory used (in MiB).", lambda s: s.fb_used_mib),
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": (
                "Total energy consumption since boot (in mJ).",
                lambda s: energy.get(s.uuid, 0.0),
            ),
        }
        for name, (help_text, value) in families.items():
            family = GaugeMetricFamily(name, help_text, labels=LABELS)
            for s in samples:
                family.add_metric(
                    [str(s.index), s.uuid, s.model_name, s.node, s.namespace, s.pod, s.container],
                    value(s),
                )
            yield family
        yield from _serving_families(served, buckets)


def _serving_families(
    served: dict[tuple[str, str], float], buckets: dict[tuple[str, str], dict[float, float]]
) -> Iterator[Metric]:
    requests = GaugeMetricFamily("vllm:request_success_total", "Requests served (a counter).",
                                 labels=("namespace", "pod"))  # fmt: skip
    for (namespace, pod), count in served.items():
        requests.add_metric([namespace, pod], count)
    yield requests
    latency = GaugeMetricFamily(
        "vllm:e2e_request_latency_seconds_bucket",
        "Requests served within le seconds (a histogram's cumulative buckets).",
        labels=("namespace", "pod", "le"),
    )
    for (namespace, pod), counts in buckets.items():
        for bound, count in counts.items():
            latency.add_metric([namespace, pod, "+Inf" if math.isinf(bound) else str(bound)], count)
    yield latency


def run(api: CoreV1Api, collector: GPUCollector, interval: float) -> None:
    """Sample forever; an apiserver hiccup skips one interval instead of ending the exporter."""
    assignment: Assignment = {}
    while True:
        now = time.time()
        try:
            nodes = node_views(list_items(api.list_node))
            running = list_items(
                api.list_pod_for_all_namespaces, field_selector="status.phase=Running"
            )
            pods = pod_views(running)
            assignment = assign(assignment, nodes, pods)
            collector.update(readings(nodes, pods, assignment, now), now, pods)
        except Exception:  # keep serving the last good samples
            log.exception("sampling failed; keeping the previous samples")
        time.sleep(max(interval - (time.time() - now), 0.05))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    api = core_api(args.kubeconfig)
    collector = GPUCollector()
    REGISTRY.register(collector)
    start_http_server(args.port, addr="127.0.0.1")
    log.info("serving DCGM-compatible metrics on 127.0.0.1:%d", args.port)
    run(api, collector, args.interval)


if __name__ == "__main__":
    main()
