"""What each simulated GPU is doing: utilisation profiles, GPU assignment, power and energy.

Pure: the exporter (``gpumetrics``) feeds it views of nodes and pods and a clock, and publishes
what it returns. A pod's profile is its ``steward.ai/gpu-profile`` annotation:

- ``"85"``: 85 % utilisation for as long as it runs;
- ``"95:9m,checkpoint:1m"``: a cycle of steps, each ``<utilisation|checkpoint>:<duration>``,
  repeated from the pod's start (``checkpoint`` draws the measured checkpoint-copy power).

Pods without the annotation run at 100 %. A GPU without a pod idles at the measured idle power.

A serving pod may also say what it serves: ``steward.ai/serving-rps`` requests per second, each
taking ``steward.ai/serving-latency-ms``; :class:`ServingMeter` turns that into vLLM's request
counter and latency histogram.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from steward.api.quantities import parse_duration
from steward.cost.power import curve_for

PROFILE_ANNOTATION: Final = "steward.ai/gpu-profile"
MEMORY_ANNOTATION: Final = "steward.ai/gpu-memory-mib"
SERVING_RPS_ANNOTATION: Final = "steward.ai/serving-rps"
SERVING_LATENCY_ANNOTATION: Final = "steward.ai/serving-latency-ms"
#: Bucket bounds (seconds) of the simulated request latency histogram.
LATENCY_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
#: Share of the frame buffer a pod uses when it does not say.
DEFAULT_MEMORY_SHARE: Final = 0.75
_UUID_NAMESPACE: Final = uuid.UUID("6f1c7a52-3d0e-4f55-9c55-5b7e7ad2c0de")


@dataclass(frozen=True)
class Step:
    """One step of a profile: a utilisation (or a checkpoint copy) for some seconds."""

    utilization: float
    checkpoint: bool
    seconds: float


@dataclass(frozen=True)
class Profile:
    steps: tuple[Step, ...]

    def at(self, elapsed_seconds: float) -> Step:
        """The step in force ``elapsed_seconds`` after the pod started (the cycle repeats)."""
        cycle = sum(step.seconds for step in self.steps)
        if cycle <= 0:
            return self.steps[0]
        offset = max(elapsed_seconds, 0.0) % cycle
        for step in self.steps:
            if offset < step.seconds:
                return step
            offset -= step.seconds
        return self.steps[-1]


FULL: Final = Profile((Step(100.0, False, 0.0),))


def parse_profile(text: str | None) -> Profile:
    """Parse a profile annotation; ``None`` or empty means 100 %. Raises ``ValueError``."""
    if not text or not text.strip():
        return FULL
    if ":" not in text:
        return Profile((Step(_percent(text), False, 0.0),))
    steps = []
    for part in text.split(","):
        level, _, duration = part.strip().partition(":")
        seconds = parse_duration(duration.strip()).total_seconds()
        if seconds <= 0:
            raise ValueError(f"profile step {part!r} must last longer than zero")
        checkpoint = level.strip() == "checkpoint"
        steps.append(Step(0.0 if checkpoint else _percent(level), checkpoint, seconds))
    return Profile(tuple(steps))


def _percent(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise ValueError(f"utilisation must be 0-100, got {text!r}")
    return value


@dataclass(frozen=True)
class NodeView:
    name: str
    gpus: int
    gpu_model: str


@dataclass(frozen=True)
class PodView:
    uid: str
    namespace: str
    name: str
    container: str
    node: str
    gpus: int
    started_at: float
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class GPUReading:
    """One GPU's sample, with the labels dcgm-exporter would give it."""

    node: str
    index: int
    uuid: str
    model_name: str
    utilization: float
    watts: float
    fb_used_mib: float
    namespace: str = ""
    pod: str = ""
    container: str = ""


def gpu_uuid(node: str, index: int) -> str:
    """A stable UUID per (node, GPU index), shaped like NVIDIA's."""
    return f"GPU-{uuid.uuid5(_UUID_NAMESPACE, f'{node}/{index}')}"


Assignment = dict[str, tuple[str, tuple[int, ...]]]


