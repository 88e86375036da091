"""The GPU simulator: profiles, stable GPU assignment, power readings and energy integration."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from steward.cost.power import H100
from steward.devcluster.gpumetrics import GPUCollector
from steward.devcluster.gpusim import (
    PROFILE_ANNOTATION,
    SERVING_LATENCY_ANNOTATION,
    SERVING_RPS_ANNOTATION,
    EnergyMeter,
    NodeView,
    PodView,
    ServingMeter,
    assign,
    gpu_uuid,
    parse_profile,
    readings,
)

NODE = NodeView("gpu-a", 8, "NVIDIA-H100-80GB-HBM3")


def _pod(name: str, gpus: int, started: float = 0.0, profile: str | None = None) -> PodView:
    annotations = {PROFILE_ANNOTATION: profile} if profile is not None else {}
    return PodView(f"uid-{name}", "team", name, "main", NODE.name, gpus, started, annotations)


def test_constant_and_cyclic_profiles() -> None:
    assert parse_profile("85").at(1e6).utilization == 85
    cycle = parse_profile("95:9m,checkpoint:1m")
    assert cycle.at(0).utilization == 95
    assert cycle.at(8 * 60 + 59).checkpoint is False
    assert cycle.at(9 * 60 + 1).checkpoint is True
    assert cycle.at(10 * 60 + 1).utilization == 95  # the cycle repeats
    assert parse_profile(None).at(5).utilization == 100


@pytest.mark.parametrize("bad", ["150", "busy", "95:0s", "95:9x", "-1"])
def test_bad_profiles_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_profile(bad)


def test_pods_keep_their_gpus_and_new_pods_take_free_ones() -> None:
    first, second = _pod("a", 2, started=10), _pod("b", 4, started=20)
    held = assign({}, [NODE], [second, first])
    assert held == {"uid-a": ("gpu-a", (0, 1)), "uid-b": ("gpu-a", (2, 3, 4, 5))}
    # a finishes; c starts: b keeps its GPUs, c takes the lowest free ones.
    again = assign(held, [NODE], [second, _pod("c", 3, started=30)])
    assert again["uid-b"] == held["uid-b"]
    assert again["uid-c"] == ("gpu-a", (0, 1, 6))


@given(st.lists(st.integers(1, 8), max_size=12))
def test_no_gpu_is_given_twice(sizes: list[int]) -> None:
    pods = [_pod(f"p{i}", n, started=i) for i, n in enumerate(sizes)]
    taken = [i for _, indices in assign({}, [NODE], pods).values() for i in indices]
    assert len(taken) == len(set(taken))
    assert set(taken) <= set(range(NODE.gpus))


def test_readings_use_the_measured_curve_and_label_the_pod() -> None:
    pods = [_pod("train", 2, profile="50")]
    samples = readings([NODE], pods, assign({}, [NODE], pods), now=100.0)
    assert len(samples) == 8
    busy = [s for s in samples if s.pod == "train"]
    assert [s.index for s in busy] == [0, 1]
    assert busy[0].watts == pytest.approx(457.0)
    assert busy[0].namespace == "team"
    assert busy[0].model_name == "NVIDIA H100 80GB HBM3"
    idle = [s for s in samples if s.pod == ""]
    assert {s.watts for s in idle} == {H100.idle_watts}
    assert {s.fb_used_mib for s in idle} == {0.0}
    assert busy[0].uuid == gpu_uuid("gpu-a", 0) != gpu_uuid("gpu-b", 0)


def test_checkpoint_steps_draw_checkpoint_power() -> None:
    pods = [_pod("train", 1, started=0, profile="90:1m,checkpoint:1m")]
    [sample] = [s for s in readings([NODE], pods, assign({}, [NODE], pods), now=90) if s.pod]
    assert sample.watts == H100.checkpoint_watts


def test_a_bad_annotation_reads_as_full_load() -> None:
    pods = [_pod("odd", 1, profile="lots")]
    [sample] = [s for s in readings([NODE], pods, assign({}, [NODE], pods), now=1) if s.pod]
    assert sample.utilization == 100


def test_energy_integrates_power_between_samples() -> None:
    pods = [_pod("train", 1, profile="100")]
    held = assign({}, [NODE], pods)
    meter = EnergyMeter.start()
    for t in (0.0, 1.0, 3.0):
        meter.record(readings([NODE], pods, held, now=t), now=t)
    busy = gpu_uuid("gpu-a", 0)
    assert meter.millijoules[busy] == pytest.approx(689.0 * 3 * 1000)
    assert meter.millijoules[gpu_uuid("gpu-a", 7)] == pytest.approx(74.0 * 3 * 1000)


def test_serving_pods_count_requests_into_their_latency_bucket() -> None:
    meter = ServingMeter()
    fast = {SERVING_RPS_ANNOTATION: "50", SERVING_LATENCY_ANNOTATION: "40"}
    slow = {SERVING_RPS_ANNOTATION: "10", SERVING_LATENCY_ANNOTATION: "400"}
    pods = [PodView("u1", "ml", "a", "c", "n1", 1, 0.0, fast),
            PodView("u2", "ml", "b", "c", "n1", 1, 0.0, slow),
            PodView("u3", "ml", "quiet", "c", "n1", 1, 0.0, {})]  # fmt: skip
    meter.record(pods, 100.0)
    meter.record(pods, 102.0)  # 2 s: 100 fast requests, 20 slow ones
    assert meter.requests == {("ml", "a"): 100.0, ("ml", "b"): 20.0}
    assert meter.buckets[("ml", "a")][0.05] == 100.0
    assert meter.buckets[("ml", "b")][0.25] == 0.0
    assert meter.buckets[("ml", "b")][0.5] == meter.buckets[("ml", "b")][math.inf] == 20.0


def test_the_exporter_publishes_vllm_series() -> None:
    collector = GPUCollector()
    pod = PodView("u1", "ml", "a", "c", "n1", 1, 0.0,
                  {SERVING_RPS_ANNOTATION: "5", SERVING_LATENCY_ANNOTATION: "120"})  # fmt: skip
    collector.update([], 10.0, [pod])
    collector.update([], 12.0, [pod])
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert 'vllm:request_success_total{namespace="ml",pod="a"} 10.0' in text
    assert 'vllm:e2e_request_latency_seconds_bucket{le="0.1",namespace="ml",pod="a"} 0.0' in text
    assert 'vllm:e2e_request_latency_seconds_bucket{le="+Inf",namespace="ml",pod="a"} 10.0' in text
