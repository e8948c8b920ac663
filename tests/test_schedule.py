"""MediationSchedule: opening hours over real 2025/2026 dates, deadlines, the plan, 2027+, zones."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.schedule import (
    DEFAULT_FILE,
    MediationSchedule,
    PlanMode,
    ScheduleConfigError,
)
from routing.workdays import DEFAULT_FILE as CALENDAR_FILE
from routing.workdays import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
US = timedelta(microseconds=1)
CALENDAR = WorkCalendar.from_file(CALENDAR_FILE, on_missing_year=lambda year: None)
SCHEDULE = MediationSchedule(CALENDAR)
LUNCH = MediationSchedule(CALENDAR, lunch=(time(12), time(13)))
ZONES = st.sampled_from(
    [SH, timezone.utc, NEW_YORK, BERLIN, ZoneInfo("Asia/Kolkata"), ZoneInfo("Pacific/Chatham")]
)
INSTANTS = st.datetimes(
    datetime(2004, 1, 2), datetime(2028, 12, 30), timezones=ZONES, allow_imaginary=False
)


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def utc(at: datetime) -> datetime:
    """For comparing instants across zones: Python says two aware datetimes in different zones
    are never equal when one falls in a DST fold (PEP 495), even for the same instant."""
    return at.astimezone(timezone.utc)


# ------------------------------------------------------------------ configuration


def test_shipped_config_is_monday_to_friday_nine_to_five_in_shanghai() -> None:
    missing: list[int] = []
    schedule = MediationSchedule.from_file(DEFAULT_FILE, on_missing_year=missing.append)
    assert schedule.hours == (time(9), time(17))
    assert schedule.tz == SH
    assert schedule.lunch is None
    assert schedule.on_site_hours == 2
    assert schedule.calendar.years_covered[-1] == 2026
    schedule.is_open(sh(2027, 1, 4, 10))
    assert missing == [2027]  # the callback reaches the calendar the config named


def test_empty_config_takes_the_defaults() -> None:
    schedule = MediationSchedule.from_dict({}, calendar=CALENDAR)
    assert (schedule.hours, schedule.tz, schedule.lunch) == ((time(9), time(17)), SH, None)


def test_config_with_a_lunch_break(tmp_path: Path) -> None:
    path = tmp_path / "mediation.yml"
    path.write_text(
        'timezone: Asia/Shanghai\nhours: {open: "08:30", close: "17:30"}\n'
        'lunch: {start: "11:30", end: "13:00"}\non_site_hours: 1.5\n',
        encoding="utf-8",
    )
    schedule = MediationSchedule.from_file(path, calendar=CALENDAR)
    assert schedule.hours == (time(8, 30), time(17, 30))
    assert schedule.lunch == (time(11, 30), time(13))
    assert schedule.deadline_on_site(sh(2026, 3, 9, 10)) == sh(2026, 3, 9, 11, 30)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("hours: {open: '09:00', close: 17:00}", 'write the time in quotes like "17:00"'),
        ("hours: {open: '9am', close: '17:00'}", "is not a time"),
        ("hours: {open: '17:00', close: '09:00'}", "must be before close"),
        ("hours: {open: '09:00'}", "expected exactly 'open' and 'close'"),
        ("lunch: {start: '08:00', end: '09:30'}", "must lie inside"),
        ("lunch: true", "expected 'start' and 'end'"),
        ("timezone: Mars/Olympus", "unknown zone"),
        ("on_site_hours: 0", "positive number"),
        ("on_site_hours: two", "positive number"),
        ("opening: '09:00'", "unknown key 'opening'"),
        ("timezone: Asia/Shanghai\ntimezone: UTC", "duplicate key"),
    ],
)
def test_bad_config_is_refused(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "mediation.yml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ScheduleConfigError) as caught:
        MediationSchedule.from_file(path, calendar=CALENDAR)
    assert fragment in str(caught.value)


def test_config_without_a_calendar_says_so() -> None:
    with pytest.raises(ScheduleConfigError, match="calendar: name the working-day file"):
        MediationSchedule.from_dict({"timezone": "Asia/Shanghai"})


# ------------------------------------------------------------------ open or not


@pytest.mark.parametrize(
    ("at", "is_open"),
    [
        (sh(2026, 3, 9, 8, 59, 59, 999999), False),  # Monday, one microsecond early
        (sh(2026, 3, 9, 9, 0), True),  # exactly 09:00 opens
        (sh(2026, 3, 9, 12, 30), True),  # no lunch break by default
        (sh(2026, 3, 9, 16, 59, 59, 999999), True),
        (sh(2026, 3, 9, 17, 0), False),  # exactly 17:00 is closed
        (sh(2026, 3, 7, 10, 0), False),  # plain Saturday
        (sh(2026, 3, 8, 10, 0), False),  # plain Sunday
        (sh(2025, 10, 1, 10, 0), False),  # 国庆节, a Wednesday
        (sh(2025, 10, 8, 10, 0), False),  # still 国庆节, a Wednesday
        (sh(2025, 10, 9, 9, 0), True),  # first working day after it
        (sh(2025, 9, 28, 10, 0), True),  # 调休: a working Sunday
        (sh(2025, 10, 11, 9, 0), True),  # 调休: a working Saturday
        (sh(2026, 2, 14, 10, 0), True),  # 调休 Saturday before the Spring Festival
        (sh(2026, 2, 16, 10, 0), False),  # Spring Festival Monday
        (sh(2026, 2, 24, 9, 0), True),
        (sh(2026, 2, 28, 16, 59), True),  # 调休 Saturday after it
        (sh(2026, 1, 2, 10, 0), False),  # 元旦, a Friday
        (sh(2026, 1, 4, 10, 0), True),  # 调休 Sunday
    ],
)
def test_is_open_over_real_dates(at: datetime, is_open: bool) -> None:
    assert SCHEDULE.is_open(at) is is_open


def test_the_same_instant_in_another_zone_gives_the_same_answer() -> None:
    # 2026-03-09 09:00 in Shanghai is 2026-03-08 20:00 in New York, hours after its DST switch
    at = sh(2026, 3, 9, 9, 0)
    assert SCHEDULE.is_open(at.astimezone(NEW_YORK))
    assert not SCHEDULE.is_open(datetime(2026, 3, 9, 0, 59, tzinfo=timezone.utc))  # 08:59 in SH
    assert SCHEDULE.is_open(datetime(2026, 3, 9, 1, 0, tzinfo=timezone.utc))
    assert not SCHEDULE.is_open(datetime(2026, 3, 9, 9, 0, tzinfo=timezone.utc))  # 17:00 in SH
    # Friday 20:00 UTC is Saturday 04:00 in Shanghai: the Shanghai date decides
    assert SCHEDULE.next_open(datetime(2026, 3, 6, 20, 0, tzinfo=timezone.utc)) == sh(2026, 3, 9, 9)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (sh(2026, 3, 9, 10, 15), sh(2026, 3, 9, 10, 15)),  # open: now
        (sh(2026, 3, 9, 7, 0), sh(2026, 3, 9, 9, 0)),
        (sh(2026, 3, 9, 17, 0), sh(2026, 3, 10, 9, 0)),
        (sh(2026, 3, 6, 17, 0), sh(2026, 3, 9, 9, 0)),  # Friday evening → Monday
        (sh(2025, 9, 26, 18, 0), sh(2025, 9, 28, 9, 0)),  # Friday → the working Sunday
        (sh(2025, 9, 30, 17, 0), sh(2025, 10, 9, 9, 0)),  # over National Day
        (sh(2026, 2, 13, 17, 30), sh(2026, 2, 14, 9, 0)),  # Friday → 调休 Saturday
        (sh(2026, 2, 14, 17, 0), sh(2026, 2, 24, 9, 0)),  # over the Spring Festival
        (sh(2025, 12, 31, 17, 0), sh(2026, 1, 4, 9, 0)),  # over 元旦 to the working Sunday
        (sh(2026, 12, 31, 17, 0), sh(2027, 1, 1, 9, 0)),  # into 2027: Mon–Fri fallback
    ],
)
def test_next_open_over_real_dates(at: datetime, expected: datetime) -> None:
    got = SCHEDULE.next_open(at)
    assert got == expected
    assert got.tzinfo == SH


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (sh(2026, 3, 9, 8, 0), sh(2026, 3, 9, 9, 0)),  # before today's opening: today's
        (sh(2026, 3, 9, 9, 0), sh(2026, 3, 10, 9, 0)),  # at the opening: the next day's
        (sh(2026, 3, 9, 10, 30), sh(2026, 3, 10, 9, 0)),  # inside hours: tomorrow
        (sh(2026, 9, 30, 10, 0), sh(2026, 10, 8, 9, 0)),  # over National Day
        (sh(2026, 2, 13, 16, 50), sh(2026, 2, 14, 9, 0)),  # Friday → 调休 Saturday
        (sh(2026, 2, 14, 10, 0), sh(2026, 2, 24, 9, 0)),  # over the Spring Festival
        (sh(2027, 1, 1, 10, 0), sh(2027, 1, 4, 9, 0)),  # 2027: Mon–Fri fallback
    ],
)
def test_next_opening_is_the_next_working_days_opening_hour(
    at: datetime, expected: datetime
) -> None:
    assert SCHEDULE.next_opening(at) == expected
    assert LUNCH.next_opening(at) == expected  # a lunch break is no new working day


@settings(max_examples=400, deadline=None)
@given(at=INSTANTS, lunch=st.booleans())
def test_next_open_is_open_not_before_and_the_first(at: datetime, lunch: bool) -> None:
    schedule = LUNCH if lunch else SCHEDULE
    found = schedule.next_open(at)
    assert schedule.is_open(found)
    assert utc(found) >= utc(at)
    assert (utc(found) == utc(at)) is schedule.is_open(at)
    if utc(found) > utc(at):  # an opening edge: closed just before it
        assert not schedule.is_open(found - US)
        assert found.astimezone(SH).time() in (time(9), time(13))
    assert utc(found) - utc(at) < timedelta(
        days=14
    )  # the longest closure (Spring Festival) is shorter


# ------------------------------------------------------------------ deadlines


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (sh(2026, 3, 9, 9, 0), sh(2026, 3, 9, 11, 0)),
        (sh(2026, 3, 9, 14, 59), sh(2026, 3, 9, 16, 59)),
        (sh(2026, 3, 9, 16, 30), sh(2026, 3, 9, 18, 30)),  # wall time: past closing
        (sh(2026, 3, 9, 16, 59, 59), sh(2026, 3, 9, 18, 59, 59)),
        (sh(2026, 2, 14, 16, 0), sh(2026, 2, 14, 18, 0)),  # on a 调休 Saturday
    ],
)
def test_on_site_deadline_counts_two_hours_of_wall_time(at: datetime, expected: datetime) -> None:
    assert SCHEDULE.deadline_on_site(at) == expected


def test_on_site_deadline_hours_can_be_given() -> None:
    assert SCHEDULE.deadline_on_site(sh(2026, 3, 9, 10), hours=0.5) == sh(2026, 3, 9, 10, 30)
    with pytest.raises(ValueError, match="positive"):
        SCHEDULE.deadline_on_site(sh(2026, 3, 9, 10), hours=0)


@pytest.mark.parametrize(
    "at", [sh(2026, 3, 9, 17, 0), sh(2026, 3, 9, 8, 0), sh(2025, 10, 1, 10, 0), sh(2026, 3, 7, 10)]
)
def test_no_on_site_clock_outside_hours(at: datetime) -> None:
    with pytest.raises(ValueError, match="outside working hours"):
        SCHEDULE.deadline_on_site(at)


@settings(max_examples=200, deadline=None)
@given(at=INSTANTS)
def test_on_site_deadline_is_exactly_two_real_hours(at: datetime) -> None:
    if not SCHEDULE.is_open(at):
        return
    deadline = SCHEDULE.deadline_on_site(at)
    assert deadline.astimezone(timezone.utc) - at.astimezone(timezone.utc) == timedelta(hours=2)
    assert deadline.tzinfo == SH


@pytest.mark.parametrize(
    ("at", "workdays", "expected"),
    [
        (sh(2026, 3, 9, 10), 1, sh(2026, 3, 10, 17)),  # the day of receipt is not counted
        (sh(2026, 3, 9, 7), 1, sh(2026, 3, 10, 17)),  # before opening: same
        (sh(2026, 3, 9, 23), 1, sh(2026, 3, 10, 17)),  # after closing: same
        (sh(2026, 3, 6, 16), 1, sh(2026, 3, 9, 17)),  # Friday → Monday
        (sh(2026, 3, 7, 10), 1, sh(2026, 3, 9, 17)),  # received on Saturday
        (sh(2025, 9, 30, 10), 1, sh(2025, 10, 9, 17)),  # over National Day
        (sh(2025, 10, 3, 10), 1, sh(2025, 10, 9, 17)),  # received during it
        (sh(2025, 9, 26, 10), 1, sh(2025, 9, 28, 17)),  # the working Sunday counts
        (sh(2026, 2, 13, 16), 3, sh(2026, 2, 25, 17)),  # Sat 14, Tue 24, Wed 25
        (sh(2026, 2, 13, 16), 15, sh(2026, 3, 12, 17)),  # Sat 14, 24-27, Sat 28, 2-6, 9-12
        (sh(2026, 12, 30, 10), 2, sh(2027, 1, 1, 17)),  # into the fallback year
    ],
)
def test_workorder_deadline(at: datetime, workdays: int, expected: datetime) -> None:
    assert SCHEDULE.workorder_deadline(at, workdays) == expected


def test_workorder_deadline_counts_from_the_shanghai_date() -> None:
    # 2026-02-13 17:00 UTC is already Saturday 2026-02-14 01:00 in Shanghai (a 调休 working day,
    # not counted as the day of receipt), so one working day later is Tuesday 24th, not the 14th.
    at = datetime(2026, 2, 13, 17, 0, tzinfo=timezone.utc)
    assert SCHEDULE.workorder_deadline(at, 1) == sh(2026, 2, 24, 17)


@pytest.mark.parametrize("workdays", [0, -1, 1.5, True])
def test_workorder_deadline_needs_a_whole_number_of_days(workdays: object) -> None:
    with pytest.raises(ValueError, match="workdays"):
        SCHEDULE.workorder_deadline(sh(2026, 3, 9, 10), workdays)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(at=INSTANTS, workdays=st.integers(1, 30))
def test_workorder_deadline_is_closing_time_of_the_nth_working_day(
    at: datetime, workdays: int
) -> None:
    deadline = SCHEDULE.workorder_deadline(at, workdays)
    received = at.astimezone(SH).date()
    assert deadline.time() == time(17) and deadline.tzinfo == SH
    assert CALENDAR.is_workday(deadline.date())
    days = [received + timedelta(days=i) for i in range(1, (deadline.date() - received).days + 1)]
    assert sum(CALENDAR.is_workday(d) for d in days) == workdays


# ------------------------------------------------------------------ the plan


def test_plan_inside_hours_assigns_now_with_the_on_site_clock() -> None:
    at = sh(2026, 3, 9, 10, 0)
    plan = SCHEDULE.plan(at)
    assert plan.mode is PlanMode.ON_DUTY
    assert plan.decided_at == plan.rota_at == at
    assert plan.on_site_by == sh(2026, 3, 9, 12, 0)
    assert plan.book_at is None
    assert "立即指派值班调解员" in plan.reason and "2小时" in plan.reason
    assert "12:00" in plan.reason


@pytest.mark.parametrize(
    ("at", "book_at", "why"),
    [
        (sh(2025, 10, 1, 10), sh(2025, 10, 9, 9), "2025-10-01为国庆节假期"),
        (sh(2025, 10, 6, 10), sh(2025, 10, 9, 9), "中秋节"),
        (sh(2026, 3, 7, 10), sh(2026, 3, 9, 9), "周六，非工作日"),
        (sh(2026, 3, 9, 17, 0), sh(2026, 3, 10, 9), "已过工作时间（17:00结束）"),
        (sh(2026, 3, 9, 8, 59), sh(2026, 3, 9, 9), "尚未到工作时间（09:00开始）"),
        (sh(2026, 2, 13, 20), sh(2026, 2, 14, 9), "已过工作时间"),
    ],
)
def test_plan_outside_hours_pushes_and_books_the_next_opening(
    at: datetime, book_at: datetime, why: str
) -> None:
    plan = SCHEDULE.plan(at)
    assert plan.mode is PlanMode.BOOKING
    assert plan.book_at == plan.rota_at == book_at
    assert plan.on_site_by is None
    assert why in plan.reason
    assert "推送至调解员手机并创建预约任务" in plan.reason
    assert f"{book_at:%Y-%m-%d}" in plan.reason


def test_lunch_break_is_closed_but_still_an_on_duty_case() -> None:
    assert LUNCH.is_open(sh(2026, 3, 9, 11, 59, 59))
    assert not LUNCH.is_open(sh(2026, 3, 9, 12, 0))
    assert not LUNCH.is_open(sh(2026, 3, 9, 12, 59, 59))
    assert LUNCH.is_open(sh(2026, 3, 9, 13, 0))
    assert LUNCH.next_open(sh(2026, 3, 9, 12, 30)) == sh(2026, 3, 9, 13, 0)

    plan = LUNCH.plan(sh(2026, 3, 9, 12, 30))
    assert plan.mode is PlanMode.ON_DUTY
    assert plan.rota_at == sh(2026, 3, 9, 13, 0)
    assert plan.on_site_by == sh(2026, 3, 9, 15, 0)
    assert "午休结束后（13:00）" in plan.reason
    with pytest.raises(ValueError):
        LUNCH.deadline_on_site(sh(2026, 3, 9, 12, 30))
    # lunchtime on a holiday is just a holiday
    assert LUNCH.plan(sh(2025, 10, 1, 12, 30)).mode is PlanMode.BOOKING


@settings(max_examples=400, deadline=None)
@given(at=INSTANTS, lunch=st.booleans())
def test_plan_invariants(at: datetime, lunch: bool) -> None:
    schedule = LUNCH if lunch else SCHEDULE
    plan = schedule.plan(at)
    assert utc(plan.decided_at) == utc(at) and plan.decided_at.tzinfo == SH
    assert plan.rota_at == schedule.next_open(at)
    assert schedule.is_open(plan.rota_at)
    if plan.mode is PlanMode.ON_DUTY:
        assert plan.book_at is None
        assert plan.on_site_by == plan.rota_at + timedelta(hours=2)
        assert utc(plan.rota_at) - utc(at) <= timedelta(hours=1)  # now, or after lunch
    else:
        assert not schedule.is_open(at)
        assert plan.on_site_by is None and plan.book_at == plan.rota_at


# ------------------------------------------------------------------ 2027: no holiday data


def test_2027_runs_monday_to_friday_with_one_warning_and_one_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    missing: list[int] = []
    schedule = MediationSchedule.from_file(DEFAULT_FILE, on_missing_year=missing.append)
    caplog.set_level(logging.WARNING, logger="routing.workdays")

    day = date(2027, 1, 1)
    while day.year == 2027:
        noon = datetime.combine(day, time(12), tzinfo=SH)
        assert schedule.is_open(noon) is (day.weekday() < 5), day
        day += timedelta(days=1)

    new_year = schedule.plan(sh(2027, 1, 1, 10))  # a Friday: really 元旦, unknown here
    assert new_year.mode is PlanMode.ON_DUTY
    assert "缺少2027年节假日数据" in new_year.reason
    weekend = schedule.plan(sh(2027, 1, 2, 10))
    assert weekend.mode is PlanMode.BOOKING and weekend.book_at == sh(2027, 1, 4, 9)
    assert "周六，非工作日" in weekend.reason and "缺少2027年节假日数据" in weekend.reason
    assert schedule.workorder_deadline(sh(2027, 1, 1, 10), 1) == sh(2027, 1, 4, 17)

    assert missing == [2027]
    warnings = [r for r in caplog.records if "NO DATA FOR 2027" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_a_plan_on_covered_days_has_no_data_note() -> None:
    assert "缺少" not in SCHEDULE.plan(sh(2026, 3, 7, 10)).reason
    assert "缺少" not in SCHEDULE.plan(sh(2026, 3, 9, 10)).reason


# ------------------------------------------------------------------ time zones


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 3, 9, 10, 0)
    for call in (
        SCHEDULE.is_open,
        SCHEDULE.next_open,
        SCHEDULE.plan,
        SCHEDULE.deadline_on_site,
        lambda at: SCHEDULE.workorder_deadline(at, 1),
    ):
        with pytest.raises(ValueError, match="naive"):
            call(naive)
    with pytest.raises(TypeError):
        SCHEDULE.is_open(date(2026, 3, 9))  # type: ignore[arg-type]


def test_shanghai_has_one_fixed_offset_so_local_hours_never_meet_a_gap_or_fold() -> None:
    day = date(2004, 1, 1)
    while day.year < 2031:
        for clock in (time(0), time(9), time(17)):
            local = datetime.combine(day, clock, tzinfo=SH)
            assert local.utcoffset() == timedelta(hours=8), local
        day += timedelta(days=1)


def test_durations_are_real_hours_even_in_a_zone_with_daylight_saving() -> None:
    # Not our configuration, but the arithmetic must not depend on it: a schedule in Berlin
    # open round the clock on Sunday 2026-03-29, when 02:00 CET jumps to 03:00 CEST.
    calendar = WorkCalendar.from_dict(
        {
            "years": {
                2026: {"holidays": {"2026-01-01": "元旦"}, "makeup_workdays": {"2026-03-29": "x"}}
            }
        }
    )
    berlin = MediationSchedule(calendar, hours=(time(0), time(23, 59)), tz="Europe/Berlin")
    at = datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN)
    deadline = berlin.deadline_on_site(at)
    assert deadline == datetime(2026, 3, 29, 4, 30, tzinfo=BERLIN)  # wall clock shows 3 hours
    assert deadline.astimezone(timezone.utc) - at.astimezone(timezone.utc) == timedelta(hours=2)
    assert SCHEDULE.deadline_on_site(sh(2026, 3, 9, 9).astimezone(NEW_YORK)) == sh(2026, 3, 9, 11)
