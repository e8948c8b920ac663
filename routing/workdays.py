"""Working days in mainland China: public holidays, 调休 make-up working days, and life past the data.

Why a data file and not `chinese_calendar` directly: the package only knows the years up to its
release (1.11 stops at 2026) and raises for any later date, and the State Council publishes each
year's holiday notice (国务院办公厅关于某年部分节假日安排的通知) only in the autumn before. A
mediation case on 2027-01-04 must still be routed. So the data lives in
`routing/calendar/cn_workdays.yml`, seeded from `chinese_calendar` by
`scripts/export-workdays.py`, and an operator adds a year by hand from the notice.

Per year the file holds:

* ``holidays`` — every day off of a holiday period (法定节假日 and the 调休 rest days around it,
  weekend days inside the period too), with the holiday's name;
* ``makeup_workdays`` — weekend days that are working days (调休上班), with the holiday they pay
  for.

A day is a working day when it is a make-up day, or Monday–Friday and not a holiday. For a year
the file does not cover, the calendar falls back to plain Monday–Friday, logs a loud warning
once per year and calls `on_missing_year(year)` (the app counts it in /metrics) — wrong on the
holidays, but never a crash and never silent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from routing.yamlfile import load_yaml

logger = logging.getLogger(__name__)

DEFAULT_FILE = Path(__file__).with_name("calendar") / "cn_workdays.yml"
FILE_KEYS = frozenset({"source", "years"})
YEAR_KEYS = frozenset({"holidays", "makeup_workdays"})
SATURDAY = 5


class CalendarError(ValueError):
    """The calendar data is inconsistent; `problems` lists every problem found, not just the first."""

    def __init__(self, origin: str, problems: Iterable[str]) -> None:
        self.origin = origin
        self.problems = list(problems)
        super().__init__(f"{origin}: " + "; ".join(self.problems))


@dataclass(frozen=True)
class YearDays:
    """One year of data: days off with the holiday's name, and make-up working days."""

    holidays: Mapping[date, str] = field(default_factory=dict)
    makeup_workdays: Mapping[date, str] = field(default_factory=dict)


def _as_date(value: Any) -> date | None:
    """A YAML date key (PyYAML already parsed it) or an ISO string; None when it is neither."""
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _consistency_problems(years: Mapping[int, YearDays]) -> list[str]:
    """What makes the data self-contradictory or obviously incomplete."""
    problems = []
    for year, days in sorted(years.items()):
        if not days.holidays:
            problems.append(f"{year}: no holidays at all (every year has 元旦 and 春节)")
        for kind, table in (("holidays", days.holidays), ("makeup_workdays", days.makeup_workdays)):
            for day, name in sorted(table.items()):
                if day.year != year:
                    problems.append(f"{year}.{kind}: {day} belongs to {day.year}")
                if not isinstance(name, str) or not name.strip():
                    problems.append(f"{year}.{kind}: {day} needs a holiday name")
        for day in sorted(set(days.holidays) & set(days.makeup_workdays)):
            problems.append(f"{year}: {day} is both a holiday and a make-up working day")
        for day in sorted(days.makeup_workdays):
            if day.weekday() < SATURDAY:
                problems.append(
                    f"{year}.makeup_workdays: {day} is a {day:%A}, already a working day"
                )
    return problems


