"""Budget: a dollar, energy and carbon allowance for a scope of workloads, per period."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from steward.api.quantities import PositiveDuration
from steward.api.schema import Rule, StewardModel, UniqueList
from steward.api.v1alpha1.common import (
    Conditions,
    CustomResource,
    KindInfo,
    PrinterColumn,
    ResourceAmounts,
    ScopeSelector,
)


class PeriodType(StrEnum):
    DAILY = "Daily"
    WEEKLY = "Weekly"
    MONTHLY = "Monthly"
    #: A fixed length from an anchor time; for demos and unusual billing cycles.
    CUSTOM = "Custom"


class Weekday(StrEnum):
    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    SUNDAY = "Sunday"


class Period(StewardModel):
    """When the budget resets: at ``resetTime`` in ``timeZone`` on the period's first day.

    Monthly periods start on ``resetDayOfMonth`` (1-28, so that every month has it), weekly ones on
    ``resetWeekday``; a Custom period is ``length`` long, counted from ``anchor``.
    """

    type: PeriodType = Field(default=PeriodType.MONTHLY, description="How long a period is.")
    time_zone: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        default="UTC", description="IANA time zone the period boundaries are reckoned in."
    )
    reset_time: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = Field(
        default="00:00", description="Local time of day (HH:MM) the period starts at."
    )
    reset_day_of_month: Annotated[int, Field(ge=1, le=28)] | None = Field(
        default=None, description="Monthly: day of the month the period starts (default 1)."
    )
    reset_weekday: Weekday | None = Field(
        default=None, description="Weekly: day the period starts (default Monday)."
    )
    length: PositiveDuration | None = Field(default=None, description="Custom: period length.")
    anchor: datetime | None = Field(
        default=None, description="Custom: start of one period; the others follow every length."
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.resetDayOfMonth) || self.type == 'Monthly'",
            message="resetDayOfMonth applies to Monthly periods only",
            field="resetDayOfMonth",
            holds=lambda p: p.reset_day_of_month is None or p.type == PeriodType.MONTHLY,
        ),
        Rule(
            cel="!has(self.resetWeekday) || self.type == 'Weekly'",
            message="resetWeekday applies to Weekly periods only",
            field="resetWeekday",
            holds=lambda p: p.reset_weekday is None or p.type == PeriodType.WEEKLY,
        ),
        Rule(
            cel="(self.type == 'Custom') == (has(self.length) && has(self.anchor))",
            message="length and anchor are required for Custom periods, and only for them",
            field="length",
            holds=lambda p: (
                (p.type == PeriodType.CUSTOM) == (p.length is not None and p.anchor is not None)
            ),
        ),
    )

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        # CEL cannot check this; the governor reports it as Valid=False on the object instead.
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


class BudgetLimits(ResourceAmounts):
    """The allowance per period; at least one unit must be limited."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.usd) || has(self.kwh) || has(self.kgCO2e)",
            message="set at least one of usd, kwh, kgCO2e",
            field="",
            holds=lambda lim: any(v is not None for v in (lim.usd, lim.kwh, lim.kg_co2e)),
        ),
    )


class BudgetAction(StrEnum):
    """What a threshold asks the governor to do, mildest first."""

    NOTIFY = "Notify"
    SHIFT_TO_SPOT = "ShiftToSpot"
    SCALE_INFERENCE_TO_MIN = "ScaleInferenceToMin"
    SUSPEND_LOW_PRIORITY = "SuspendLowPriority"
    BLOCK_NEW_WORK = "BlockNewWork"


class ThresholdBasis(StrEnum):
    #: Spend so far in the period.
    SPENT = "Spent"
    #: Spend forecast at the period's end.
    FORECAST = "Forecast"


class Threshold(StewardModel):
    """A rung of the ladder: at ``percent`` of a limit, do ``actions``."""

    percent: Annotated[float, Field(gt=0, le=1000)] = Field(
        description="Share of any limit (USD, kWh or kgCO2e) at which the rung applies; may "
        "exceed 100."
    )
    actions: Annotated[UniqueList[BudgetAction], Field(min_length=1, max_length=5)] = Field(
        description="What the governor does while usage is at or above percent."
    )
    basis: ThresholdBasis = Field(
        default=ThresholdBasis.SPENT,
        description="Compare percent with spend so far (Spent) or forecast at period end.",
    )


class BudgetSpec(StewardModel):
    """Who the budget covers, for how long, how much, and what happens as it is used up."""

    scope: ScopeSelector = Field(default_factory=ScopeSelector)
    period: Period = Field(default_factory=Period)
    limits: BudgetLimits
    thresholds: Annotated[list[Threshold], Field(min_length=1, max_length=10)] = Field(
        description="The ladder, in ascending percent; every rung reached applies at once."
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.thresholds.map(t, t.percent).isSorted() && "
            "self.thresholds.all(t, self.thresholds.exists_one(u, u.percent == t.percent))",
            message="thresholds must be in strictly ascending order of percent",
            field="thresholds",
            holds=lambda s: all(
                a.percent < b.percent for a, b in zip(s.thresholds, s.thresholds[1:], strict=False)
            ),
        ),
    )


class BudgetState(StrEnum):
    OK = "Ok"
    WARNING = "Warning"
    EXCEEDED = "Exceeded"


class BudgetStatus(StewardModel):
    """Where the budget stands in its current period."""

    period_start: datetime | None = None
    period_end: datetime | None = None
    spent: ResourceAmounts = Field(default_factory=ResourceAmounts)
    forecast: ResourceAmounts = Field(
        default_factory=ResourceAmounts,
        description="Forecast spend at periodEnd: spent + burnRatePerHour x hours left.",
    )
    burn_rate_per_hour: ResourceAmounts = Field(
        default_factory=ResourceAmounts,
        description="Spend per hour of the scope's work in the newest accounted window.",
    )
    accounted_until: datetime | None = Field(
        default=None, description="End of the newest window counted into spent."
    )
    uncovered_seconds: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="Seconds of this period with no complete, fresh metrics: not counted.",
    )
    utilization_percent: Annotated[float, Field(ge=0)] = Field(
        default=0, description="Highest spent/limit over the limited units, in percent."
    )
    forecast_utilization_percent: Annotated[float, Field(ge=0)] = 0
    state: BudgetState = BudgetState.OK
    active_threshold_percent: Annotated[float, Field(gt=0)] | None = None
    active_actions: UniqueList[BudgetAction] = Field(default_factory=list)
    last_sample_time: datetime | None = Field(
        default=None, description="Time of the newest metric sample the figures rest on."
    )
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    conditions: Conditions = Field(default_factory=list)


class Budget(CustomResource):
    """A spending limit in USD, kWh and kgCO2e for the workloads its scope selects, with a
    threshold ladder of actions the governor takes as the period's spend rises."""

    kind: Literal["Budget"] = "Budget"
    spec: BudgetSpec
    status: BudgetStatus | None = None

    crd: ClassVar[KindInfo] = KindInfo(
        plural="budgets",
        short_names=("bdg",),
        scope="Cluster",
        printer_columns=(
            PrinterColumn("State", "string", ".status.state"),
            PrinterColumn("Used %", "number", ".status.utilizationPercent"),
            PrinterColumn("Forecast %", "number", ".status.forecastUtilizationPercent"),
            PrinterColumn("Spent USD", "number", ".status.spent.usd"),
            PrinterColumn("Limit USD", "number", ".spec.limits.usd"),
            PrinterColumn("Period End", "date", ".status.periodEnd", priority=1),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
        ),
    )
