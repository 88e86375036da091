"""`steward simulate` end to end on small trace files: summary, report files, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from steward.cli import main


def _traces(folder: Path) -> list[str]:
    workload = folder / "jobs.csv"
    workload.write_text(
        "job_name,organization,job_type,duration,gpu_request,cpu_request,worker_num,gpu_seconds,"
        "submit_time\na,1,Spot,7200.0,2.0,8.0,1,14400,0.0\nb,1,HP,3600.0,1.0,8.0,1,3600,0.0\n"
    )
    spot = folder / "zone.json"
    spot.write_text(json.dumps({"metadata": {"gap_seconds": 3600}, "data": [0, 1, 0, 0, 0]}))
    history = folder / "spot.csv"
    history.write_text(
        "timestamp,availability_zone,instance_type,product,spot_price_usd_per_hour\n"
        "2020-01-01T00:00:00.000Z,z1,p3.2xlarge,Linux/UNIX,1.0\n"
    )
    on_demand = folder / "od.json"
    on_demand.write_text(json.dumps({"prices": {"p3.2xlarge": 4.0}}))
    mapping = folder / "mapping.yaml"
    mapping.write_text("checkpoint_overhead_seconds: 0\nrestart_latency_seconds: 0\n"
                       "gpus_per_trace_unit: 8\nmin_work_seconds: 0\n")  # fmt: skip
    policies = folder / "policies"
    policies.mkdir()
    (policies / "budget.yaml").write_text(
        "apiVersion: steward.ai/v1alpha1\nkind: Budget\nmetadata: {name: daily}\n"
        "spec:\n  scope: {namespaces: [org-1]}\n  period: {type: Daily}\n  limits: {usd: 12}\n"
        "  thresholds: [{percent: 80, actions: [Notify]}]\n"
    )
    return ["simulate", "--workload", str(workload), "--spot", str(spot), "--prices",
            str(history), "--on-demand-prices", str(on_demand), "--instance", "p3.2xlarge",
            "--zone", "z1", "--mapping", str(mapping), "--policies", str(policies)]  # fmt: skip


def test_simulate_prints_json_with_every_policy_and_ratios(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [*_traces(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    usd = {r["policy"]: r["usd"] for r in report["results"]}
    # b: 1 GPU-h on-demand everywhere (4 USD). a: 2 GPUs x 2 h; spot out in hour 2.
    assert usd["on-demand"] == 4.0 + 16.0
    assert usd["steward"] == 4.0 + 2.0 + 2 * 1.0 * 4.0  # 1 h spot, 15 min wait, the last 1 h od
    assert usd["lower-bound"] == 1.0 + 4.0
    assert {r["policy"]: r["budget_breaches"] for r in report["results"]}["on-demand"] == 1


def test_simulate_writes_the_report_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [*_traces(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "steward" in result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["budget-burn-down.png", "cost.png", "report.json", "report.md",
                     "spot-share.png"]  # fmt: skip
    assert (out / "cost.png").read_bytes()[:4] == b"\x89PNG"
    assert "| steward |" in (out / "report.md").read_text()


def test_simulate_names_the_bad_trace(tmp_path: Path) -> None:
    args = _traces(tmp_path)
    (tmp_path / "zone.json").write_text('{"metadata": {}, "data": []}')
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "zone.json: not a tick trace" in result.output


def test_simulate_governs_steward_by_the_policies_directory(tmp_path: Path) -> None:
    args = _traces(tmp_path)
    policies = tmp_path / "policies"
    budget = (policies / "budget.yaml").read_text()
    (policies / "budget.yaml").write_text(
        budget.replace(
            "{percent: 80, actions: [Notify]}", "{percent: 25, actions: [SuspendLowPriority]}"
        )
    )
    (policies / "policy.yaml").write_text(
        "apiVersion: steward.ai/v1alpha1\nkind: CostPolicy\nmetadata: {name: ladder}\n"
        "spec: {mode: Enforce}\n"
    )
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    steward = next(r for r in json.loads(result.stdout)["results"] if r["policy"] == "steward")
    # Day 0: 5 USD (b's 4, a's first 30 min on spot: 25 % at the 30 min tick, so a (Low) stops at
    # its checkpoint). Its deadline (3x its 2 h of work) has passed by midnight, so it resumes
    # on on-demand (8 USD/h): 25 % again at 30 min, suspended again, each day until its last
    # 30 min of work finishes on day 3.
    assert steward["governor_actions"] == {"SuspendLowPriority": 3}
    assert steward["daily_usd"] == [5.0, 4.0, 4.0, 4.0]
    assert (steward["budget_breaches"], steward["preemptions"]) == (0, 0)


def _pool_yaml(name: str, capacity: str) -> str:
    return (
        f"apiVersion: steward.ai/v1alpha1\nkind: GPUNodePool\nmetadata: {{name: {name}}}\n"
        f"spec: {{provider: {{type: Kwok}}, instanceType: p3.2xlarge, gpuModel: V100,\n"
        f"       gpusPerNode: 2, capacityType: {capacity}, maxNodes: 4}}\n"
    )


def test_simulate_runs_on_the_node_pools_of_the_policies_directory(tmp_path: Path) -> None:
    arguments = _traces(tmp_path)
    policies = tmp_path / "policies"
    (policies / "pools.yaml").write_text(_pool_yaml("spot", "Spot"))
    refused = CliRunner().invoke(main, arguments)
    assert refused.exit_code != 0
    assert "no on-demand GPUNodePool" in refused.output
    (policies / "pools.yaml").write_text(_pool_yaml("spot", "Spot") + "---\n"
                                         + _pool_yaml("on-demand", "OnDemand"))  # fmt: skip
    result = CliRunner().invoke(main, [*arguments, "--json"])
    assert result.exit_code == 0, result.output
    on_demand = next(r for r in json.loads(result.stdout)["results"] if r["policy"] == "on-demand")
    # a (2 GPUs, 2 h) and b (1 GPU, 1 h) on two 2-GPU nodes, each closed 10 min after its job:
    # 2 GPUs x (2 h + 1/6 h + 1 h + 1/6 h) x 4 USD; the runs held 5 GPU-hours.
    assert on_demand["usd"] == pytest.approx(2 * (3 + 2 / 6) * 4.0)
    assert (on_demand["gpu_hours"], on_demand["node_gpu_hours"]) == (
        5.0,
        pytest.approx(2 * (3 + 2 / 6)),
    )
