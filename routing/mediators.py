"""The people's mediator roster: who covers which Shanghai district on which weekday, and who to try next.

Pure: `import_roster` parses and checks a file and returns a `Roster`; storing it is someone
else's job, and so is remembering who was already tried for a case (passed in as `tried`).

The file (YAML, or CSV with the same columns for a spreadsheet export) lists mediators with an
id, name, mobile, the districts they cover, the weekdays they are on duty and an active flag;
see `routing/mediators.example.yml`. Every problem in the file is reported at once.

Choices:

* **Order.** The duty mediators of a district are ordered by id, then rotated by the day so the
  first call of the day moves through them from one day to the next instead of always waking
  the same person. Within a day the order is fixed: the same inputs give the same answer.
* **Make-up working days (调休).** A rota by weekday says nothing about a Sunday that is a
  working day; those days follow the rota of the weekday named by ``makeup_day_rota`` (default
  Monday). On holidays nobody is on duty. Both need the `WorkCalendar`; without one the rota is
  read by plain weekday.
* **Fallback.** Declined or unanswered mediators go into `tried`; when a district has nobody
  left on duty the next candidate comes from a neighbouring district (nearest first, as listed
  in `NEIGHBOURS`), then from any district. `Candidate.reason` says which, in Chinese, for the
  call-taker. `None` means nobody at all is left: the caller escalates to a person.
* **Rota by day, not by hour.** `on_duty` answers who holds duty on that day; whether the
  office is open at that hour is `MediationSchedule`'s question (`Plan.rota_at`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from routing.identity import check_mobile, mask_phone
from routing.workdays import WorkCalendar
from routing.yamlfile import load_yaml_text

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXAMPLE_FILE = Path(__file__).with_name("mediators.example.yml")

# The 16 districts of Shanghai, in the official order (市辖区 codes 310101 … 310151).
DISTRICTS: tuple[str, ...] = (
    "黄浦区",
    "徐汇区",
    "长宁区",
    "静安区",
    "普陀区",
    "虹口区",
    "杨浦区",
    "闵行区",
    "宝山区",
    "嘉定区",
    "浦东新区",
    "金山区",
    "松江区",
    "青浦区",
    "奉贤区",
    "崇明区",
)

# Districts sharing a border (across the Huangpu too: bridges and tunnels join them; 崇明区
# includes 长兴岛, joined to 浦东 by the Yangtze tunnel, and has ferries to 宝山), nearest
# centre first. Symmetric: checked by the tests.
NEIGHBOURS: Mapping[str, tuple[str, ...]] = {
    "黄浦区": ("静安区", "徐汇区", "虹口区", "浦东新区"),
    "徐汇区": ("黄浦区", "长宁区", "静安区", "闵行区", "浦东新区"),
    "长宁区": ("静安区", "徐汇区", "普陀区", "闵行区"),
    "静安区": ("黄浦区", "虹口区", "普陀区", "长宁区", "徐汇区", "宝山区"),
    "普陀区": ("静安区", "长宁区", "宝山区", "嘉定区"),
    "虹口区": ("黄浦区", "静安区", "杨浦区", "宝山区", "浦东新区"),
    "杨浦区": ("虹口区", "宝山区", "浦东新区"),
    "闵行区": ("徐汇区", "长宁区", "松江区", "嘉定区", "青浦区", "奉贤区", "浦东新区"),
    "宝山区": ("静安区", "虹口区", "杨浦区", "普陀区", "嘉定区", "浦东新区", "崇明区"),
    "嘉定区": ("普陀区", "宝山区", "闵行区", "青浦区"),
    "浦东新区": ("黄浦区", "虹口区", "杨浦区", "徐汇区", "闵行区", "宝山区", "奉贤区", "崇明区"),
    "金山区": ("松江区", "奉贤区"),
    "松江区": ("闵行区", "青浦区", "金山区", "奉贤区"),
    "青浦区": ("嘉定区", "闵行区", "松江区"),
    "奉贤区": ("闵行区", "浦东新区", "松江区", "金山区"),
    "崇明区": ("宝山区", "浦东新区"),
}

# Names people still use for districts merged away (闸北 2015, 卢湾 2011, 南汇 2009) and the
# short forms ("徐汇", "浦东").
_FORMER = {"闸北区": "静安区", "卢湾区": "黄浦区", "南汇区": "浦东新区", "浦东区": "浦东新区"}

WEEKDAY_CODES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_ALIASES = {
    **{code: i for i, code in enumerate(WEEKDAY_CODES)},
    **{f"周{c}": i for i, c in enumerate("一二三四五六日")},
    **{f"星期{c}": i for i, c in enumerate("一二三四五六日")},
    "周天": 6,
    "星期天": 6,
}
FILE_KEYS = frozenset({"makeup_day_rota", "mediators"})
MEDIATOR_KEYS = frozenset({"id", "name", "phone", "districts", "duty", "active"})
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LIST_SPLIT = re.compile(r"[\s,，、;；/|]+")


def normalise_district(text: str | None) -> str | None:
    """The district's full name from 徐汇 / 徐汇区 / 上海市徐汇区 or a former name; else None."""
    if not text:
        return None
    name = text.strip().removeprefix("上海市").removeprefix("上海")
    if name in _FORMER:
        return _FORMER[name]
    for candidate in (name, name + "区", name + "新区"):
        if candidate in NEIGHBOURS:
            return candidate
    return _FORMER.get(name + "区")