class WorkCalendar:
    """Is a date a working day in mainland China, and which working day is N days on.

    Dates only: the caller turns an instant into a local date in the right time zone first
    (`MediationSchedule` does it in Asia/Shanghai), which is why a `datetime` is refused.
    """

    def __init__(
        self,
        years: Mapping[int, YearDays],
        *,
        on_missing_year: Callable[[int], None] | None = None,
        origin: str = "<calendar>",
    ) -> None:
        problems = _consistency_problems(years)
        if problems:
            raise CalendarError(origin, problems)
        self.origin = origin
        self._years = dict(years)
        self._holidays = {d: n for y in years.values() for d, n in y.holidays.items()}
        self._makeup = {d: n for y in years.values() for d, n in y.makeup_workdays.items()}
        self._on_missing_year = on_missing_year
        self._warned: set[int] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_file(
        cls,
        path: Path | str = DEFAULT_FILE,
        *,
        on_missing_year: Callable[[int], None] | None = None,
    ) -> WorkCalendar:
        """Load and check the operator's file (YAML; JSON is valid YAML too)."""
        try:
            data = load_yaml(path)
        except yaml.YAMLError as exc:
            raise CalendarError(str(path), [f"not valid YAML: {exc}"]) from exc
        return cls.from_dict(data, on_missing_year=on_missing_year, origin=str(path))

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        on_missing_year: Callable[[int], None] | None = None,
        origin: str = "<dict>",
    ) -> WorkCalendar:
        """Parse the file's structure, reporting every problem at once."""
        if not isinstance(data, Mapping):
            raise CalendarError(origin, ["the file must be a mapping with a 'years' key"])
        problems = [f"unknown key {key!r}" for key in data if key not in FILE_KEYS]
        raw_years = data.get("years")
        if not isinstance(raw_years, Mapping) or not raw_years:
            problems.append("'years' must map each year to its holidays and makeup_workdays")
            raw_years = {}
        years: dict[int, YearDays] = {}
        for year, body in raw_years.items():
            if not isinstance(year, int) or isinstance(year, bool):
                problems.append(f"year {year!r} is not a number")
                continue
            if not isinstance(body, Mapping):
                problems.append(f"{year}: expected 'holidays' and 'makeup_workdays'")
                continue
            problems += [f"{year}: unknown key {key!r}" for key in body if key not in YEAR_KEYS]
            tables: dict[str, dict[date, str]] = {}
            for kind in sorted(YEAR_KEYS):
                raw = body.get(kind) or {}
                if not isinstance(raw, Mapping):
                    problems.append(f"{year}.{kind}: expected a mapping of date: name")
                    raw = {}
                tables[kind] = {}
                for key, name in raw.items():
                    day = _as_date(key)
                    if day is None:
                        problems.append(f"{year}.{kind}: {key!r} is not a date (YYYY-MM-DD)")
                    else:
                        tables[kind][day] = name
            years[year] = YearDays(tables["holidays"], tables["makeup_workdays"])
        problems += _consistency_problems(years)
        if problems:
            raise CalendarError(origin, problems)
        return cls(years, on_missing_year=on_missing_year, origin=origin)

    @property
    def years_covered(self) -> tuple[int, ...]:
        """The years with real holiday data, ascending."""
        return tuple(sorted(self._years))

    def covers(self, year: int) -> bool:
        return year in self._years

    def year_days(self, year: int) -> YearDays:
        """The data for one covered year (KeyError otherwise); for tools that rewrite the file."""
        return self._years[year]

    def _check_year(self, day: date) -> bool:
        """True when `day`'s year has data; otherwise warn (once per year) and report it."""
        if isinstance(day, datetime) or not isinstance(day, date):
            raise TypeError(
                f"expected a date, got {type(day).__name__}: convert an instant to a local date first"
            )
        if day.year in self._years:
            return True
        with self._lock:
            first_time = day.year not in self._warned
            self._warned.add(day.year)
        if first_time:
            logger.warning(
                "WORK CALENDAR HAS NO DATA FOR %d: treating Monday-Friday as working days and "
                "ignoring holidays and 调休. Add %d to %s from the State Council holiday notice.",
                day.year,
                day.year,
                self.origin,
            )
            if self._on_missing_year is not None:
                try:
                    self._on_missing_year(day.year)
                except Exception:  # a metrics hiccup must not stop a mediation handoff
                    logger.exception("on_missing_year(%d) failed", day.year)
        return False

    def is_workday(self, day: date) -> bool:
        """A make-up day, or Monday–Friday that is not a holiday (plain Monday–Friday past the data)."""
        if not self._check_year(day):
            return day.weekday() < SATURDAY
        if day in self._makeup:
            return True
        return day.weekday() < SATURDAY and day not in self._holidays

    def holiday_name(self, day: date) -> str | None:
        """The holiday a day off belongs to (春节, 国庆节 …); None for other days and unknown years."""
        if not self._check_year(day):
            return None
        return self._holidays.get(day)

    def makeup_for(self, day: date) -> str | None:
        """For a 调休 make-up working day, the holiday it pays for; None otherwise."""
        if not self._check_year(day):
            return None
        return self._makeup.get(day)

    def add_workdays(self, day: date, n: int) -> date:
        """The n-th working day after `day` (before it when n < 0); `day` itself when n == 0.

        `day` is never counted, like a legal time limit (民法典 第二百零一条: 开始的当日不计入):
        a work order received on Friday with 1 working day is due on Monday.
        """
        if isinstance(day, datetime) or not isinstance(day, date):
            raise TypeError(f"expected a date, got {type(day).__name__}")
        step = timedelta(days=1 if n >= 0 else -1)
        left = abs(n)
        while left:
            day += step
            if self.is_workday(day):
                left -= 1
        return day

    def __repr__(self) -> str:
        covered = self.years_covered
        span = f"{covered[0]}-{covered[-1]}" if covered else "none"
        return f"WorkCalendar({self.origin!r}, years={span})"
