"""Warm start time, steady and peak memory of the whole local cluster under a GPU workload.

    python bench/devcluster.py [--starts 3] [--pods 40] [--json out.json]

Needs the binaries built (`steward dev-cluster build`) and Prometheus installed. Each start is
timed from nothing to every component ready; then one cluster runs a workload (8 GPU nodes, a
Job of --pods one-GPU pods of 10 s each, 4 at a time per node) while the resident memory of
every component is sampled every 0.2 s. Results go to stdout (and --json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from kubernetes import client

from steward.devcluster import cluster
from steward.devcluster.kube import core_api
from steward.devcluster.nodes import GPUNode, add_node


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class MemorySampler(threading.Thread):
    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak_total = 0.0
        self.peak: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            sample = {name: rss_mib(pid) for name, pid in self.pids.items()}
            self.peak_total = max(self.peak_total, sum(sample.values()))
            for name, value in sample.items():
                self.peak[name] = max(self.peak[name], value)
            time.sleep(0.2)


def timed_start(workdir: Path) -> float:
    started = time.monotonic()
    cluster.up(workdir, tie_to_parent=True, report=lambda _line: None)
    return time.monotonic() - started


def workload(state: cluster.ClusterState, pods: int) -> float:
    core = core_api(state.kubeconfig)
    batch = client.BatchV1Api(core.api_client)
    for i in range(8):
        add_node(core, GPUNode(f"bench-{i}", gpus=4, spot=i % 2 == 0, taints=()))
    core.create_namespace(body={"metadata": {"name": "bench"}})  # type: ignore[arg-type]
    job = {
        "metadata": {"name": "bench"},
        "spec": {
            "completions": pods,
            "parallelism": 32,
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "annotations": {"steward.ai/run-time": "10s", "steward.ai/gpu-profile": "80"}
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "w",
                            "image": "bench:1",
                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        }
                    ],
                },
            },
        },
    }
    started = time.monotonic()
    batch.create_namespaced_job(namespace="bench", body=job)  # type: ignore[arg-type]
    while (batch.read_namespaced_job(name="bench", namespace="bench").status.succeeded or 0) < pods:
        time.sleep(0.5)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--pods", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="steward-bench-"))
    starts = []
    for i in range(args.starts):
        starts.append(timed_start(base / f"start-{i}"))
        cluster.down(base / f"start-{i}")
    workdir = base / "workload"
    timed_start(workdir)
    state = cluster.load(workdir)
    assert state is not None
    sampler = MemorySampler(state.pids)
    sampler.start()
    try:
        job_seconds = workload(state, args.pods)
        time.sleep(15)  # a few more scrapes with the finished pods' series
    finally:
        sampler.stopped.set()
        sampler.join()
        stopping = time.monotonic()
        cluster.down(workdir)
        down_seconds = time.monotonic() - stopping
    result = {
        "warm_start_seconds": {"median": statistics.median(starts), "all": starts},
        "workload": {
            "pods": args.pods,
            "job_seconds": job_seconds,
            "ideal_seconds": 10 * -(-args.pods // 32),
        },
        "peak_rss_mib_total": round(sampler.peak_total, 1),
        "peak_rss_mib_by_component": {k: round(v, 1) for k, v in sampler.peak.items()},
        "down_seconds": down_seconds,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
