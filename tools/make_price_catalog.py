"""Derive Steward's default price catalog (operator/steward/cost/catalog.yaml) from public data.

Run from the repository root with the shared data set beside it:

    python tools/make_price_catalog.py ../shared/data > operator/steward/cost/catalog.yaml

Sources (all Apache-2.0; see ../shared/data/PROVENANCE.md and docs/pricing.md):
- AWS us-east-1 on-demand: aws/karpenter-provider-aws zz_generated.pricing_aws.go (2026-07-20).
- GCP on-demand and spot, with the spot price history since 2023-05: Cyclenerd/google-cloud-
  pricing-cost-calculator pricing.yml revisions (latest 2026-07-30).
- Azure eastus on-demand and spot: skypilot-org/skypilot-catalog v6 vms.csv.
- Grid carbon intensity and AWS PUE: cloud-carbon-footprint/cloud-carbon-footprint
  (FootprintEstimationConstants.ts, AwsFootprintEstimationConstants.ts).
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
from collections import defaultdict
from pathlib import Path

import yaml

# GPU model (as NVIDIA GPU feature discovery labels it) and GPUs per AWS instance type.
AWS_GPUS = {
    "p5.48xlarge": ("NVIDIA-H100-80GB-HBM3", 8),
    "p5.4xlarge": ("NVIDIA-H100-80GB-HBM3", 1),
    "p5en.48xlarge": ("NVIDIA-H200", 8),
    "p4d.24xlarge": ("NVIDIA-A100-SXM4-40GB", 8),
    "p4de.24xlarge": ("NVIDIA-A100-SXM4-80GB", 8),
    "p3.2xlarge": ("Tesla-V100-SXM2-16GB", 1),
    "p3.8xlarge": ("Tesla-V100-SXM2-16GB", 4),
    "p3.16xlarge": ("Tesla-V100-SXM2-16GB", 8),
    "p3dn.24xlarge": ("Tesla-V100-SXM2-32GB", 8),
    **{
        f"{family}.{size}": (model, count)
        for family, model in (("g5", "NVIDIA-A10G"), ("g6", "NVIDIA-L4"), ("g6e", "NVIDIA-L40S"))
        for size, count in (
            ("xlarge", 1), ("2xlarge", 1), ("4xlarge", 1), ("8xlarge", 1), ("16xlarge", 1),
            ("12xlarge", 4), ("24xlarge", 4), ("48xlarge", 8),
        )
    },
    **{
        f"g4dn.{size}": ("Tesla-T4", count)
        for size, count in (
            ("xlarge", 1), ("2xlarge", 1), ("4xlarge", 1), ("8xlarge", 1), ("16xlarge", 1),
            ("12xlarge", 4), ("metal", 8),
        )
    },
}
GCP_MODELS = {
    "h100-80gb": "NVIDIA-H100-80GB-HBM3",
    "h100-80gb-mega": "NVIDIA-H100-80GB-HBM3",
    "a100": "NVIDIA-A100-SXM4-40GB",
    "a100-80gb": "NVIDIA-A100-SXM4-80GB",
    "l4": "NVIDIA-L4",
}
GCP_REGIONS = ("us-central1", "us-east4", "europe-west4")
#: Instance types whose whole spot price history is kept, as an example of a time series.
GCP_HISTORY = {("a3-highgpu-8g", "us-central1"), ("a2-highgpu-8g", "us-central1")}
AZURE_MODELS = {
    "T4": "Tesla-T4",
    "V100": "Tesla-V100-SXM2-16GB",
    "V100-32GB": "Tesla-V100-SXM2-32GB",
    "A100": "NVIDIA-A100-SXM4-40GB",
    "A100-80GB": "NVIDIA-A100-SXM4-80GB",
    "H100": "NVIDIA-H100-80GB-HBM3",
    "A10": "NVIDIA-A10",
}
CCF = "cloud-carbon-footprint @5cfa10b (grid) / @0656d55 (AWS regions, PUE), Apache-2.0"
#: gCO2e/kWh per AWS region (CCF's NERC and country figures, tonnes/kWh x 1e6).
AWS_CARBON = {
    "us-east-1": 379.069, "us-east-2": 410.608, "us-west-1": 322.167, "us-west-2": 322.167,
    "ca-central-1": 130.0, "sa-east-1": 74.0, "eu-central-1": 338.0, "eu-west-1": 316.0,
    "eu-west-2": 228.0, "eu-west-3": 52.0, "eu-north-1": 8.0, "ap-northeast-1": 506.0,
    "ap-southeast-1": 408.5, "ap-southeast-2": 790.0, "ap-south-1": 708.0,
}
AWS_PUE = 1.135


def aws(data: Path) -> list[dict[str, object]]:
    document = json.loads((data / "prices/aws_us-east-1_ondemand_accelerated.json").read_text())
    source = "karpenter-provider-aws @1d92708 pricing (2026-07-20), Apache-2.0"
    return [
        {
            "instanceType": name,
            "region": document["region"],
            "gpuModel": AWS_GPUS[name][0],
            "gpus": AWS_GPUS[name][1],
            "onDemandUSDPerHour": price,
            "source": source,
        }
        for name, price in sorted(document["prices"].items())
        if name in AWS_GPUS
    ]


def gcp(data: Path) -> list[dict[str, object]]:
    rows = defaultdict(list)
    with gzip.open(data / "prices/gcp_gpu_price_history.csv.gz", "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["region"] in GCP_REGIONS and row["gpu_type"] in GCP_MODELS:
                rows[(row["instance"], row["region"])].append(row)
    source = "google-cloud-pricing-cost-calculator pricing.yml (latest 2026-07-30), Apache-2.0"
    entries = []
    for (instance, region), history in sorted(rows.items()):
        history.sort(key=lambda r: r["date"])
        latest = history[-1]
        if float(latest["gpu_count"]) < 1:
            continue
        entry: dict[str, object] = {
            "instanceType": instance,
            "region": region,
            "gpuModel": GCP_MODELS[latest["gpu_type"]],
            "gpus": int(float(latest["gpu_count"])),
            "onDemandUSDPerHour": round(float(latest["hour_ondemand"]), 6),
        }
        if latest["hour_spot"]:
            entry["spotUSDPerHour"] = round(float(latest["hour_spot"]), 6)
        if (instance, region) in GCP_HISTORY:
            entry["spotHistory"] = _changes(history)
        entries.append({**entry, "source": source})
    return entries


def _changes(history: list[dict[str, str]]) -> list[dict[str, object]]:
    """The weekly spot prices reduced to the points where the price changed."""
    points: list[dict[str, object]] = []
    for row in history:
        if not row["hour_spot"]:
            continue
        price = round(float(row["hour_spot"]), 6)
        if not points or points[-1]["usdPerHour"] != price:
            points.append({"since": f"{row['date']}T00:00:00Z", "usdPerHour": price})
    return points


def azure(data: Path) -> list[dict[str, object]]:
    text = (data / "prices/azure_gpu_eastus_skypilot_v6_excerpt.csv").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    source = "skypilot-catalog v6 azure vms.csv @098741e, Apache-2.0"
    entries = []
    for row in csv.DictReader(lines):
        if row["AcceleratorName"] not in AZURE_MODELS:
            continue
        # The catalog lists ND96isr_H100_v5 with 12 GPUs; the VM has 8.
        gpus = 8 if row["InstanceType"] == "Standard_ND96isr_H100_v5" else int(row["AcceleratorCount"])
        entry: dict[str, object] = {
            "instanceType": row["InstanceType"],
            "region": row["Region"],
            "gpuModel": AZURE_MODELS[row["AcceleratorName"]],
            "gpus": gpus,
            "onDemandUSDPerHour": float(row["Price"]),
        }
        # H100 rows repeat the on-demand price as spot: no spot offer was recorded.
        if row["SpotPrice"] and row["SpotPrice"] != row["Price"]:
            entry["spotUSDPerHour"] = float(row["SpotPrice"])
        entries.append({**entry, "source": source})
    return entries


def regions() -> list[dict[str, object]]:
    return [
        {"region": name, "gramsCO2ePerKWh": grams, "pue": AWS_PUE, "source": CCF}
        for name, grams in AWS_CARBON.items()
    ]


def main() -> None:
    data = Path(sys.argv[1])
    catalog = {
        "sources": [
            "AWS on-demand: aws/karpenter-provider-aws @1d92708 (Apache-2.0); no current AWS "
            "spot prices are in the data set, so AWS spot nodes are charged on-demand until "
            "a catalog of your own sets them",
            "GCP: Cyclenerd/google-cloud-pricing-cost-calculator (Apache-2.0)",
            "Azure: skypilot-org/skypilot-catalog v6 (Apache-2.0)",
            f"Carbon intensity and AWS PUE: {CCF}; regions not listed have no carbon figure",
        ],
        "instances": aws(data) + gcp(data) + azure(data),
        "regions": regions(),
    }
    sys.stdout.write("# Generated by tools/make_price_catalog.py; do not edit by hand.\n")
    sys.stdout.write(yaml.safe_dump(catalog, sort_keys=False, width=100))


if __name__ == "__main__":
    main()
