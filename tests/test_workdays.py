"""The working-day calendar: the committed file, known 2025/2026 dates, add_workdays, 2027+."""

from __future__ import annotations

import importlib.util
import logging
from datetime import date, datetime, timedelta
from pathlib import Path

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.workdays import DEFAULT_FILE, CalendarError, WorkCalendar

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar.from_file(DEFAULT_FILE)


QUIET = WorkCalendar.from_file(DEFAULT_FILE, on_missing_year=lambda year: None)


def _export_script():
    spec = importlib.util.spec_from_file_location(
        "export_workdays", ROOT / "scripts/export-workdays.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _days(start: date, end: date):
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


# ------------------------------------------------------------------ the committed file


def test_file_covers_what_the_package_covers(cal: WorkCalendar) -> None:
    package_years = sorted({d.year for d in chinese_calendar.holidays})
    assert cal.years_covered == tuple(package_years) == tuple(range(2004, 2027))
    assert not cal.covers(2027)


def test_file_agrees_with_chinese_calendar_on_every_day(cal: WorkCalendar) -> None:
    names = {"清明": "清明节", "端午": "端午节", "中秋": "中秋节"}
    for day in _days(date(2004, 1, 1), date(2026, 12, 31)):
        assert cal.is_workday(day) == chinese_calendar.is_workday(day), day
        on_holiday, english = chinese_calendar.get_holiday_detail(day)
        if english and on_holiday:
            chinese = chinese_calendar.Holiday(english).chinese
            assert cal.holiday_name(day) == names.get(chinese, chinese), day
        else:
            assert cal.holiday_name(day) is None, day


def test_committed_file_is_what_the_script_writes(capsys: pytest.CaptureFixture[str]) -> None:
    assert _export_script().main(["--check"]) == 0, capsys.readouterr().err


def test_regenerating_keeps_years_an_operator_added(tmp_path: Path) -> None:
    out = tmp_path / "cn_workdays.yml"
    script = _export_script()
    assert script.main(["--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    out.write_text(text + "  2031:\n    holidays:\n      2031-01-01: 元旦\n", encoding="utf-8")
    assert script.main(["--check", "--out", str(out)]) == 1  # differs from the package alone
    assert script.main(["--out", str(out)]) == 0
    again = WorkCalendar.from_file(out)
    assert again.covers(2031) and again.holiday_name(date(2031, 1, 1)) == "元旦"
    assert again.years_covered[-2:] == (2026, 2031)


# ------------------------------------------------------------------ known dates (from the package data)


@pytest.mark.parametrize(
    ("day", "weekday", "workday", "holiday", "makeup_for"),
    [
        # 2025 National Day + Mid-autumn: 10-01..10-08 off, Sun 09-28 and Sat 10-11 worked
        (date(2025, 9, 28), 6, True, None, "国庆节"),
        (date(2025, 9, 30), 1, True, None, None),
        (date(2025, 10, 1), 2, False, "国庆节", None),
        (date(2025, 10, 4), 5, False, "国庆节", None),
        (date(2025, 10, 6), 0, False, "中秋节", None),
        (date(2025, 10, 8), 2, False, "国庆节", None),
        (date(2025, 10, 9), 3, True, None, None),
        (date(2025, 10, 11), 5, True, None, "国庆节"),
        # 2025 Spring Festival: 01-28..02-04 off, Sun 01-26 and Sat 02-08 worked
        (date(2025, 1, 26), 6, True, None, "春节"),
        (date(2025, 1, 28), 1, False, "春节", None),
        (date(2025, 2, 4), 1, False, "春节", None),
        (date(2025, 2, 8), 5, True, None, "春节"),
        (date(2025, 4, 27), 6, True, None, "劳动节"),
        (date(2025, 5, 5), 0, False, "劳动节", None),
        # 2026 New Year: 01-01..01-03 off, Sun 01-04 worked
        (date(2026, 1, 1), 3, False, "元旦", None),
        (date(2026, 1, 2), 4, False, "元旦", None),
        (date(2026, 1, 4), 6, True, None, "元旦"),
        # 2026 Spring Festival: Sat 02-14 worked, 02-15..02-23 off, Sat 02-28 worked
        (date(2026, 2, 13), 4, True, None, None),
        (date(2026, 2, 14), 5, True, None, "春节"),
        (date(2026, 2, 16), 0, False, "春节", None),
        (date(2026, 2, 23), 0, False, "春节", None),
        (date(2026, 2, 24), 1, True, None, None),
        (date(2026, 2, 28), 5, True, None, "春节"),
        # 2026 Labour Day and National Day
        (date(2026, 5, 5), 1, False, "劳动节", None),
        (date(2026, 5, 9), 5, True, None, "劳动节"),
        (date(2026, 9, 20), 6, True, None, "国庆节"),
        (date(2026, 9, 25), 4, False, "中秋节", None),
        (date(2026, 10, 7), 2, False, "国庆节", None),
        (date(2026, 10, 10), 5, True, None, "国庆节"),
        # plain days
        (date(2026, 3, 7), 5, False, None, None),
        (date(2026, 3, 9), 0, True, None, None),
    ],
)
def test_known_days(
    cal: WorkCalendar,
    day: date,
    weekday: int,
    workday: bool,
    holiday: str | None,
    makeup_for: str | None,
) -> None:
    assert day.weekday() == weekday
    assert cal.is_workday(day) is workday
    assert cal.holiday_name(day) == holiday
    assert cal.makeup_for(day) == makeup_for
    assert chinese_calendar.is_workday(day) is workday


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2025, 9, 30), 1, date(2025, 10, 9)),  # over National Day
        (date(2025, 9, 26), 1, date(2025, 9, 28)),  # Friday → the make-up Sunday
        (date(2025, 9, 26), 2, date(2025, 9, 29)),
        (date(2026, 2, 13), 1, date(2026, 2, 14)),  # Friday → the make-up Saturday
        (date(2026, 2, 14), 1, date(2026, 2, 24)),  # over the 9-day Spring Festival
        (date(2026, 2, 14), 5, date(2026, 2, 28)),  # 24 25 26 27, then make-up Sat 28
        (date(2026, 2, 15), 0, date(2026, 2, 15)),  # n == 0: the day itself, even a holiday
        (date(2025, 10, 9), -1, date(2025, 9, 30)),
        (date(2026, 2, 24), -1, date(2026, 2, 14)),
        (date(2026, 3, 7), 1, date(2026, 3, 9)),  # Saturday → Monday
    ],
)
def test_add_workdays_known(cal: WorkCalendar, start: date, n: int, expected: date) -> None:
    assert cal.add_workdays(start, n) == expected


