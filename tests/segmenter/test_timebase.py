from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from segmenter.errors import InvalidWindowError
from segmenter.timebase import Calendar, WindowSpec, sub_months


def d(text: str) -> int:
    return date.fromisoformat(text).toordinal()


@pytest.mark.parametrize(("day", "months", "expected"), [
    ("1998-08-31", 6, "1998-02-28"),
    ("2000-08-31", 6, "2000-02-29"),
    ("1998-06-30", 12, "1997-06-30"),
    ("1998-03-31", 1, "1998-02-28"),
    ("1998-01-15", 13, "1996-12-15"),
])
def test_sub_months_clamps_to_the_month_end(day, months, expected):
    assert sub_months(date.fromisoformat(day), months) == date.fromisoformat(expected)


def test_design_example_windows_as_of_1998_06_30():
    as_of = d("1998-06-30")
    assert WindowSpec(12, "m").start_day(as_of) == d("1997-07-01")
    assert WindowSpec(6, "m").start_day(as_of) == d("1997-12-31")


def test_day_windows_hold_n_days_including_today():
    assert WindowSpec.parse("365d").start_day(d("2026-12-31")) == d("2026-01-01")


@pytest.mark.parametrize("spec", ["12m", "6m", "1m", "30d", "365d"])
def test_leave_day_is_the_first_day_the_bucket_is_outside(spec):
    window = WindowSpec.parse(spec)
    for bucket in range(d("2023-01-25"), d("2023-04-05")):
        leave = window.leave_day(bucket)
        assert window.start_day(leave) > bucket
        assert window.start_day(leave - 1) <= bucket


@pytest.mark.parametrize("text", ["", "12", "0m", "12y", "m12", "-3d"])
def test_bad_window_is_refused_with_the_expected_form(text):
    with pytest.raises(InvalidWindowError, match="such as '12m' or '365d'"):
        WindowSpec.parse(text)


def test_business_day_follows_the_timezone():
    shanghai = Calendar(ZoneInfo("Asia/Shanghai"))
    late_utc = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)  # 04:00 next day in Shanghai
    assert shanghai.day(late_utc) == d("2026-03-02")
    assert Calendar(UTC).day(late_utc) == d("2026-03-01")


def test_utc_fast_path_agrees_with_astimezone():
    cal = Calendar(UTC)
    base = datetime(2025, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5)))
    for hours in range(0, 100, 7):
        t = base + timedelta(hours=hours)
        assert cal.day(t) == t.astimezone(UTC).date().toordinal()


def test_end_of_day_is_the_last_microsecond():
    cal = Calendar(ZoneInfo("Asia/Shanghai"))
    end = cal.end_of(d("2026-06-30"))
    assert cal.day(end) == d("2026-06-30")
    assert cal.day(end + timedelta(microseconds=1)) == d("2026-07-01")


def test_naive_instants_are_refused():
    with pytest.raises(ValueError, match="naive"):
        Calendar(UTC).day(datetime(2026, 1, 1))
