"""Durations and decimal amounts: parsing, writing back, and exact sums."""

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from steward.api.quantities import (
    USD,
    Duration,
    PositiveDuration,
    format_duration,
    parse_duration,
    to_decimal,
)

DURATION = TypeAdapter(Duration)
POSITIVE = TypeAdapter(PositiveDuration)
MONEY = TypeAdapter(USD)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration_reads_go_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "15", "-5m", "1d", "PT15M", "1h 30m", "m"])
def test_parse_duration_refuses_other_forms(text: str) -> None:
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration(text)


def test_numbers_are_not_durations() -> None:
    # The CRD publishes durations as strings, so Python refuses bare numbers too.
    with pytest.raises(ValidationError):
        DURATION.validate_python(300)


@given(st.integers(min_value=0, max_value=10**10))
def test_duration_round_trips_through_its_text(millis: int) -> None:
    value = timedelta(milliseconds=millis)
    assert parse_duration(format_duration(value)) == value


def test_positive_duration_refuses_zero() -> None:
    with pytest.raises(ValidationError, match="longer than zero"):
        POSITIVE.validate_python("0s")
    assert POSITIVE.validate_python("1s") == timedelta(seconds=1)


def test_duration_serialises_to_text() -> None:
    assert DURATION.dump_python(timedelta(minutes=90), mode="json") == "1h30m"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, Decimal("0.1")),
        (12.5, Decimal("12.5")),
        (5000, Decimal(5000)),
        ("19.99", Decimal("19.99")),
    ],
)
def test_to_decimal_keeps_what_was_written(value: object, expected: Decimal) -> None:
    assert to_decimal(value) == expected
    assert str(to_decimal(value)) == str(expected)


@pytest.mark.parametrize("value", [True, "NaN", "Infinity", float("inf"), "lots", None, [1]])
def test_to_decimal_refuses_non_numbers(value: object) -> None:
    with pytest.raises(ValueError, match="must be a"):
        to_decimal(value)


def test_money_refuses_negative_amounts() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        MONEY.validate_python(-0.01)


@given(st.lists(st.decimals(min_value=0, max_value=10**6, places=2), min_size=1, max_size=200))
def test_money_sums_without_float_drift(amounts: list[Decimal]) -> None:
    # What a YAML file carries as floats sums to the exact decimal total once parsed.
    parsed = [MONEY.validate_python(float(a)) for a in amounts]
    assert sum(parsed, Decimal(0)) == sum(amounts, Decimal(0))


def test_money_is_a_json_number_on_the_wire() -> None:
    assert MONEY.dump_python(Decimal("12.50"), mode="json") == 12.5
    assert MONEY.dump_python(Decimal(40000), mode="json") == 40000
    assert isinstance(MONEY.dump_python(Decimal(40000), mode="json"), int)
