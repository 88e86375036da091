"""The promotion gate and the choice among variants: pure, no torch.

A variant passes when its accuracy drop is within ``maxAccuracyDrop`` (measured on at least
``minSamples`` samples), its p95 latency is at most ``maxLatencyRatio`` times the original's,
and it measured at all. Among passing variants the chosen one minimises

    J = alpha x accuracy_drop + beta x cost_per_1k_requests_usd

(ties: smaller, then name). Without a passing variant nothing is chosen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from steward.api.v1alpha1.compressionjob import Gate

#: z for a two-sided 95 % interval.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Measurement:
    """What one model (the original or a variant) measured on the target hardware."""

    name: str
    method: str | None
    size_bytes: int
    parameters: int
    latency_p50_ms: float
    latency_p95_ms: float
    throughput_per_s: float
    correct: int
    samples: int
    cost_per_1k_requests_usd: float | None = None
    skipped: str | None = None
    #: Latency of the compiled model (True), of the eager one after compiling failed (False),
    #: or compiling was not asked for (None).
    compiled: bool | None = None
    #: (p50, p95) ms at every batch size measured; the ``latency_*`` fields are the largest's.
    latency_by_batch: Mapping[int, tuple[float, float]] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples if self.samples else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """Wilson score 95 % interval of the accuracy."""
        return wilson(self.correct, self.samples)


@dataclass(frozen=True)
class Verdict:
    """A variant's measurement, its drop against the original, and the gate's verdict."""

    measurement: Measurement
    accuracy_drop: float
    objective: float | None
    passed: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)


def wilson(correct: int, samples: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``correct / samples``."""
    if samples == 0:
        return 0.0, 1.0
    p = correct / samples
    denominator = 1 + z * z / samples
    centre = (p + z * z / (2 * samples)) / denominator
    half = z * math.sqrt(p * (1 - p) / samples + z * z / (4 * samples * samples)) / denominator
    return max(centre - half, 0.0), min(centre + half, 1.0)


def cost_per_1k_requests(usd_per_hour: float, throughput_per_s: float) -> float | None:
    """USD for 1000 requests at a measured throughput on hardware costing ``usd_per_hour``."""
    if throughput_per_s <= 0:
        return None
    return usd_per_hour / (throughput_per_s * 3600) * 1000


def judge(
    original: Measurement, variants: Sequence[Measurement], gate: Gate, min_samples: int
) -> tuple[list[Verdict], Verdict | None]:
    """Every variant's verdict, and the chosen one (``None`` when none passed)."""
    verdicts = [_verdict(original, v, gate, min_samples) for v in variants]
    passing = [v for v in verdicts if v.passed]
    chosen = min(
        passing,
        key=lambda v: (v.objective, v.measurement.size_bytes, v.measurement.name),
        default=None,
    )
    return verdicts, chosen


def _verdict(original: Measurement, variant: Measurement, gate: Gate, min_samples: int) -> Verdict:
    drop = original.accuracy - variant.accuracy
    if variant.skipped is not None:
        return Verdict(variant, drop, None, False, (f"skipped: {variant.skipped}",))
    reasons = []
    if variant.samples < min_samples:
        reasons.append(f"{variant.samples} evaluation samples < minSamples {min_samples}")
    if drop > gate.max_accuracy_drop + 1e-12:
        reasons.append(
            f"accuracy {variant.accuracy:.4f} vs {original.accuracy:.4f}: drop {drop:.4f} > "
            f"maxAccuracyDrop {gate.max_accuracy_drop}"
        )
    ratio = variant.latency_p95_ms / original.latency_p95_ms if original.latency_p95_ms else 0.0
    if ratio > gate.max_latency_ratio + 1e-12:
        reasons.append(
            f"p95 latency {variant.latency_p95_ms:.3f} ms is {ratio:.2f}x the original's "
            f"{original.latency_p95_ms:.3f} ms > maxLatencyRatio {gate.max_latency_ratio}"
        )
    cost = variant.cost_per_1k_requests_usd or 0.0
    objective = gate.weights.alpha * drop + gate.weights.beta * cost
    return Verdict(variant, drop, objective, not reasons, tuple(reasons))


def with_cost(measurement: Measurement, usd_per_hour: float) -> Measurement:
    """The measurement with its cost per 1000 requests at ``usd_per_hour``."""
    return replace(
        measurement,
        cost_per_1k_requests_usd=cost_per_1k_requests(usd_per_hour, measurement.throughput_per_s),
    )