def _workdays_between(cal: WorkCalendar, start: date, end: date) -> int:
    """Working days in (start, end] (or (end, start] counted negative)."""
    if end >= start:
        return sum(cal.is_workday(d) for d in _days(start + timedelta(days=1), end))
    return -sum(cal.is_workday(d) for d in _days(end, start - timedelta(days=1)))


@settings(max_examples=300, deadline=None)
@given(start=st.dates(date(2004, 1, 1), date(2029, 12, 31)), n=st.integers(-60, 60))
def test_add_workdays_lands_on_a_workday_and_counts_exactly_n(start: date, n: int) -> None:
    cal = QUIET
    end = cal.add_workdays(start, n)
    if n == 0:
        assert end == start
        return
    assert cal.is_workday(end)
    assert (end > start) == (n > 0)
    if n > 0:
        assert _workdays_between(cal, start, end) == n
    else:  # backwards: n working days in [end, start)
        assert sum(cal.is_workday(d) for d in _days(end, start - timedelta(days=1))) == -n


# ------------------------------------------------------------------ 2027 onwards: no data


def test_chinese_calendar_itself_stops_at_2026() -> None:
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 1, 1))


def test_2027_falls_back_to_monday_to_friday_warns_once_and_reports(
    caplog: pytest.LogCaptureFixture,
) -> None:
    missing: list[int] = []
    cal = WorkCalendar.from_file(DEFAULT_FILE, on_missing_year=missing.append)
    caplog.set_level(logging.WARNING, logger="routing.workdays")

    for day in _days(date(2027, 1, 1), date(2027, 12, 31)):
        assert cal.is_workday(day) is (day.weekday() < 5), day
        assert cal.holiday_name(day) is None
        assert cal.makeup_for(day) is None
    assert cal.add_workdays(date(2026, 12, 31), 1) == date(2027, 1, 1)  # a Friday
    assert cal.add_workdays(date(2027, 1, 1), 1) == date(2027, 1, 4)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert missing == [2027]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "NO DATA FOR 2027" in message and "Monday-Friday" in message
    assert str(DEFAULT_FILE) in message  # tells the operator what to edit

    assert cal.is_workday(date(2028, 1, 3))  # another missing year: reported once more
    assert missing == [2027, 2028]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    assert cal.is_workday(date(2026, 10, 8))  # covered years do not report
    assert missing == [2027, 2028]