def assign(previous: Assignment, nodes: Iterable[NodeView], pods: Sequence[PodView]) -> Assignment:
    """Which GPU indices each running pod holds.

    A pod keeps the GPUs it held on the same node; new pods take the lowest free indices of
    their node, earliest started first. A pod never gets more GPUs than are free.
    """
    sizes = {node.name: node.gpus for node in nodes}
    result: Assignment = {}
    used: dict[str, set[int]] = {name: set() for name in sizes}
    for pod in pods:
        held = previous.get(pod.uid)
        if held is not None and held[0] == pod.node and pod.node in sizes:
            result[pod.uid] = held
            used[pod.node].update(held[1])
    for pod in sorted(pods, key=lambda p: (p.started_at, p.namespace, p.name)):
        if pod.uid in result or pod.node not in sizes:
            continue
        free = [i for i in range(sizes[pod.node]) if i not in used[pod.node]]
        indices = tuple(free[: pod.gpus])
        used[pod.node].update(indices)
        result[pod.uid] = (pod.node, indices)
    return result


def readings(
    nodes: Sequence[NodeView], pods: Sequence[PodView], assignment: Assignment, now: float
) -> list[GPUReading]:
    """A sample of every GPU of every node at time ``now`` (seconds since the epoch).

    A pod whose profile annotation does not parse is treated as running at 100 %, so one bad
    annotation cannot take the exporter down.
    """
    holders = {
        (node, index): pod
        for pod in pods
        if pod.uid in assignment
        for node, indices in [assignment[pod.uid]]
        for index in indices
    }
    samples = []
    for node in nodes:
        curve = curve_for(node.gpu_model)
        for index in range(node.gpus):
            pod = holders.get((node.name, index))
            uid = gpu_uuid(node.name, index)
            if pod is None:
                samples.append(
                    GPUReading(node.name, index, uid, curve.model, 0.0, curve.watts(None), 0.0)
                )
                continue
            try:
                profile = parse_profile(pod.annotations.get(PROFILE_ANNOTATION))
            except ValueError:
                profile = FULL
            step = profile.at(now - pod.started_at)
            watts = curve.checkpoint_watts if step.checkpoint else curve.watts(step.utilization)
            memory = float(
                pod.annotations.get(MEMORY_ANNOTATION) or curve.memory_mib * DEFAULT_MEMORY_SHARE
            )
            samples.append(
                GPUReading(
                    node.name,
                    index,
                    uid,
                    curve.model,
                    step.utilization,
                    watts,
                    min(memory, curve.memory_mib),
                    pod.namespace,
                    pod.name,
                    pod.container,
                )
            )
    return samples


@dataclass
class EnergyMeter:
    """DCGM's total-energy counter (millijoules since start) per GPU UUID.

    Each call integrates the power of the previous sample over the time since it: power is
    held constant between samples, as the exporter changes it only when it samples.
    """

    millijoules: dict[str, float]
    _last: dict[str, tuple[float, float]]

    @classmethod
    def start(cls) -> EnergyMeter:
        return cls({}, {})

    def record(self, samples: Iterable[GPUReading], now: float) -> None:
        for sample in samples:
            previous = self._last.get(sample.uuid)
            total = self.millijoules.setdefault(sample.uuid, 0.0)
            if previous is not None:
                last_time, last_watts = previous
                self.millijoules[sample.uuid] = total + last_watts * max(now - last_time, 0) * 1000
            self._last[sample.uuid] = (now, sample.watts)


@dataclass
class ServingMeter:
    """vLLM's counters per serving pod ``(namespace, name)``: requests served, and per latency
    bucket bound the requests served within it, integrated between samples from the pod's
    serving annotations (a pod without both, or with unreadable ones, serves nothing)."""

    requests: dict[tuple[str, str], float] = field(default_factory=dict)
    buckets: dict[tuple[str, str], dict[float, float]] = field(default_factory=dict)
    _last: dict[str, float] = field(default_factory=dict)

    def record(self, pods: Iterable[PodView], now: float) -> None:
        for pod in pods:
            try:
                rps = float(pod.annotations[SERVING_RPS_ANNOTATION])
                seconds = float(pod.annotations[SERVING_LATENCY_ANNOTATION]) / 1000
            except (KeyError, ValueError):
                continue
            key, last = (pod.namespace, pod.name), self._last.get(pod.uid)
            self._last[pod.uid] = now
            served = max(rps, 0.0) * max(now - last, 0.0) if last is not None else 0.0
            self.requests[key] = self.requests.get(key, 0.0) + served
            counts = self.buckets.setdefault(key, dict.fromkeys(LATENCY_BUCKETS, 0.0))
            for bound in LATENCY_BUCKETS:
                if seconds <= bound:
                    counts[bound] += served
