"""The promotion gate and the J-optimal choice, on hand-made measurements."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steward.api.v1alpha1.compressionjob import Gate
from steward.compress.gate import Measurement, cost_per_1k_requests, judge, wilson, with_cost

GATE = Gate.model_validate({"maxAccuracyDrop": 0.01, "maxLatencyRatio": 1.0,
                            "weights": {"alpha": 10.0, "beta": 1.0}})  # fmt: skip


def _m(name: str, correct: int, p95: float, *, cost: float = 1.0, samples: int = 1000,
       size: int = 100, skipped: str | None = None) -> Measurement:  # fmt: skip
    return Measurement(name, None if name == "original" else name, size, 10, p95 / 2, p95,
                       1000.0, correct, samples, cost, skipped)  # fmt: skip


ORIGINAL = _m("original", 980, 10.0, cost=2.0)


def test_the_passing_variant_with_the_smallest_objective_is_chosen() -> None:
    variants = [
        _m("int8", 975, 5.0, cost=0.9),  # drop 0.005: J = 0.05 + 0.9 = 0.95
        _m("bf16", 980, 6.0, cost=1.0),  # drop 0: J = 1.0
        _m("prune", 900, 4.0, cost=0.5),  # drop 0.08: fails
        _m("slow", 980, 12.0, cost=0.1),  # slower than the original: fails
    ]
    verdicts, chosen = judge(ORIGINAL, variants, GATE, min_samples=500)
    assert chosen is not None
    assert chosen.measurement.name == "int8"
    assert chosen.objective == pytest.approx(0.95)
    passed = {v.measurement.name: v.passed for v in verdicts}
    assert passed == {"int8": True, "bf16": True, "prune": False, "slow": False}
    prune = next(v for v in verdicts if v.measurement.name == "prune")
    assert "drop 0.0800 > maxAccuracyDrop 0.01" in prune.reasons[0]
    slow = next(v for v in verdicts if v.measurement.name == "slow")
    assert "1.20x the original's" in slow.reasons[0]


def test_too_few_samples_and_skipped_methods_fail_with_their_reason() -> None:
    verdicts, chosen = judge(
        ORIGINAL,
        [_m("tiny", 99, 5.0, samples=100), _m("fp8", 0, 0.0, samples=0, skipped="needs sm89")],
        GATE,
        min_samples=500,
    )
    assert chosen is None
    assert verdicts[0].reasons == ("100 evaluation samples < minSamples 500",)
    assert verdicts[1].reasons == ("skipped: needs sm89",)


def test_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson(81, 100)  # a standard worked example: 0.7222 - 0.8749
    assert (round(low, 4), round(high, 4)) == (0.7222, 0.8749)
    assert wilson(0, 0) == (0.0, 1.0)


def test_cost_per_request_follows_price_and_throughput() -> None:
    assert cost_per_1k_requests(3.6, 1000.0) == pytest.approx(0.001)
    assert cost_per_1k_requests(3.6, 0.0) is None
    assert with_cost(ORIGINAL, 3.6).cost_per_1k_requests_usd == pytest.approx(0.001)


@given(st.lists(st.tuples(st.integers(0, 1000), st.floats(0.1, 20.0), st.floats(0, 5)),
                min_size=1, max_size=8))  # fmt: skip
def test_the_chosen_variant_passes_and_no_passing_one_has_a_lower_objective(
    specs: list[tuple[int, float, float]],
) -> None:
    variants = [_m(f"v{i}", c, p95, cost=cost) for i, (c, p95, cost) in enumerate(specs)]
    verdicts, chosen = judge(ORIGINAL, variants, GATE, min_samples=500)
    passing = [v for v in verdicts if v.passed]
    if chosen is None:
        assert not passing
        return
    assert chosen.passed
    assert chosen.measurement.accuracy >= ORIGINAL.accuracy - GATE.max_accuracy_drop - 1e-12
    assert chosen.measurement.latency_p95_ms <= ORIGINAL.latency_p95_ms
    assert all(chosen.objective <= v.objective for v in passing)  # type: ignore[operator]