class RosterError(ValueError):
    """The roster file is wrong; `problems` lists every problem found, not just the first."""

    def __init__(self, origin: str, problems: Iterable[str]) -> None:
        self.origin = origin
        self.problems = list(problems)
        super().__init__(f"{origin}: " + "; ".join(self.problems))


@dataclass(frozen=True)
class Mediator:
    """One mediator. The phone (11 digits) stays out of repr so it cannot slip into a log."""

    id: str
    name: str
    phone: str = field(repr=False)
    districts: tuple[str, ...]
    duty: frozenset[int]  # weekdays, 0 = Monday
    active: bool = True

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)


class Reach(str, Enum):
    """Where a candidate came from, relative to the case's district."""

    DISTRICT = "district"
    NEIGHBOUR = "neighbour"
    ANY = "any"


@dataclass(frozen=True)
class Candidate:
    """The next mediator to try, the district whose duty list they came from, and why."""

    mediator: Mediator
    district: str
    reach: Reach
    reason: str


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in _LIST_SPLIT.split(value.strip()) if part]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "yes", "1", "是", "在岗"):
            return True
        if text in ("false", "no", "0", "否", "停用"):
            return False
    return None


def _parse_weekday(value: Any) -> int | None:
    return _WEEKDAY_ALIASES.get(str(value).strip().lower())


def _parse_mediator(raw: Any, where: str, problems: list[str]) -> Mediator | None:
    """One entry; appends what is wrong with it to `problems` and returns None if anything is."""
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping with {sorted(MEDIATOR_KEYS)}")
        return None
    before = len(problems)
    ident = str(raw.get("id", "")).strip()
    where = f"{where} ({ident})" if ident else where
    problems += [f"{where}: unknown key {key!r}" for key in raw if key not in MEDIATOR_KEYS]
    problems += [f"{where}: missing {key!r}" for key in ("id", "name", "phone") if key not in raw]
    if "id" in raw and not _ID.match(ident):
        problems.append(f"{where}: id {ident!r} must be letters, digits, '-', '_' or '.'")

    name = str(raw.get("name") or "").strip()
    if "name" in raw and not name:
        problems.append(f"{where}: empty name")

    phone = ""
    if "phone" in raw:
        checked = check_mobile(str(raw["phone"]))
        if checked.ok:
            phone = checked.value
        else:
            problems.append(f"{where}: phone is not a mainland mobile number ({checked.reason})")

    districts: list[str] = []
    for text in _as_list(raw.get("districts")):
        district = normalise_district(str(text))
        if district is None:
            problems.append(f"{where}: unknown district {text!r} (one of {'、'.join(DISTRICTS)})")
        elif district not in districts:
            districts.append(district)
    if not districts and not any("unknown district" in p for p in problems[before:]):
        problems.append(f"{where}: no districts")

    duty: set[int] = set()
    for text in _as_list(raw.get("duty")):
        weekday = _parse_weekday(text)
        if weekday is None:
            problems.append(f"{where}: unknown weekday {text!r} (mon…sun or 周一…周日)")
        else:
            duty.add(weekday)

    active = _as_bool(raw.get("active", True))
    if active is None:
        problems.append(f"{where}: active must be true or false, got {raw.get('active')!r}")

    if len(problems) > before:
        return None
    return Mediator(ident, name, phone, tuple(districts), frozenset(duty), bool(active))