def test_each_calendar_reports_for_itself() -> None:
    first: list[int] = []
    second: list[int] = []
    WorkCalendar.from_file(DEFAULT_FILE, on_missing_year=first.append).is_workday(date(2027, 3, 1))
    WorkCalendar.from_file(DEFAULT_FILE, on_missing_year=second.append).is_workday(date(2027, 3, 1))
    assert first == second == [2027]


def test_a_failing_callback_does_not_break_the_calendar(caplog: pytest.LogCaptureFixture) -> None:
    def broken(year: int) -> None:
        raise RuntimeError("metrics down")

    cal = WorkCalendar.from_file(DEFAULT_FILE, on_missing_year=broken)
    with caplog.at_level(logging.WARNING, logger="routing.workdays"):
        assert cal.is_workday(date(2027, 1, 4))
    assert any("on_missing_year(2027) failed" in r.getMessage() for r in caplog.records)


def test_years_before_the_data_fall_back_too() -> None:
    missing: list[int] = []
    cal = WorkCalendar.from_file(DEFAULT_FILE, on_missing_year=missing.append)
    assert cal.is_workday(date(2003, 10, 1))  # a Wednesday; real data would say 国庆节
    assert missing == [2003]


def test_an_operator_added_year_is_used() -> None:
    missing: list[int] = []
    cal = WorkCalendar.from_dict(
        {"years": {2031: {"holidays": {"2031-01-01": "元旦"}, "makeup_workdays": {}}}},
        on_missing_year=missing.append,
    )
    assert not cal.is_workday(date(2031, 1, 1)) and cal.is_workday(date(2031, 1, 2))
    assert missing == []


# ------------------------------------------------------------------ checking the file


def _year(holidays: dict | None = None, makeup: dict | None = None) -> dict:
    return {
        "holidays": {date(2025, 10, 1): "国庆节"} if holidays is None else holidays,
        "makeup_workdays": makeup or {},
    }


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (
            {"years": {2025: _year({date(2025, 9, 28): "国庆节"}, {date(2025, 9, 28): "国庆节"})}},
            "both a holiday and a make-up working day",
        ),
        ({"years": {2025: _year()}, "extra": 1}, "unknown key 'extra'"),
        ({"years": {2025: {**_year(), "in_lieu": {}}}}, "2025: unknown key 'in_lieu'"),
        ({"years": {2025: _year(makeup={date(2025, 9, 29): "国庆节"})}}, "is a Monday"),
        ({"years": {2025: _year({date(2026, 10, 1): "国庆节"})}}, "belongs to 2026"),
        ({"years": {2025: _year({"10月1日": "国庆节"})}}, "is not a date"),
        ({"years": {2025: _year({date(2025, 10, 1): ""})}}, "needs a holiday name"),
        ({"years": {2025: _year({})}}, "no holidays at all"),
        ({"years": {"二〇二五": _year()}}, "is not a number"),
        ({"years": {}}, "'years' must map"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_inconsistent_data_is_refused(data: object, fragment: str) -> None:
    with pytest.raises(CalendarError) as caught:
        WorkCalendar.from_dict(data)
    assert fragment in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "years": {2025: _year({date(2025, 9, 28): "x"}, {date(2025, 9, 28): "x"})},
        "oops": 1,
    }
    with pytest.raises(CalendarError) as caught:
        WorkCalendar.from_dict(data, origin="cal.yml")
    assert len(caught.value.problems) == 2
    assert str(caught.value).startswith("cal.yml: ")


def test_a_date_written_twice_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cal.yml"
    path.write_text(
        "years:\n  2025:\n    holidays:\n      2025-10-01: 国庆节\n      2025-10-01: 中秋节\n",
        encoding="utf-8",
    )
    with pytest.raises(CalendarError, match="duplicate key"):
        WorkCalendar.from_file(path)


def test_a_datetime_is_refused_because_its_local_date_is_ambiguous(cal: WorkCalendar) -> None:
    with pytest.raises(TypeError, match="local date"):
        cal.is_workday(datetime(2025, 10, 1, 1, 0))
    with pytest.raises(TypeError):
        cal.add_workdays(datetime(2025, 10, 1, 1, 0), 1)
