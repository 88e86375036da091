"""Trace replay: Steward's policy against every baseline on real traces, and replay speed.

    python bench/replay.py [--data ../shared/data] [--policies DIR ...] [--out docs/replay]
                           [--json out.json]

Workloads: the full Alibaba ``openb_pod_list_default`` (8k pods, 149 days) and its
``gpushare100`` variant (70 % best-effort pods, all sharing GPUs). (The Alibaba spot-GPU job
lists in shared/data hold only HP jobs: nothing for spot to do.) Spot capacity: a 1-node AWS
V100 zone of the SkyPilot 9-zone trace, a zone of the SkyPilot 16-node gang trace, and the GCP
A100 trace. Prices: AWS p3.16xlarge spot history in us-west-2c (per GPU-hour) with the
us-east-1 on-demand list for the AWS traces; GCP a2-highgpu-8g spot/on-demand history in
us-central1 for the GCP trace. Default mapping (docs/simulator.md). Governance: the Budget and
CostPolicy in ``bench/replay-policies`` (a monthly USD budget on namespace ``openb`` with a
four-rung ladder; the default), the node pools in ``bench/replay-pools`` (1- and 8-GPU nodes,
on-demand and spot), or both (``--policies`` repeated); Steward is governed by the Budgets and
CostPolicies, every policy's breaches are counted, every policy runs on the pools. Speed:
each replay's time as a multiple of reading and parsing the workload CSV in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import chain
from pathlib import Path

from steward.sim.budgets import Governance, load_governance
from steward.sim.command import energy_model
from steward.sim.engine import Inputs
from steward.sim.loaders import aws_spot_prices, gcp_prices, load_capacity, load_workload
from steward.sim.mapping import SimMapping
from steward.sim.replay import replay_all
from steward.sim.report import write

WORKLOADS = ("jobs/openb/openb_pod_list_default.csv", "jobs/openb/openb_pod_list_gpushare100.csv")
TRACES = (
    ("spot/skypilot/availability/1-node/aws-02-15-2023/us-east-1f_v100_1.json", "aws"),
    ("spot/skypilot/availability/16-node/aws-08-27-2023/us-east-2b_v100_1.json", "aws"),
    ("spot/gcp-a100/us-central1-a_a100_40gb_8.json", "gcp"),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--policies", type=Path, action="append",
                        help="a directory of Budgets, CostPolicies, GPUNodePools (repeatable; "
                             "default bench/replay-policies)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    data, mapping = args.data, SimMapping()
    folders = args.policies or [Path(__file__).parent / "replay-policies"]
    loaded = [load_governance(folder) for folder in folders]
    governance = Governance(*(tuple(chain.from_iterable(getattr(g, part) for g in loaded))
                              for part in ("budgets", "policies", "pools")))  # fmt: skip
    energy = energy_model(mapping)
    prices = {
        "aws": aws_spot_prices(data / "prices/aws_spot_price_history_p2_p3_2019-2020.csv",
                               data / "prices/aws_us-east-1_ondemand_accelerated.json",
                               "p3.16xlarge", "us-west-2c"),
        "gcp": gcp_prices(data / "prices/gcp_gpu_price_history.csv.gz", "a2-highgpu-8g",
                          "us-central1"),
    }  # fmt: skip
    records = []
    for workload in WORKLOADS:
        started = time.perf_counter()
        jobs = load_workload(data / workload, mapping)
        load_seconds = time.perf_counter() - started
        for trace, market in TRACES:
            capacity = load_capacity(data / trace, mapping)
            inputs = Inputs(jobs, capacity, prices[market], mapping, energy, governance)
            started = time.perf_counter()
            report = replay_all(inputs, names=(Path(workload).name, trace, prices[market].name))
            replay_seconds = time.perf_counter() - started
            print(report.markdown())
            print(f"replay of all policies: {replay_seconds / load_seconds:.1f}x the time to "
                  f"read the workload ({replay_seconds:.2f} s on this machine)\n")  # fmt: skip
            records.append({**report.to_json(), "replay_over_load": replay_seconds / load_seconds,
                            "replay_seconds": replay_seconds})  # fmt: skip
            if args.out is not None:
                folder = args.out / f"{Path(workload).stem}--{Path(trace).stem}"
                write(report, folder)
    if args.json is not None:
        args.json.write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
