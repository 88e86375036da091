"""Budget period windows: which ``[start, end)`` a moment falls in, in the budget's time zone.

Periods tile time: the end of one is the start of the next, so every moment belongs to exactly
one period and no spend is counted twice or lost at a boundary. Boundaries are wall-clock times
in the budget's IANA zone, so a daily budget resetting at 00:00 Europe/Berlin resets at local
midnight in winter and in summer; days that contain a DST change are 23 or 25 hours long.

A reset time that does not exist on a spring-forward day (02:30 when clocks jump from 02:00 to
03:00) is read as the instant it would be without the jump (Python's ``fold=0``), which falls
inside the hour after the jump; an ambiguous one on a fall-back day is its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from steward.api.v1alpha1.budget import Period, PeriodType, Weekday

_WEEKDAYS = list(Weekday)


@dataclass(frozen=True)
class Window:
    """A half-open period ``[start, end)``, both in UTC."""

    start: datetime
    end: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def elapsed_fraction(self, now: datetime) -> float:
        """How much of the window has passed at ``now`` (0 to 1)."""
        return min(max((now - self.start) / self.length, 0.0), 1.0)


def window(period: Period, now: datetime) -> Window:
    """The period that contains ``now`` (an aware datetime)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if period.type == PeriodType.CUSTOM:
        return _custom(period, now)
    zone = ZoneInfo(period.time_zone)
    hours, minutes = (int(part) for part in period.reset_time.split(":"))
    reset = time(hours, minutes)
    local_day = now.astimezone(zone).date()
    # The latest boundary at or before now: try the candidate day, step back until it fits.
    start_day = _period_start_day(period, local_day)
    while _at(start_day, reset, zone) > now:
        start_day = _period_start_day(period, start_day - timedelta(days=1))
    end_day = _next_start_day(period, start_day)
    return Window(_at(start_day, reset, zone), _at(end_day, reset, zone))


def _at(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _period_start_day(period: Period, day: date) -> date:
    """The first day of the period that contains local ``day`` (ignoring the reset time)."""
    if period.type == PeriodType.DAILY:
        return day
    if period.type == PeriodType.WEEKLY:
        target = _WEEKDAYS.index(period.reset_weekday or Weekday.MONDAY)
        return day - timedelta(days=(day.weekday() - target) % 7)
    reset_day = period.reset_day_of_month or 1
    if day.day >= reset_day:
        return day.replace(day=reset_day)
    previous_month = day.replace(day=1) - timedelta(days=1)
    return previous_month.replace(day=reset_day)


def _next_start_day(period: Period, start: date) -> date:
    if period.type == PeriodType.DAILY:
        return start + timedelta(days=1)
    if period.type == PeriodType.WEEKLY:
        return start + timedelta(days=7)
    following_month = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following_month.replace(day=start.day)


def _custom(period: Period, now: datetime) -> Window:
    if period.length is None or period.anchor is None:  # refused by validation already
        raise ValueError("a Custom period needs length and anchor")
    anchor = period.anchor if period.anchor.tzinfo else period.anchor.replace(tzinfo=UTC)
    count = (now - anchor) // period.length
    start = anchor + count * period.length
    return Window(start.astimezone(UTC), (start + period.length).astimezone(UTC))
