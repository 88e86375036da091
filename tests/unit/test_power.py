"""The GPU power curve passes through the measured points and behaves between them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steward.cost.power import CURVES, H100, curve_for


@pytest.mark.parametrize(("utilization", "watts"), [(0, 125.0), (50, 457.0), (100, 689.0)])
def test_h100_curve_passes_through_measurements(utilization: float, watts: float) -> None:
    assert H100.watts(utilization) == pytest.approx(watts)


def test_idle_without_a_process_is_the_measured_idle() -> None:
    assert H100.watts(None) == 74.0


def test_between_points_power_is_linear() -> None:
    assert H100.watts(25) == pytest.approx((125 + 457) / 2)


@given(st.floats(0, 100), st.floats(0, 100))
def test_power_rises_with_utilization(a: float, b: float) -> None:
    low, high = sorted((a, b))
    for curve in CURVES.values():
        assert curve.watts(low) <= curve.watts(high)
        assert curve.watts(None) < curve.watts(0)


def test_out_of_range_utilization_is_clamped() -> None:
    assert H100.watts(150) == H100.watts(100)
    assert H100.watts(-5) == H100.watts(0)


def test_models_match_by_dcgm_or_label_name() -> None:
    a100 = curve_for("NVIDIA-A100-SXM4-40GB")
    assert a100.model == "NVIDIA A100-SXM4-40GB"
    assert a100.watts(100) == pytest.approx(689 * 400 / 700)
    assert "not measured" in a100.source
    assert curve_for("Something Else") is H100
