"""When mediators work, and what that means for a case: assign the duty mediator now or book a time.

From the source material: disputes handed to the city justice bureau's people's mediators get
"a mediator on site within 2 hours" during Monday–Friday working hours; outside them the case is
pushed to a mediator's phone and the mediator contacts the reporter to book a time.
`MediationSchedule.plan` makes that decision; it is pure (no clock, no I/O): the caller passes
the instant and stores what comes back.

Readings the source leaves open, decided here:

* **Working days** are the `WorkCalendar`'s: 调休 make-up weekends are open, public holidays on a
  weekday are closed. Hours are ``[open, close)``: 09:00:00 is open, 17:00:00 is closed.
* **The on-site clock counts wall time** from the assignment: assigned at 16:30, on site by
  18:30. "On site within 2 hours" is a promise to a citizen with a live dispute; pausing the
  clock at closing time would let a 16:59 case wait until the next morning, which is the booking
  path, not the on-site one. The clock only starts inside hours — outside them there is no
  on-site promise (`deadline_on_site` refuses).
* **A lunch break** (optional, off by default) closes the office, but a case arriving during it
  is still a working-hours case: the duty mediator is assigned when the break ends and the clock
  starts then, rather than the case falling to the slower booking path for an hour's gap.
* **Work-order time limits** (12345 办理时限, N working days) do not count the day of receipt
  (民法典 第二百零一条: 开始的当日不计入) and end at closing time of the last working day
  (第二百零三条: 有业务时间的，停止业务活动的时间为截止时间).

Time zones: every instant must be aware (a naive datetime is refused: its meaning depends on the
server's zone). Local dates and hours are read in the configured zone (Asia/Shanghai, which has
had no daylight saving since 1991); durations are added to the absolute instant, so they are
right even for a zone with daylight saving.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from routing.workdays import WorkCalendar
from routing.yamlfile import load_yaml

DEFAULT_FILE = Path(__file__).with_name("mediation.yml")
CONFIG_KEYS = frozenset({"timezone", "calendar", "hours", "lunch", "on_site_hours"})
DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_HOURS = (time(9), time(17))
DEFAULT_ON_SITE_HOURS = 2.0
MAX_CLOSED_DAYS = 366  # no real calendar closes for longer; a guard against a broken one
WEEKDAY_NAMES = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class ScheduleConfigError(ValueError):
    """mediation.yml is wrong; `problems` lists everything found."""

    def __init__(self, origin: str, problems: list[str]) -> None:
        self.origin = origin
        self.problems = problems
        super().__init__(f"{origin}: " + "; ".join(problems))


class PlanMode(str, Enum):
    """Assign the district's duty mediator (on-site SLA), or push and book a time."""

    ON_DUTY = "on_duty"
    BOOKING = "booking"


@dataclass(frozen=True)
class Plan:
    """What to do with a mediation case received at `decided_at`.

    `rota_at` is the instant whose duty rota picks the mediator
    (`Roster.next_candidate(district, plan.rota_at, tried)`): now, the end of a lunch break, or
    for a booking the next opening — the mediator who will be on duty then gets the push now.
    ON_DUTY: assign at `rota_at`, on site by `on_site_by`. BOOKING: push now, and a booking task
    due at `book_at` (the mediator calls the reporter to book a time). `reason` is for people
    (call-takers, operators), in Chinese.
    """

    mode: PlanMode
    decided_at: datetime
    rota_at: datetime
    on_site_by: datetime | None
    book_at: datetime | None
    reason: str


def _require_aware(at: datetime) -> None:
    if not isinstance(at, datetime):
        raise TypeError(f"expected a datetime, got {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: pass an aware one (tzinfo set)")


def _parse_hhmm(value: Any, where: str, problems: list[str]) -> time | None:
    if isinstance(value, int) and not isinstance(value, bool):
        problems.append(f'{where}: {value} is a number, write the time in quotes like "17:00"')
        return None
    match = _HHMM.match(value) if isinstance(value, str) else None
    if not match:
        problems.append(f'{where}: {value!r} is not a time like "09:00"')
        return None
    return time(int(match[1]), int(match[2]))


def _format_local(at: datetime) -> str:
    return f"{at:%Y-%m-%d}（{WEEKDAY_NAMES[at.weekday()]}）{at:%H:%M}"


