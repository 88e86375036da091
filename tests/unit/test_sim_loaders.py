"""Trace loaders: each format on small files written here, and the real shared traces."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from steward.sim.loaders import (
    TraceError,
    aws_spot_prices,
    gcp_prices,
    load_capacity,
    load_workload,
)
from steward.sim.mapping import SimMapping, TickCounts

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
MAPPING = SimMapping(gpus_per_trace_unit=8, min_work_seconds=60, deadline_slack=2.0)


def test_openb_pods_become_jobs_with_their_gpu_share_and_qos(tmp_path: Path) -> None:
    path = tmp_path / "pods.csv"
    path.write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
        "deletion_time,scheduled_time\n"
        "cpu-only,1000,100,0,0,,LS,Running,0,500,0\n"
        "shared,1000,100,1,500,,BE,Running,10,1010,20\n"
        "whole,1000,100,2,1000,,LS,Succeeded,0,3600,0\n"
        "never,1000,100,1,1000,,BE,Pending,5,,\n"
        "blip,1000,100,1,1000,,BE,Failed,5,30,5\n"
    )
    jobs = load_workload(path, MAPPING)
    assert [(j.name, j.gpus, j.work, j.spot_eligible, j.checkpointed) for j in jobs] == [
        ("whole", 2.0, 3600.0, False, False),
        ("shared", 0.5, 990.0, True, True),
    ]
    assert jobs[1].deadline == 10 + 2 * 990


def test_alibaba_spot_jobs_use_workers_times_gpus_and_job_type(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text(
        "job_name,organization,job_type,duration,gpu_request,cpu_request,worker_num,gpu_seconds,"
        "submit_time\n1,13,HP,7200.0,1.0,8.0,2,14400,100.0\n2,7,Spot,600.0,8.0,8.0,1,4800,0.0\n"
    )
    jobs = load_workload(path, MAPPING)
    assert [(j.name, j.gpus, j.spot_eligible, j.group) for j in jobs] == [
        ("2", 8.0, True, "org-7"), ("1", 2.0, False, "org-13")
    ]  # fmt: skip


def test_a_workload_of_unknown_shape_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(TraceError, match=r"other\.csv: unknown workload format"):
        load_workload(path, MAPPING)


def test_tick_traces_count_unavailable_instances_by_default(tmp_path: Path) -> None:
    path = tmp_path / "zone.json"
    path.write_text(json.dumps({"metadata": {"gap_seconds": 150}, "data": [0, 1, 1, 0]}))
    trace = load_capacity(path, MAPPING)
    assert (trace.tick, trace.gpus) == (150.0, (8.0, 0.0, 0.0, 8.0))
    counted = load_capacity(path, MAPPING.model_copy(update={"tick_counts": TickCounts.AVAILABLE}))
    assert counted.gpus == (0.0, 8.0, 8.0, 0.0)


def test_event_traces_are_sampled_every_minute(tmp_path: Path) -> None:
    bamboo = tmp_path / "p3.csv"
    bamboo.write_text("0,add,node1\n0,add,node2\n90000,remove,node1\n150000,add,node3\n")
    assert load_capacity(bamboo, MAPPING).gpus == (16.0, 16.0, 8.0, 16.0)
    parcae = tmp_path / "segment.txt"
    parcae.write_text('[0, "add", {"nodes": ["a", "b", "c"]}]\n'
                      '[61000, "remove", {"nodes": ["b"]}]\n[120000, "no-op", {}]\n')  # fmt: skip
    assert load_capacity(parcae, MAPPING).gpus == (24.0, 24.0, 16.0)
    log = tmp_path / "gcloud.txt"
    log.write_text("2021-12-11, 11:00:00, 3\n2021-12-11, 11:01:30, 2\n2021-12-11, 11:02:00, 1\n")
    assert load_capacity(log, MAPPING).gpus == (24.0, 24.0, 8.0)


def test_a_malformed_capacity_trace_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("0,add,node1\n10,explode,node1\n")
    with pytest.raises(TraceError, match=r"bad.csv:2: unknown event 'explode'"):
        load_capacity(path, MAPPING)


def test_aws_prices_are_per_gpu_hour_from_the_first_change(tmp_path: Path) -> None:
    history = tmp_path / "spot.csv"
    history.write_text(
        "timestamp,availability_zone,instance_type,product,spot_price_usd_per_hour\n"
        "2020-01-01T01:00:00.000Z,z1,p3.8xlarge,Linux/UNIX,8.0\n"
        "2020-01-01T00:00:00.000Z,z1,p3.8xlarge,Linux/UNIX,4.0\n"
        "2020-01-01T00:30:00.000Z,z2,p3.8xlarge,Linux/UNIX,99.0\n"
    )
    on_demand = tmp_path / "od.json"
    on_demand.write_text(json.dumps({"prices": {"p3.8xlarge": 12.24}}))
    series = aws_spot_prices(history, on_demand, "p3.8xlarge", "z1")
    assert (series.on_demand, series.times, series.prices) == (3.06, (0.0, 3600.0), (1.0, 2.0))
    with pytest.raises(TraceError, match=r"no spot prices for p3\.8xlarge in z9"):
        aws_spot_prices(history, on_demand, "p3.8xlarge", "z9")


def test_gcp_prices_come_from_the_weekly_revisions(tmp_path: Path) -> None:
    path = tmp_path / "gcp.csv.gz"
    with gzip.open(path, "wt") as file:
        file.write("commit,date,instance,gpu_type,gpu_count,region,hour_ondemand,hour_spot\n"
                   "a,2024-01-08,a2-highgpu-2g,a100,2,r1,8.0,2.0\n"
                   "b,2024-01-01,a2-highgpu-2g,a100,2,r1,6.0,3.0\n"
                   "c,2023-01-01,a2-highgpu-2g,a100,2,r1,6.0,\n")  # fmt: skip
    series = gcp_prices(path, "a2-highgpu-2g", "r1")
    assert (series.on_demand, series.times, series.prices) == (3.5, (0.0, 604800.0), (1.5, 1.0))


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/data is not beside the repository")
def test_the_shared_traces_load() -> None:
    jobs = load_workload(SHARED / "jobs/openb/openb_pod_list_default.csv", SimMapping())
    assert len(jobs) > 5000
    assert {j.spot_eligible for j in jobs} == {True, False}
    traces = (
        "spot/gcp-a100/us-east1-b_a100_40gb_8.json",
        "spot/bamboo/p3-trace.csv",
        "spot/bamboo/a100x1-east1b.txt",
        "spot/parcae-segments/trace_hl_15_25.txt",
    )
    for trace in traces:
        capacity = load_capacity(SHARED / trace, SimMapping())
        assert len(capacity.gpus) > 10
        assert min(capacity.gpus) >= 0
