"""Scalar types with Kubernetes-shaped wire forms: durations, money and energy amounts.

Each type is an ``Annotated`` pydantic type that carries three things together: how Python parses
it, how it is written back, and the OpenAPI schema the CRD publishes. Keeping them in one place is
what lets the apiserver and ``steward validate`` accept exactly the same inputs.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

# --- Durations ---------------------------------------------------------------------------------
# Go's time.ParseDuration units that make sense for policies; no sign, no bare numbers.
_UNITS: Final = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
}
_TERM: Final = r"([0-9]+(\.[0-9]+)?)(ms|s|m|h)"
DURATION_PATTERN: Final = rf"^({_TERM})+$"
_TERM_RE: Final = re.compile(_TERM)
_DURATION_RE: Final = re.compile(DURATION_PATTERN)


def parse_duration(value: Any) -> timedelta:
    """Parse a Go-style duration such as ``"90s"``, ``"15m"`` or ``"1h30m"``.

    A ``timedelta`` passes through unchanged. Anything else (numbers, ISO-8601, negative values)
    raises ``ValueError``, because the CRD accepts only the string form.
    """
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str) or not _DURATION_RE.match(value):
        raise ValueError(
            f"must be a duration such as '90s', '15m' or '1h30m' (units ms, s, m, h), got {value!r}"
        )
    total = timedelta()
    for number, _fraction, unit in _TERM_RE.findall(value):
        total += _UNITS[unit] * float(number)
    return total


def format_duration(value: timedelta) -> str:
    """Write a ``timedelta`` in the compact Go form that :func:`parse_duration` reads back."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    seconds, millis = divmod(millis, 1000)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{seconds}s" if seconds else "",
        f"{millis}ms" if millis else "",
    ]
    return "".join(parts)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


_DURATION_SCHEMA: Final = {"type": "string", "pattern": DURATION_PATTERN}

#: A non-negative duration written like Go's ``time.Duration`` (``"30s"``, ``"1h30m"``).
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
]

#: A duration that must be longer than zero (intervals, periods).
PositiveDuration = Annotated[
    timedelta,
    BeforeValidator(_positive),
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            **_DURATION_SCHEMA,
            # The pattern cannot say "not zero"; CEL parses Go durations natively.
            "x-kubernetes-validations": [
                {"rule": "duration(self) > duration('0s')", "message": "must be longer than zero"}
            ],
        }
    ),
]


# --- Decimal amounts ---------------------------------------------------------------------------
#: Zero, as the default of every amount.
ZERO: Final = Decimal(0)


def to_decimal(value: Any) -> Decimal:
    """Convert a JSON number or numeric string to ``Decimal`` without binary drift.

    Floats go through their shortest ``repr`` (``0.1`` becomes ``Decimal("0.1")``, not
    ``0.1000000000000000055...``). Booleans, NaN and infinities are refused: a budget of ``true``
    dollars is a typo, not a number.
    """
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float | str):
        try:
            result = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        except InvalidOperation:
            raise ValueError(f"must be a number, got {value!r}") from None
    else:
        raise ValueError(f"must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError("must be a finite number")
    return result


def decimal_to_json(value: Decimal) -> int | float:
    """A decimal amount as a JSON number: whole amounts as integers, others as floats."""
    # The CRD publishes amounts as JSON numbers; whole amounts stay integers so YAML stays tidy.
    return int(value) if value == value.to_integral_value() else float(value)


#: A non-negative decimal amount (USD, kWh, kgCO2e). Summed as ``Decimal``; JSON number on the wire.
NonNegativeDecimal = Annotated[
    Decimal,
    BeforeValidator(to_decimal),
    Field(ge=0),
    PlainSerializer(decimal_to_json, when_used="json"),
    WithJsonSchema({"type": "number", "minimum": 0}),
]

#: US dollars.
USD = NonNegativeDecimal
#: Kilowatt-hours.
KWh = NonNegativeDecimal
#: Kilograms of CO2-equivalent.
KgCO2e = NonNegativeDecimal

#: A share of something in percent, 0 to 100 inclusive.
Percent = Annotated[float, Field(ge=0, le=100)]
#: A fraction, 0 to 1 inclusive (accuracy, share of replicas).
Fraction = Annotated[float, Field(ge=0, le=1)]

#: A Kubernetes quantity or port: an integer or a string (``"500m"``, ``"16Gi"``).
IntOrString = Annotated[int | str, WithJsonSchema({"x-kubernetes-int-or-string": True})]