class MediationSchedule:
    """Mediators' working time: working days from a `WorkCalendar`, hours in one time zone."""

    def __init__(
        self,
        calendar: WorkCalendar,
        *,
        hours: tuple[time, time] = DEFAULT_HOURS,
        tz: str | ZoneInfo = DEFAULT_TZ,
        lunch: tuple[time, time] | None = None,
        on_site_hours: float = DEFAULT_ON_SITE_HOURS,
    ) -> None:
        opens, closes = hours
        if not opens < closes:
            raise ValueError(f"hours: open {opens} must be before close {closes}")
        if lunch is not None and not opens < lunch[0] < lunch[1] < closes:
            raise ValueError(f"lunch {lunch[0]}-{lunch[1]} must lie inside {opens}-{closes}")
        if not on_site_hours > 0:
            raise ValueError(f"on_site_hours must be positive, got {on_site_hours}")
        self.calendar = calendar
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self.hours = (opens, closes)
        self.lunch = lunch
        self.on_site_hours = float(on_site_hours)
        self._periods = (
            [(opens, closes)] if lunch is None else [(opens, lunch[0]), (lunch[1], closes)]
        )

    @classmethod
    def from_file(
        cls,
        path: Path | str = DEFAULT_FILE,
        *,
        calendar: WorkCalendar | None = None,
        on_missing_year: Callable[[int], None] | None = None,
    ) -> MediationSchedule:
        """Load mediation.yml; the calendar it names is loaded too unless one is given."""
        try:
            data = load_yaml(path)
        except yaml.YAMLError as exc:
            raise ScheduleConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
        return cls.from_dict(
            data,
            calendar=calendar,
            base_dir=Path(path).parent,
            on_missing_year=on_missing_year,
            origin=str(path),
        )

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        calendar: WorkCalendar | None = None,
        base_dir: Path | None = None,
        on_missing_year: Callable[[int], None] | None = None,
        origin: str = "<dict>",
    ) -> MediationSchedule:
        """Build from the config mapping; missing keys take the defaults (Mon–Fri 09:00–17:00)."""
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise ScheduleConfigError(origin, ["expected a mapping"])
        problems = [f"unknown key {key!r}" for key in data if key not in CONFIG_KEYS]

        tz_name = data.get("timezone", DEFAULT_TZ)
        tz: ZoneInfo | None = None
        try:
            tz = ZoneInfo(str(tz_name))
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"timezone: unknown zone {tz_name!r}")

        hours = DEFAULT_HOURS
        raw_hours = data.get("hours")
        if raw_hours is not None:
            if isinstance(raw_hours, Mapping) and set(raw_hours) == {"open", "close"}:
                opens = _parse_hhmm(raw_hours["open"], "hours.open", problems)
                closes = _parse_hhmm(raw_hours["close"], "hours.close", problems)
                if opens is not None and closes is not None:
                    hours = (opens, closes)
            else:
                problems.append("hours: expected exactly 'open' and 'close'")

        lunch = None
        raw_lunch = data.get("lunch")
        if raw_lunch is not None:
            if isinstance(raw_lunch, Mapping) and set(raw_lunch) == {"start", "end"}:
                start = _parse_hhmm(raw_lunch["start"], "lunch.start", problems)
                end = _parse_hhmm(raw_lunch["end"], "lunch.end", problems)
                if start is not None and end is not None:
                    lunch = (start, end)
            else:
                problems.append("lunch: expected 'start' and 'end', or null for no break")

        on_site = data.get("on_site_hours", DEFAULT_ON_SITE_HOURS)
        if isinstance(on_site, bool) or not isinstance(on_site, (int, float)) or on_site <= 0:
            problems.append(f"on_site_hours: expected a positive number, got {on_site!r}")
            on_site = DEFAULT_ON_SITE_HOURS

        if calendar is None:
            name = data.get("calendar")
            if not isinstance(name, str) or not name:
                problems.append(
                    "calendar: name the working-day file (e.g. calendar/cn_workdays.yml)"
                )
            elif not problems:
                calendar = WorkCalendar.from_file(
                    (base_dir or Path(".")) / name, on_missing_year=on_missing_year
                )
        if problems:
            raise ScheduleConfigError(origin, problems)
        try:
            return cls(calendar, hours=hours, tz=tz, lunch=lunch, on_site_hours=on_site)
        except ValueError as exc:
            raise ScheduleConfigError(origin, [str(exc)]) from exc

    # ------------------------------------------------------------------ reading the clock

    def local(self, at: datetime) -> datetime:
        """`at` in the schedule's zone; naive datetimes are refused."""
        _require_aware(at)
        return at.astimezone(self.tz)

    def _at(self, day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, tzinfo=self.tz)

    def is_open(self, at: datetime) -> bool:
        """A working day, inside ``[open, close)`` and not in the lunch break."""
        local = self.local(at)
        if not self.calendar.is_workday(local.date()):
            return False
        clock = local.time()
        return any(start <= clock < end for start, end in self._periods)

    def next_open(self, at: datetime) -> datetime:
        """The first open instant at or after `at` (`at` itself when open), in the schedule's zone."""
        local = self.local(at)
        day = local.date()
        for _ in range(MAX_CLOSED_DAYS):
            if self.calendar.is_workday(day):
                for start, end in self._periods:
                    if local < self._at(day, end):
                        return max(local, self._at(day, start))
            day += timedelta(days=1)
        raise RuntimeError(f"no working day within {MAX_CLOSED_DAYS} days of {local.date()}")

    def next_opening(self, at: datetime) -> datetime:
        """The opening hour of the next working day after `at` (today's, while it is still
        ahead): where a new working period starts, e.g. to retry a case nobody took."""
        local = self.local(at)
        day = local.date()
        if self._at(day, self.hours[0]) <= local:
            day += timedelta(days=1)
        for _ in range(MAX_CLOSED_DAYS):
            if self.calendar.is_workday(day):
                return self._at(day, self.hours[0])
            day += timedelta(days=1)
        raise RuntimeError(f"no working day within {MAX_CLOSED_DAYS} days of {local.date()}")

    def _in_lunch(self, local: datetime) -> bool:
        return (
            self.lunch is not None
            and self.calendar.is_workday(local.date())
            and self.lunch[0] <= local.time() < self.lunch[1]
        )

    # ------------------------------------------------------------------ deadlines

    def deadline_on_site(self, at: datetime, hours: float | None = None) -> datetime:
        """When the mediator assigned at `at` must be on site: `hours` (default from the config)
        of wall time later, even past closing time. `at` must be inside working hours."""
        hours = self.on_site_hours if hours is None else hours
        if not hours > 0:
            raise ValueError(f"hours must be positive, got {hours}")
        if not self.is_open(at):
            raise ValueError(
                f"{self.local(at).isoformat()} is outside working hours: no on-site clock, "
                "use plan() (push + booking)"
            )
        instant = at.astimezone(timezone.utc) + timedelta(hours=hours)
        return instant.astimezone(self.tz)

    def workorder_deadline(self, at: datetime, workdays: int) -> datetime:
        """12345 办理时限: closing time of the `workdays`-th working day after the day of `at`."""
        if isinstance(workdays, bool) or not isinstance(workdays, int) or workdays < 1:
            raise ValueError(f"workdays must be a whole number ≥ 1, got {workdays!r}")
        day = self.calendar.add_workdays(self.local(at).date(), workdays)
        return self._at(day, self.hours[1])

    # ------------------------------------------------------------------ the decision

    def _closed_because(self, local: datetime) -> str:
        day = local.date()
        if not self.calendar.is_workday(day):
            holiday = self.calendar.holiday_name(day)
            if holiday:
                return f"{day:%Y-%m-%d}为{holiday}假期"
            return f"{day:%Y-%m-%d}为{WEEKDAY_NAMES[day.weekday()]}，非工作日"
        if local.time() < self.hours[0]:
            return f"尚未到工作时间（{self.hours[0]:%H:%M}开始）"
        return f"已过工作时间（{self.hours[1]:%H:%M}结束）"

    def _data_note(self, *days: date) -> str:
        missing = sorted({d.year for d in days if not self.calendar.covers(d.year)})
        if not missing:
            return ""
        years = "、".join(str(year) for year in missing)
        return f"（注意：缺少{years}年节假日数据，暂按周一至周五计算工作日）"

    def plan(self, at: datetime) -> Plan:
        """Assign the duty mediator now (or after lunch) with an on-site deadline, or push and
        book a time at the next opening."""
        local = self.local(at)
        sla = f"{self.on_site_hours:g}小时"
        if self.is_open(local) or self._in_lunch(local):
            rota_at = self.next_open(local)
            on_site_by = self.deadline_on_site(rota_at)
            when = "立即" if rota_at == local else f"午休结束后（{rota_at:%H:%M}）"
            reason = (
                f"工作时间内，{when}指派值班调解员，须在{sla}内"
                f"（{_format_local(on_site_by)}前）到场" + self._data_note(local.date())
            )
            return Plan(PlanMode.ON_DUTY, local, rota_at, on_site_by, None, reason)
        book_at = self.next_open(local)
        reason = (
            f"非工作时间：{self._closed_because(local)}。推送至调解员手机并创建预约任务，"
            f"调解员自{_format_local(book_at)}起联系报警人预约时间"
            + self._data_note(local.date(), book_at.date())
        )
        return Plan(PlanMode.BOOKING, local, book_at, None, book_at, reason)