class Roster:
    """The mediators and the rules for picking one. Immutable; build a new one to change it."""

    def __init__(
        self,
        mediators: Iterable[Mediator],
        *,
        calendar: WorkCalendar | None = None,
        makeup_day_rota: int = 0,
        tz: ZoneInfo = SHANGHAI,
        origin: str = "<roster>",
    ) -> None:
        self.mediators = tuple(sorted(mediators, key=lambda m: m.id))
        problems = []
        seen: set[str] = set()
        for mediator in self.mediators:
            if mediator.id in seen:
                problems.append(f"duplicate id {mediator.id!r}")
            seen.add(mediator.id)
            problems += [
                f"{mediator.id}: unknown district {d!r}"
                for d in mediator.districts
                if d not in NEIGHBOURS
            ]
        if not 0 <= makeup_day_rota <= 6:
            problems.append(f"makeup_day_rota must be a weekday 0-6, got {makeup_day_rota}")
        if problems:
            raise RosterError(origin, problems)
        self.calendar = calendar
        self.makeup_day_rota = makeup_day_rota
        self.tz = tz
        self.origin = origin
        self._by_id = {m.id: m for m in self.mediators}

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_dict(
        cls, data: Any, *, calendar: WorkCalendar | None = None, origin: str = "<dict>"
    ) -> Roster:
        """Check a parsed file: every problem is collected, then one `RosterError` is raised."""
        if isinstance(data, list):
            data = {"mediators": data}
        if not isinstance(data, Mapping):
            raise RosterError(origin, ["expected a mapping with a 'mediators' list"])
        problems = [f"unknown key {key!r}" for key in data if key not in FILE_KEYS]
        rota = _parse_weekday(data.get("makeup_day_rota", "mon"))
        if rota is None:
            problems.append(f"makeup_day_rota: unknown weekday {data['makeup_day_rota']!r}")
        raw = data.get("mediators")
        if not isinstance(raw, list) or not raw:
            problems.append("'mediators' must be a non-empty list")
            raw = []
        mediators = []
        seen: dict[str, str] = {}
        for i, entry in enumerate(raw, start=1):
            where = f"mediator #{i}"
            mediator = _parse_mediator(entry, where, problems)
            ident = str(entry.get("id", "")).strip() if isinstance(entry, Mapping) else ""
            if ident and ident in seen:
                problems.append(f"{where}: duplicate id {ident!r} (also {seen[ident]})")
            elif ident:
                seen[ident] = where
            if mediator is not None:
                mediators.append(mediator)
        if problems:
            raise RosterError(origin, problems)
        return cls(mediators, calendar=calendar, makeup_day_rota=rota or 0, origin=origin)

    @classmethod
    def from_file(cls, path: Path | str, *, calendar: WorkCalendar | None = None) -> Roster:
        """YAML (or JSON), or CSV with a header row id,name,phone,districts,duty,active."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")  # spreadsheet exports often carry a BOM
        except (OSError, UnicodeDecodeError) as exc:
            raise RosterError(str(path), [f"cannot read: {exc}"]) from exc
        if path.suffix.lower() == ".csv":
            data: Any = _rows_from_csv(text, str(path))
        else:
            try:
                data = load_yaml_text(text)
            except yaml.YAMLError as exc:
                raise RosterError(str(path), [f"not valid YAML: {exc}"]) from exc
        return cls.from_dict(data, calendar=calendar, origin=str(path))

    def with_calendar(self, calendar: WorkCalendar) -> Roster:
        """The same roster reading holidays and make-up days from `calendar`."""
        return Roster(
            self.mediators,
            calendar=calendar,
            makeup_day_rota=self.makeup_day_rota,
            tz=self.tz,
            origin=self.origin,
        )

    # ------------------------------------------------------------------ reading

    def get(self, mediator_id: str) -> Mediator | None:
        return self._by_id.get(mediator_id)

    def __len__(self) -> int:
        return len(self.mediators)

    def _rota_weekday(self, day: date) -> int | None:
        """Which weekday's rota applies on `day`; None when nobody is on duty (a holiday)."""
        if self.calendar is None:
            return day.weekday()
        if not self.calendar.is_workday(day):
            return None
        if day.weekday() >= 5:  # a 调休 make-up weekend day
            return self.makeup_day_rota
        return day.weekday()

    def on_duty(self, district: str, at: datetime) -> list[Mediator]:
        """Active mediators covering `district` on duty on the local day of `at`, in call order."""
        if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("`at` must be an aware datetime")
        name = normalise_district(district)
        if name is None:
            raise ValueError(f"unknown district {district!r}")
        day = at.astimezone(self.tz).date()
        weekday = self._rota_weekday(day)
        if weekday is None:
            return []
        found = [
            m for m in self.mediators if m.active and name in m.districts and weekday in m.duty
        ]
        if not found:
            return []
        shift = day.toordinal() % len(found)
        return found[shift:] + found[:shift]

    def next_candidate(
        self, district: str | None, at: datetime, tried: Iterable[str] = frozenset()
    ) -> Candidate | None:
        """The next mediator to try: the district's duty list, then neighbours, then anyone.

        `tried` holds the ids already asked (declined or unanswered); an unknown or missing
        district goes straight to every district's duty list.
        """
        tried = set(tried)
        home = normalise_district(district)
        if home is None:
            label = f"区县不明（{district}）" if district else "区县不明"
            for other in DISTRICTS:
                for mediator in self.on_duty(other, at):
                    if mediator.id not in tried:
                        reason = f"{label}，转{other}值班调解员"
                        return Candidate(mediator, other, Reach.ANY, reason)
            return None

        own = self.on_duty(home, at)
        for mediator in own:
            if mediator.id not in tried:
                asked = sum(1 for m in own if m.id in tried)
                reason = f"{home}值班调解员"
                if asked:
                    reason += f"（本区已联系{asked}人未接单，顺延下一位）"
                return Candidate(mediator, home, Reach.DISTRICT, reason)

        why = "今日无值班调解员" if not own else f"今日{len(own)}名值班调解员都已联系、未接单"
        for neighbour in NEIGHBOURS[home]:
            for mediator in self.on_duty(neighbour, at):
                if mediator.id not in tried:
                    reason = f"{home}{why}，转相邻的{neighbour}值班调解员"
                    return Candidate(mediator, neighbour, Reach.NEIGHBOUR, reason)
        nearby = set(NEIGHBOURS[home]) | {home}
        for other in DISTRICTS:
            if other in nearby:
                continue
            for mediator in self.on_duty(other, at):
                if mediator.id not in tried:
                    reason = f"{home}{why}，相邻区也无可用调解员，转{other}值班调解员"
                    return Candidate(mediator, other, Reach.ANY, reason)
        return None


def _rows_from_csv(text: str, origin: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise RosterError(origin, ["empty CSV file"])
    header = [name.strip() for name in reader.fieldnames]
    unknown = [name for name in header if name not in MEDIATOR_KEYS]
    if unknown:
        raise RosterError(origin, [f"unknown CSV column {name!r}" for name in unknown])
    rows = []
    for row in reader:
        cleaned = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if any(cleaned.values()):
            rows.append({k: v for k, v in cleaned.items() if v != "" or k in ("id", "name")})
    return rows


def import_roster(path: Path | str) -> Roster:
    """What `alarmbot mediators import FILE` calls: parse and check, return the roster, store nothing.

    Raises `RosterError` listing every problem in the file.
    """
    return Roster.from_file(path)
