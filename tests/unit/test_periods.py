"""Budget periods tile time across month ends, DST changes and time zones."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steward.api.v1alpha1.budget import Period
from steward.cost.periods import window

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/Sao_Paulo",
]
MOMENTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
RESET_TIMES = st.sampled_from(["00:00", "02:30", "06:00", "23:59"])


def periods() -> st.SearchStrategy[Period]:
    common = {"timeZone": st.sampled_from(ZONES), "resetTime": RESET_TIMES}
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("Daily"), **common}),
        st.fixed_dictionaries(
            {
                "type": st.just("Weekly"),
                **common,
                "resetWeekday": st.sampled_from(["Monday", "Sunday"]),
            }
        ),
        st.fixed_dictionaries(
            {"type": st.just("Monthly"), **common, "resetDayOfMonth": st.integers(1, 28)}
        ),
    ).map(Period.model_validate)


@given(periods(), MOMENTS)
def test_now_is_inside_its_window_and_windows_tile(period: Period, now: datetime) -> None:
    current = window(period, now)
    assert current.start <= now < current.end
    following = window(period, current.end)
    assert following.start == current.end  # no gap, no overlap
    before = window(period, current.start - timedelta(microseconds=1))
    assert before.end == current.start


@given(periods(), MOMENTS)
def test_window_lengths_are_calendar_lengths(period: Period, now: datetime) -> None:
    hours = window(period, now).length / timedelta(hours=1)
    expected = {"Daily": (22, 26), "Weekly": (166, 170), "Monthly": (27 * 24, 32 * 24)}
    low, high = expected[period.type]
    assert low <= hours <= high


def test_daily_midnight_reset_follows_berlin_through_dst() -> None:
    period = Period(type="Daily", timeZone="Europe/Berlin")
    spring = window(period, datetime(2026, 3, 29, 12, tzinfo=UTC))
    assert spring.start == datetime(2026, 3, 28, 23, tzinfo=UTC)  # 00:00 CET
    assert spring.length == timedelta(hours=23)
    autumn = window(period, datetime(2026, 10, 25, 12, tzinfo=UTC))
    assert autumn.length == timedelta(hours=25)
    summer = window(period, datetime(2026, 7, 1, 12, tzinfo=UTC))
    assert summer.start == datetime(2026, 6, 30, 22, tzinfo=UTC)  # 00:00 CEST


def test_monthly_windows_cross_month_and_year_ends() -> None:
    period = Period(type="Monthly", resetDayOfMonth=1, timeZone="America/New_York")
    december = window(period, datetime(2027, 1, 1, 3, tzinfo=UTC))  # still Dec 31 in New York
    assert december.start == datetime(2026, 12, 1, 5, tzinfo=UTC)
    assert december.end == datetime(2027, 1, 1, 5, tzinfo=UTC)
    february = window(Period(type="Monthly", resetDayOfMonth=28), datetime(2028, 3, 10, tzinfo=UTC))
    assert february.start == datetime(2028, 2, 28, tzinfo=UTC)
    assert february.end == datetime(2028, 3, 28, tzinfo=UTC)


def test_weekly_reset_on_a_weekday_and_time() -> None:
    period = Period(
        type="Weekly", resetWeekday="Monday", resetTime="06:00", timeZone="America/New_York"
    )
    # Sunday 2026-11-22 12:00 UTC is in the week that started Monday 2026-11-16 06:00 EST.
    current = window(period, datetime(2026, 11, 22, 12, tzinfo=UTC))
    assert current.start == datetime(2026, 11, 16, 11, tzinfo=UTC)
    assert current.start.astimezone(ZoneInfo("America/New_York")).weekday() == 0


def test_custom_periods_count_from_their_anchor() -> None:
    period = Period(type="Custom", length="15m", anchor=datetime(2026, 11, 22, 10, tzinfo=UTC))
    current = window(period, datetime(2026, 11, 22, 10, 47, tzinfo=UTC))
    assert current.start == datetime(2026, 11, 22, 10, 45, tzinfo=UTC)
    before_anchor = window(period, datetime(2026, 11, 22, 9, 59, tzinfo=UTC))
    assert before_anchor.start == datetime(2026, 11, 22, 9, 45, tzinfo=UTC)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window(Period(), datetime(2026, 1, 1))


def test_elapsed_fraction() -> None:
    current = window(Period(type="Daily"), datetime(2026, 1, 1, 6, tzinfo=UTC))
    assert current.elapsed_fraction(datetime(2026, 1, 1, 6, tzinfo=UTC)) == 0.25
