"""Rule-based Chinese entity extraction for police text alarms (pure, fast, never raises).

`extract_entities(text, now)` finds time, phone, vehicle_plate, id_number, people_count,
weapon(_negated), injury(_negated) and address in a message. It complements the learned
extractor: the rules are exact where the formats are exact (phones, plates, ID numbers) and
conservative elsewhere. Offsets refer to the text passed in; matching runs on a same-length
folded copy (Simplified script, half-width digits), see nlu.text.fold_for_matching.

Cue words live in nlu/entity_cues.yml. Time expressions are located by our own regex and
resolved by jionlp.parse_time on the short span only: jionlp's own extractor is quadratic on
adversarial input (40 characters of "今天" take half a second).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cn2an
import yaml
from stdnum.cn import ric

from nlu.text import MAX_CHARS, fold_for_matching

logger = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CUES_PATH = Path(__file__).with_name("entity_cues.yml")
MAX_PER_TYPE = 10
"""More than this many entities of one type is noise (or an attack), not a report."""
MAX_TIME_SPANS = 12
MAX_ADDRESS_CHARS = 60
MAX_LOCATION_LOOKUPS = 2
"""jionlp.parse_location costs ~3 ms: only for the first few non-Shanghai addresses."""

TIME = "time"
PHONE = "phone"
VEHICLE_PLATE = "vehicle_plate"
ID_NUMBER = "id_number"
PEOPLE_COUNT = "people_count"
WEAPON = "weapon"
WEAPON_NEGATED = "weapon_negated"
INJURY = "injury"
INJURY_NEGATED = "injury_negated"
ADDRESS = "address"

# When spans overlap, the earlier type wins: checksummed/fixed formats before fuzzy ones.
PRIORITY = (
    ID_NUMBER,
    PHONE,
    VEHICLE_PLATE,
    ADDRESS,
    TIME,
    PEOPLE_COUNT,
    WEAPON_NEGATED,
    WEAPON,
    INJURY_NEGATED,
    INJURY,
)


@dataclass(frozen=True, slots=True)
class Entity:
    """One extracted entity; `start`/`end` index the original text, `text` is that slice."""

    entity: str
    value: Any
    start: int
    end: int
    text: str
    confidence: float = 1.0
    detail: Mapping[str, Any] | None = field(default=None, compare=False)
    """Extra facts that do not fit `value` (a time's range end, an approximate flag)."""


# ---------------------------------------------------------------------------------------------
# Shared helpers

CN_DIGITS = "零〇一二两三四五六七八九十百"
_CJK = "\u4e00-\u9fff"
_CLAUSE_BREAK = re.compile(r"[，。！？；,.!?;\n、]|但是|但|可是|不过|然后|结果")


def _alternation(words: Iterable[str]) -> str:
    """Regex alternation that prefers the longest word at each position."""
    unique = sorted(set(words), key=lambda w: (-len(w), w))
    return "|".join(map(re.escape, unique)) or "(?!)"


def cn_to_int(numeral: str) -> int | None:
    """'12' / '十二' / '两' → int; None when it is not a number."""
    if numeral.isdigit():
        return int(numeral)
    try:
        value = cn2an.cn2an(numeral, "smart")
    except Exception:  # cn2an raises ValueError and others on odd input
        return None
    return int(value) if float(value).is_integer() else None


def _entity(
    name: str, value: Any, start: int, end: int, confidence: float = 1.0, **detail: Any
) -> Entity:
    return Entity(name, value, start, end, "", confidence, detail or None)


# ---------------------------------------------------------------------------------------------
# Cue tables (compiled once)


@dataclass(frozen=True)
class _Cues:
    weapon_re: re.Pattern[str]
    weapon_canonical: dict[str, str]
    weapon_exclusion_re: re.Pattern[str]
    weapon_negated_re: re.Pattern[str]
    injury_re: re.Pattern[str]
    injury_canonical: dict[str, str]
    injury_negated_re: re.Pattern[str]
    negation_re: re.Pattern[str]
    weapon_negation_re: re.Pattern[str]
    exempt_re: re.Pattern[str]
    uncertainty_re: re.Pattern[str]
    people_re: re.Pattern[str]
    crowd_re: re.Pattern[str]
    known_place_re: re.Pattern[str]
    known_kinds: dict[str, frozenset[str]]
    district_of: dict[str, str]
    metro_re: re.Pattern[str]
    suffix_re: re.Pattern[str]
    suffix_kind: dict[str, str]
    stop_chars: frozenset[str]
    name_blocklist: frozenset[str]


def _canonical_map(groups: Mapping[str, list[str]]) -> dict[str, str]:
    return {surface: canonical for canonical, surfaces in groups.items() for surface in surfaces}


def _negation_pattern(cues: Iterable[str], gap: int) -> re.Pattern[str]:
    """Negation word followed by at most `gap` characters up to the end of the window."""
    return re.compile(rf"(?:{_alternation(cues)})[^，。,.!?！？]{{0,{gap}}}$")


_PERSON_NOT_FOLLOWED_BY = "民家物行工士生格口数类间气质次头才心情身群"  # 人民, 人家, 人行道 ...


def _people_patterns(people: Mapping[str, list[str]]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """两个人 / 五六名男子 / 2人, and crowd words (一群人) that mean 'many'."""
    nouns = [n for n in people["nouns"] if n != "人"]
    noun = rf"(?:{_alternation(nouns)}|人(?![{_PERSON_NOT_FOLLOWED_BY}]))"
    number = rf"\d{{1,4}}|好几十|几十|十几|[{CN_DIGITS}几]{{1,5}}"
    classifier = _alternation(people["classifiers"])
    count_re = re.compile(
        rf"(?<![第\d])(?P<num>{number})(?P<more>多|余|来)?\s?(?:{classifier})?(?P<noun>{noun})"
    )
    crowd_re = re.compile(rf"(?:{_alternation(people['crowd_words'])})(?:个|名)?{noun}")
    return count_re, crowd_re


def _known_place_kinds(address: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """Every listed place word → what it can be (district, city, road, landmark, station)."""
    kinds: dict[str, set[str]] = {}
    groups = {
        "district": _canonical_map(address["districts"]),
        "city": address["city_words"],
        "road": address["roads"],
        "landmark": address["landmarks"],
        # two-character station names (真如, 书院) are too ambiguous on their own
        "station": [word for word in address["stations"] if len(word) >= 3],
    }
    for kind, words in groups.items():
        for word in words:
            kinds.setdefault(word, set()).add(kind)
    return {word: frozenset(k) for word, k in kinds.items()}


def _metro_pattern(address: Mapping[str, Any], stop_chars: frozenset[str]) -> re.Pattern[str]:
    """(地铁)2号线(的)人民广场站 / 浦江线; the station is a listed one or 2-8 name characters."""
    name_char = rf"(?:(?![{''.join(sorted(stop_chars))}])[{_CJK}])"
    line = (
        r"(?:(?<!\d)(?P<line>\d{1,2}|[一二三四五六七八九十]{1,3})\s?号线"
        rf"|(?P<named>{_alternation(address['named_lines'])}))"
    )
    station = (
        rf"(?:\s?(?:的|在|到)?\s?(?:(?P<known>{_alternation(address['stations'])})(?:地铁)?站?"
        rf"|(?P<generic>{name_char}{{2,8}}?)(?:地铁)?站(?![着起住立岗])))?"
    )
    return re.compile(rf"(?:(?:地铁|轨交|轨道交通)\s?)?{line}{station}")


def _suffix_kinds(address: Mapping[str, Any]) -> dict[str, str]:
    """Place suffix (路, 小区, 医院, 镇, 市 ...) → the kind of piece it ends."""
    kinds = {s: "road" for s in address["road_suffixes"]}
    kinds |= {s: "community" for s in address["community_suffixes"]}
    kinds |= {s: "town" for s in address["town_suffixes"]}
    kinds |= {s: "landmark" for s in address["landmark_suffixes"]}
    kinds |= {"地铁站": "station", address["village_suffix"]: "village"}
    return kinds | {"省": "admin", "自治区": "admin", "市": "admin"}


@lru_cache(maxsize=1)
def _cues() -> _Cues:
    raw = yaml.safe_load(CUES_PATH.read_text(encoding="utf-8"))
    weapons = _canonical_map(raw["weapons"])
    injuries = _canonical_map(raw["injuries"])
    address = raw["address"]
    people_re, crowd_re = _people_patterns(raw["people"])
    known_kinds = _known_place_kinds(address)
    stop_chars = frozenset(address["stop_chars"] + "点半午晚早")  # 8点半路上 is not a road
    suffix_kind = _suffix_kinds(address)
    return _Cues(
        weapon_re=re.compile(_alternation(weapons)),
        weapon_canonical=weapons,
        weapon_exclusion_re=re.compile(_alternation(raw["weapon_exclusions"])),
        weapon_negated_re=re.compile(_alternation(raw["weapon_negated_phrases"])),
        injury_re=re.compile(_alternation(injuries)),
        injury_canonical=injuries,
        injury_negated_re=re.compile(_alternation(raw["injury_negated_phrases"])),
        negation_re=_negation_pattern(raw["negation_cues"], 4),
        weapon_negation_re=_negation_pattern(
            raw["negation_cues"] + raw["weapon_only_negation_cues"], 3
        ),
        exempt_re=re.compile(_alternation(raw["negation_exempt"])),
        uncertainty_re=re.compile(_alternation(raw["uncertainty_cues"])),
        people_re=people_re,
        crowd_re=crowd_re,
        known_place_re=re.compile(_alternation(known_kinds)),
        known_kinds=known_kinds,
        district_of=_canonical_map(address["districts"]),
        metro_re=_metro_pattern(address, stop_chars),
        suffix_re=re.compile(_alternation(suffix_kind)),
        suffix_kind=suffix_kind,
        stop_chars=stop_chars,
        name_blocklist=frozenset(address["name_blocklist"]),
    )


# ---------------------------------------------------------------------------------------------
# Phone, ID number, vehicle plate: exact formats

_SEP = r"[ \-]"
_MOBILE_RE = re.compile(rf"(?<![\d+])(?:\+?86{_SEP}?)?(1{_SEP}?[3-9](?:{_SEP}?\d){{9}})(?!\d)")
_LANDLINE_RE = re.compile(r"(?<!\d)(\(0\d{2,3}\)|0\d{2,3})[ \-]?([2-9]\d{2,3}[ \-]?\d{4})(?!\d)")
_ID_RE = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:[ \-]?\d){11}[ \-]?[\dXx](?![0-9A-Za-z])")
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE_RE = re.compile(
    rf"([{_PROVINCES}]) ?([A-Za-z]) ?[·•\-.]? ?([A-Za-z0-9]{{4}}[挂学警港澳]|[A-Za-z0-9]{{5,6}})(?![A-Za-z0-9])"
)
_DIGITS = re.compile(r"\d")


def _digits_only(text: str) -> str:
    return "".join(_DIGITS.findall(text))


def _phones(text: str, now: datetime) -> Iterator[Entity]:
    """Mainland mobiles (spaces/dashes allowed, +86 dropped) and 0xx landlines, digits only."""
    for match in _MOBILE_RE.finditer(text):
        yield _entity(PHONE, _digits_only(match.group(1)), match.start(), match.end())
    for match in _LANDLINE_RE.finditer(text):
        yield _entity(PHONE, _digits_only(match.group(0)), match.start(), match.end())


def _id_numbers(text: str, now: datetime) -> Iterator[Entity]:
    """18-character resident ID numbers whose checksum, birth date and region are valid."""
    for match in _ID_RE.finditer(text):
        compact = re.sub(r"[ \-]", "", match.group(0)).upper()
        if ric.is_valid(compact):
            yield _entity(ID_NUMBER, compact, match.start(), match.end())


def _plates(text: str, now: datetime) -> Iterator[Entity]:
    """沪A12345, 沪AD12345 / 沪A12345D (new energy), 沪A1234挂; value upper-case and compact."""
    for match in _PLATE_RE.finditer(text):
        province, letter, body = match.groups()
        if sum(c.isdigit() for c in body) < 3:
            continue  # 新iPhone and friends
        if len(body) == 6 and not (body[0] in "DFdf" or body[-1] in "DFdf"):
            continue
        yield _entity(VEHICLE_PLATE, f"{province}{letter}{body}".upper(), *match.span())


# ---------------------------------------------------------------------------------------------
# Negation (没有人受伤, 没拿刀) shared by weapons and injuries

_QUESTION_AFTER = re.compile(r"了?(?:吗|么|没有?(?:[？?]|$))")


def _negation(text: str, start: int, end: int, negation_re: re.Pattern[str]) -> tuple[str, int]:
    """('negated', cue start) / ('uncertain', start) / ('asserted', start) for text[start:end]."""
    cues = _cues()
    window_start = max(0, start - 10)
    window = text[window_start:start]
    clause = list(_CLAUSE_BREAK.finditer(window))
    if clause:
        window_start += clause[-1].end()
        window = window[clause[-1].end() :]
    if cues.uncertainty_re.search(window) or _QUESTION_AFTER.match(text, end):
        return "uncertain", start
    window = cues.exempt_re.sub(lambda m: " " * len(m.group(0)), window)
    match = negation_re.search(window)
    if match:
        return "negated", window_start + match.start()
    return "asserted", start


def _excluded_spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text)]


def _inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def _weapons(text: str, now: datetime) -> Iterator[Entity]:
    """Weapon words (canonical value), unless part of food/idioms or negated (没拿刀)."""
    cues = _cues()
    excluded = _excluded_spans(cues.weapon_exclusion_re, text)
    for match in cues.weapon_negated_re.finditer(text):
        yield _entity(WEAPON_NEGATED, True, *match.span())
    for match in cues.weapon_re.finditer(text):
        if _inside(excluded, *match.span()):
            continue
        state, cue_start = _negation(text, match.start(), match.end(), cues.weapon_negation_re)
        if state == "negated":
            yield _entity(WEAPON_NEGATED, True, cue_start, match.end())
        elif state == "asserted":
            canonical = cues.weapon_canonical[match.group(0)]
            confidence = 0.8 if canonical in ("石头", "武器") else 1.0
            yield _entity(WEAPON, canonical, *match.span(), confidence)


def _injuries(text: str, now: datetime) -> Iterator[Entity]:
    """Injury words (canonical value); negated ones become injury_negated=True instead."""
    cues = _cues()
    for match in cues.injury_negated_re.finditer(text):
        yield _entity(INJURY_NEGATED, True, *match.span())
    for match in cues.injury_re.finditer(text):
        state, cue_start = _negation(text, match.start(), match.end(), cues.negation_re)
        if state == "negated":
            yield _entity(INJURY_NEGATED, True, cue_start, match.end())
        elif state == "asserted":
            canonical = cues.injury_canonical[match.group(0)]
            yield _entity(INJURY, canonical, *match.span())


# ---------------------------------------------------------------------------------------------
# People count

_PAIR = re.compile(r"^(.*?)([一二两三四五六七八九])([二三四五六七八九])(十|百)?$")
_MANY_NUMERALS = frozenset({"几十", "好几十", "好几", "上百", "成百"})


def _count_value(numeral: str) -> tuple[int | str | None, bool]:
    """(count, approximate): 五六 → 5, 十几 → 10, 几 → 3, 几十 → 'many'."""
    if numeral in _MANY_NUMERALS:
        return "many", True
    if numeral == "几":
        return 3, True
    if numeral.endswith("几"):
        return cn_to_int(numeral[:-1]), True
    pair = _PAIR.match(numeral)
    if pair:
        prefix, low, high, scale = pair.groups()
        low_value, high_value = cn_to_int(low), cn_to_int(high)
        if low_value is not None and high_value == low_value + 1:
            return cn_to_int(f"{prefix}{low}{scale or ''}"), True
    return cn_to_int(numeral), False


def _people(text: str, now: datetime) -> Iterator[Entity]:
    """两个人 → 2, 五六个人 → 5 (lower bound), 一群人 → 'many'."""
    cues = _cues()
    for match in cues.crowd_re.finditer(text):
        yield _entity(PEOPLE_COUNT, "many", *match.span(), 0.9)
    for match in cues.people_re.finditer(text):
        value, approximate = _count_value(match.group("num"))
        if value is None or value == 0:
            continue
        approximate = approximate or bool(match.group("more"))
        yield _entity(PEOPLE_COUNT, value, *match.span(), 0.8 if approximate else 1.0)


# ---------------------------------------------------------------------------------------------
# Time

_NUM = rf"(?:\d{{1,2}}|[{CN_DIGITS[:-1]}]{{1,3}})"
_MINUTE = rf"(?:半|一刻|三刻|\d{{1,2}}分|[{CN_DIGITS[:-1]}]{{1,3}}分|[二三四五]十[一二三四五六七八九]?|零[一二三四五六七八九]|\d{{2}})"
_CLOCK = (
    rf"(?:(?<![\d:])\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?![\d:])"
    rf"|(?<!\d){_NUM}(?:点|时)(?:钟)?(?:{_MINUTE})?)"
)
_PERIOD = rf"(?:凌晨|清晨|早上|早晨|上午|中午|下午|傍晚|晚上|夜里|夜间|半夜|深夜|午夜|晚间|夜晚|白天|(?:早|晚|夜)(?={_CLOCK}))"
_DAY_WORDS = "大前天|前天|昨天|今天|明天|后天|今日|昨日|昨晚|今晚|前晚|今早|昨早|今晨|昨夜|今夜|前几天|这几天|上个月|上月|这个月|本月|去年|前年"
_WEEK = r"(?:(?:上|这|本|下)个?)?(?:周|星期|礼拜)(?:[一二三四五六日天1-7]|末)|(?:上|这|本|下)个?(?:周|星期|礼拜)"
_DATE = (
    rf"(?:\d{{4}}年)?(?:\d{{1,2}}|[{CN_DIGITS[:-1]}]{{1,3}})月(?:\d{{1,2}}|[{CN_DIGITS[:-1]}]{{1,3}})(?:日|号)?"
    r"|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{4}年(?:\d{1,2}月)?"
)
_REL_DAY = rf"(?:{_NUM}|几|十几|半)个?多?(?:天|日|周|星期|礼拜|月|年)多?(?:以前|之前|前)"
_DOM = rf"(?:\d{{1,2}}|[{CN_DIGITS[:-1]}]{{1,3}})(?:日|号)(?=的?(?:{_PERIOD}|{_CLOCK}|那天|当天|早|晚|夜))"
_MONTH_DAY = rf"(?:上个?|这个|本|下个?)月(?:\d{{1,2}}|[{CN_DIGITS[:-1]}]{{1,3}})(?:日|号)"
_DAY = rf"(?:{_REL_DAY}|{_MONTH_DAY}|{_DAY_WORDS}|{_WEEK}|{_DATE}|{_DOM})"
_FUZZY = r"(?:多)?(?:钟)?(?:左右|前后|许)?"
_ABS = (
    rf"{_DAY}(?:的?{_PERIOD})?(?:的?{_CLOCK})?{_FUZZY}"
    rf"|{_PERIOD}(?:{_CLOCK})?{_FUZZY}"
    rf"|{_CLOCK}{_FUZZY}"
)
_REL_MIN = (
    rf"(?P<rnum>十几|几十|\d{{1,3}}|[{CN_DIGITS}]{{1,4}}|几|半)(?:个)?(?P<rhalf>半)?(?P<rmore>多)?(?:个)?"
    r"(?P<unit>秒钟?|分钟|分|刻钟?|小时|钟头)(?P<rmore2>多|左右)?(?:以前|之前|前)"
)
_NOW_APPROX = ("就在刚才", "刚刚", "刚才", "方才")
_NOW_WORDS = (*_NOW_APPROX, "此时此刻", "此刻", "现在", "目前", "正在", "这会儿", "眼下")
_TIME_RE = re.compile(rf"(?P<rel>{_REL_MIN})|(?P<now>{_alternation(_NOW_WORDS)})|(?P<abs>{_ABS})")

_HAS_DAY = re.compile(r"今|昨|前天|明|后天|周|星期|礼拜|月|日|号|年|天")
_HAS_PERIOD = re.compile(r"凌晨|清晨|早|午|晚|夜|白天")
_HAS_CLOCK = re.compile(_CLOCK)
_FUTURE = re.compile(r"明|后天|下周|下个|下星期|下礼拜|以后|之后")
_WEEKDAY = re.compile(r"周|星期|礼拜")
_WEAK_CLOCK = re.compile(rf"[{CN_DIGITS}]{{1,3}}时|一点")
_REWRITES = (
    ("今晚", "今天晚上"),
    ("昨晚", "昨天晚上"),
    ("前晚", "前天晚上"),
    ("今夜", "今天晚上"),
    ("昨夜", "昨天晚上"),
    ("今早", "今天早上"),
    ("昨早", "昨天早上"),
    ("今晨", "今天早上"),
    ("前几天", "三天前"),
    ("这几天", "三天前"),
    ("十几", "十五"),
    ("几十", "三十"),
    ("几", "三"),
)
_UNIT_SECONDS = {"秒": 1, "分": 60, "刻": 900, "小时": 3600, "钟头": 3600}


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=SHANGHAI, microsecond=0).isoformat()


def _time_entity(
    begin: datetime,
    finish: datetime,
    start: int,
    end: int,
    confidence: float,
    fuzzy: bool,
    kind: str,
) -> Entity:
    """value = ISO start; detail keeps the range end and whether the time is approximate."""
    return _entity(
        TIME,
        _iso(begin),
        start,
        end,
        confidence,
        end_time=_iso(finish),
        approximate=fuzzy,
        kind=kind,
    )


def _relative_delta(match: re.Match[str]) -> tuple[timedelta, bool] | None:
    """十分钟前 / 一个半小时前 / 十几分钟前 → (how long ago, approximate)."""
    numeral = match.group("rnum")
    approximate = bool(match.group("rmore") or match.group("rmore2"))
    if numeral == "半":
        amount: float | None = 0.5
    elif numeral in ("几", "十几", "几十"):
        amount, approximate = {"几": 3, "十几": 15, "几十": 30}[numeral], True
    else:
        amount = cn_to_int(numeral)
    if amount is None:
        return None
    if match.group("rhalf"):
        amount += 0.5
    unit = match.group("unit")
    seconds = next(v for k, v in _UNIT_SECONDS.items() if unit.startswith(k))
    return timedelta(seconds=amount * seconds), approximate


def _month_start(now: datetime, months_back: int) -> datetime:
    year, month = now.year, now.month - months_back
    while month < 1:
        year, month = year - 1, month + 12
    return now.replace(year=year, month=month, day=1, hour=0, minute=0, second=0, microsecond=0)


@lru_cache(maxsize=1)
def _jionlp() -> Any:
    """jionlp, imported on first use: it prints a banner on import and takes ~0.2 s."""
    with contextlib.redirect_stdout(io.StringIO()):
        import jionlp

    return jionlp


def _parse_with_jionlp(span: str, now: datetime) -> tuple[datetime, datetime, str] | None:
    """(start, end, definition) for a time span, naive Shanghai wall time; None if unparsable."""
    try:
        parsed = _jionlp().parse_time(span, time_base=now.replace(tzinfo=None))
    except Exception:  # jionlp raises ValueError and, on odd input, anything else
        return None
    if not isinstance(parsed, dict) or parsed.get("type") not in ("time_point", "time_span"):
        return None
    try:
        first, last = (datetime.strptime(t, "%Y-%m-%d %H:%M:%S") for t in parsed["time"][:2])
    except (TypeError, ValueError):  # '-inf', year 210, ...
        return None
    if not 1900 < first.year < 2200:
        return None
    return first, last, str(parsed.get("definition", ""))


def _rewrite(span: str) -> tuple[str, bool]:
    """Phrases jionlp gets wrong (今晚 = the whole day) or cannot read (几天前)."""
    approximate = False
    for old, new in _REWRITES:
        if old in span:
            span = span.replace(old, new)
            approximate = approximate or "几" in old
    return span, approximate


def _adjust_to_past(span: str, start: datetime, now: datetime) -> tuple[timedelta, bool]:
    """Reports are about the past: 两点 said at 14:30 means 14:00, 周五 on Wednesday last week."""
    naive_now = now.replace(tzinfo=None)
    has_day, has_clock = bool(_HAS_DAY.search(span)), bool(_HAS_CLOCK.search(span))
    shift = timedelta()
    if has_clock and not _HAS_PERIOD.search(span) and start.hour < 12 and not span.startswith("0"):
        later = start + timedelta(hours=12)
        if later <= naive_now:
            shift = timedelta(hours=12)
        elif start > naive_now and not has_day:
            shift = timedelta(hours=12) - timedelta(days=1)
    moved = start + shift
    if moved > naive_now + timedelta(minutes=5) and not _FUTURE.search(span):
        if _WEEKDAY.search(span) and "下" not in span:
            shift -= timedelta(days=7)
        elif "月" in span and "年" not in span and ("日" in span or "号" in span):
            shift -= timedelta(days=366 if _leap_span(moved) else 365)
        elif not has_day:
            shift -= timedelta(days=1)
    return shift, shift != timedelta()


def _month_words(span: str, now: datetime) -> tuple[datetime, datetime, str] | None:
    """上个月 / 这个月, which jionlp cannot parse, as the month's first to last second."""
    if span not in ("上个月", "上月", "这个月", "本月"):
        return None
    back = 1 if "上" in span else 0
    naive_now = now.replace(tzinfo=None)
    first, following = _month_start(naive_now, back), _month_start(naive_now, back - 1)
    return first, following - timedelta(seconds=1), "blur"


def _leap_span(moment: datetime) -> bool:
    """Whether the year before `moment` (to the same date) contains a 29 February."""
    year = moment.year if moment.month > 2 else moment.year - 1
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _absolute_time(match: re.Match[str], now: datetime) -> Entity | None:
    span, (start, end) = match.group(0), match.span()
    if not _HAS_DAY.search(span) and not _HAS_PERIOD.search(span) and _WEAK_CLOCK.fullmatch(span):
        return None  # 一点 (a little), 一时 (for a moment)
    rewritten, approximate = _rewrite(span)
    parsed = _parse_with_jionlp(rewritten, now) or _month_words(span, now)
    if parsed is None:
        return None
    begin, finish, definition = parsed
    shift, adjusted = _adjust_to_past(span, begin, now)
    confidence = 0.8 if (approximate or adjusted) else 1.0
    fuzzy = approximate or definition == "blur"
    return _time_entity(begin + shift, finish + shift, start, end, confidence, fuzzy, "point")


def _relative_time(match: re.Match[str], now: datetime) -> Entity | None:
    delta = _relative_delta(match)
    if delta is None:
        return None
    ago, fuzzy = delta
    moment = now.replace(tzinfo=None, microsecond=0) - ago
    return _time_entity(moment, moment, *match.span(), 0.8 if fuzzy else 1.0, fuzzy, "relative")


def _guarded(
    resolve: Callable[[re.Match[str], datetime], Entity | None], match: re.Match[str], now: datetime
) -> Entity | None:
    """One odd span (a date arithmetic overflow) must not cost the message its other times."""
    try:
        return resolve(match, now)
    except (ArithmeticError, ValueError):
        logger.debug("time span %r not resolved", match.group(0), exc_info=True)
        return None


def _times(text: str, now: datetime) -> Iterator[Entity]:
    """刚才 / 十分钟前 / 昨晚十点 / 上周五 / 10:30 → ISO start (+08:00) of the time range."""
    naive_now = now.replace(tzinfo=None, microsecond=0)
    for count, match in enumerate(_TIME_RE.finditer(text)):
        if count >= MAX_TIME_SPANS:
            return
        if match.group("now"):
            span, (start, end) = match.group(0), match.span()
            fuzzy = span in _NOW_APPROX
            yield _time_entity(
                naive_now, naive_now, start, end, 0.9 if fuzzy else 1.0, fuzzy, "now"
            )
        else:
            resolve = _relative_time if match.group("rel") else _absolute_time
            entity = _guarded(resolve, match, now)
            if entity is not None:
                yield entity


# ---------------------------------------------------------------------------------------------
# Address


_ADMIN_KEYS = frozenset({"province", "city", "county", "town", "admin"})
_PIECE_FIELD = {
    "road": "road",
    "community": "community",
    "village": "community",
    "town": "town",
    "landmark": "landmark",
    "admin": "admin",
    "station": "station",
}


@dataclass
class _Piece:
    """A fragment of an address before merging (a district, a road with its number, ...)."""

    start: int
    end: int
    fields: dict[str, Any]
    confidence: float
    rank: int  # 0 metro, 1 known word, 2 suffix heuristic: lower wins an overlap
    detail_start: int | None = None  # where the part below district/town level begins

    def __post_init__(self) -> None:
        if self.detail_start is None and not all(k in _ADMIN_KEYS for k in self.fields):
            self.detail_start = self.start


_TAIL_RE = re.compile(
    r"\s?(?:(?P<bld>\d{1,3})-(?P<room>\d{1,5})室?"
    r"|(?P<num>\d{1,5}|[零一二两三四五六七八九十百]{1,4})\s?(?P<unit>支弄|号楼|号院|单元|弄|号|幢|栋|座|室|楼|层)(?!线)"
    r"|-(?P<dash>\d{1,5})室?)"
)
_TAIL_FIELD = {
    "支弄": "lane",
    "弄": "lane",
    "号": "number",
    "号院": "number",
    "号楼": "building",
    "幢": "building",
    "栋": "building",
    "座": "building",
    "单元": "unit",
    "室": "room",
    "楼": "floor",
    "层": "floor",
}
_ROAD_END_RE = re.compile(r"路口|交叉口|口")
_TOWN_AFTER_RE = re.compile(r"镇|街道")
_MERGE_GAPS = frozenset({"", " ", "的"})
_ROAD_CONNECTORS = frozenset({"近", "靠近", "与", "和", "跟", "交", "、", "/"})
_NOT_AFTER = {"admin": "民场长委政", "city": "民场", "landmark": "舞"}


def _with_tail(text: str, piece: _Piece) -> _Piece:
    """Extend a road/community/landmark with 88号 / 1266弄3号 / 5号楼302室 / 路口."""
    position = piece.end
    for _ in range(6):
        match = _TAIL_RE.match(text, position)
        if not match:
            break
        if match.group("bld"):
            piece.fields.setdefault("building", match.group("bld"))
            piece.fields.setdefault("room", match.group("room"))
        elif match.group("dash"):
            piece.fields.setdefault("room", match.group("dash"))
        else:
            key = _TAIL_FIELD[match.group("unit")]
            piece.fields.setdefault(key, match.group("num") + match.group("unit"))
        position = match.end()
    if position > piece.end:
        piece.confidence = max(piece.confidence, 0.9)
    if "road" in piece.fields:
        road_end = _ROAD_END_RE.match(text, position)
        if road_end and position == piece.end:
            position = road_end.end()
    piece.end = position
    return piece


_STATION_AFTER_RE = re.compile(r"(?:地铁)?站(?![着起住立岗])")


def _station_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A listed name used as a metro station: 地铁人民广场 / 人民广场站 / 人民广场地铁站."""
    after = _STATION_AFTER_RE.match(text, end)
    before = text.endswith("地铁", 0, start)
    if not (after or before):
        return None
    return (start - 2 if before else start), (after.end() if after else end)


def _known_places(text: str) -> Iterator[_Piece]:
    """Districts, roads, landmarks and 3+ character station names from the cue lists."""
    cues = _cues()
    for match in cues.known_place_re.finditer(text):
        word, (start, end) = match.group(0), match.span()
        kinds = cues.known_kinds[word]
        following = text[end : end + 1]
        if "district" in kinds:
            yield _Piece(start, end, {"county": cues.district_of[word]}, 0.95, 1)
        elif "city" in kinds:
            if following and following in _NOT_AFTER["city"]:
                continue
            yield _Piece(start, end, {"city": "上海市"}, 0.95, 1)
        elif station := _station_span(text, start, end):
            yield _Piece(*station, {"station": word}, 0.95, 0)
        elif "road" in kinds:
            yield _with_tail(text, _Piece(start, end, {"road": word}, 0.95, 1))
        elif town := _TOWN_AFTER_RE.match(text, end):
            yield _Piece(start, town.end(), {"town": word + town.group(0)}, 0.95, 1)
        else:
            yield _with_tail(text, _Piece(start, end, {"landmark": word}, 0.9, 1))


def _metro(text: str) -> Iterator[_Piece]:
    """地铁2号线人民广场站 → {'line': 2, 'station': '人民广场'}."""
    for match in _cues().metro_re.finditer(text):
        line: int | str | None = match.group("named")
        if line is None:
            line = cn_to_int(match.group("line"))
        station = match.group("known") or match.group("generic")
        fields: dict[str, Any] = {"line": line}
        if station:
            fields["station"] = station
        yield _Piece(match.start(), match.end(), fields, 0.95, 0)


def _name_start(text: str, end: int, max_len: int, covered: bytearray) -> int:
    """Walk left from `end` over characters that can be part of a place name.

    Stops at a known place (五角场|万达广场) so the two become adjacent pieces, not one name.
    """
    stop_chars = _cues().stop_chars
    start = end
    while start > 0 and end - start < max_len and not covered[start - 1]:
        char = text[start - 1]
        if not ("\u4e00" <= char <= "\u9fff") or char in stop_chars:
            break
        start -= 1
    return start


def _suffix_places(text: str, covered: bytearray) -> Iterator[_Piece]:
    """XX路 / XX小区 / XX医院 / XX镇 / XX地铁站 found by their suffix and a 2+ character name."""
    cues = _cues()
    for match in cues.suffix_re.finditer(text):
        suffix, (start, end) = match.group(0), match.span()
        if any(covered[start:end]):
            continue
        kind = cues.suffix_kind[suffix]
        following = text[end : end + 1]
        if following and following in _NOT_AFTER.get(kind, ""):
            continue
        name_start = _name_start(text, start, 8 if kind == "landmark" else 6, covered)
        name = text[name_start:start]
        if len(name) < 2 or name in cues.name_blocklist:
            continue
        if kind == "village" and not (name[-1] in CN_DIGITS or _TAIL_RE.match(text, end)):
            continue
        piece = _Piece(name_start, end, {_PIECE_FIELD[kind]: name + suffix}, 0.75, 2)
        if kind == "station":
            piece.fields = {"station": name}
        yield piece if kind in ("admin", "town", "station") else _with_tail(text, piece)


def _select_pieces(pieces: list[_Piece], length: int) -> list[_Piece]:
    """Non-overlapping pieces: metro before known words before heuristics, longer first."""
    taken = bytearray(length + 1)
    chosen: list[_Piece] = []
    for piece in sorted(pieces, key=lambda p: (p.rank, p.start - p.end, p.start)):
        if piece.end > piece.start and not any(taken[piece.start : piece.end]):
            taken[piece.start : piece.end] = b"\x01" * (piece.end - piece.start)
            chosen.append(piece)
    return sorted(chosen, key=lambda p: p.start)


def _merge_pieces(text: str, pieces: list[_Piece]) -> list[_Piece]:
    """徐汇区 + 漕溪北路88号 → one address; 漕溪北路 近 中山南二路 → road + cross_road."""
    merged: list[_Piece] = []
    for piece in pieces:
        if merged:
            last = merged[-1]
            gap = text[last.end : piece.start]
            roads = "road" in last.fields and "road" in piece.fields
            fits = piece.end - last.start <= MAX_ADDRESS_CHARS
            if fits and (gap in _MERGE_GAPS or (roads and gap in _ROAD_CONNECTORS)):
                fields = dict(piece.fields)
                if roads:
                    fields["cross_road"] = fields.pop("road")
                for key, value in fields.items():
                    last.fields.setdefault(key, value)
                if last.detail_start is None:
                    last.detail_start = piece.detail_start
                last.end = piece.end
                last.confidence = max(last.confidence, piece.confidence)
                continue
        merged.append(piece)
    return merged


@lru_cache(maxsize=1024)
def _jionlp_location(text: str) -> dict[str, Any]:
    """Province/city/county for addresses outside Shanghai (jionlp takes ~3 ms, so cached)."""
    try:
        parsed = _jionlp().parse_location(text)
    except Exception:  # jionlp's location parser is not robust against odd text
        return {}
    return {key: parsed.get(key) for key in ("province", "city", "county", "detail")}


def _address_value(text: str, piece: _Piece, lookup: bool) -> dict[str, Any]:
    """jionlp-shaped dict (province/city/county/detail) plus text and the parsed parts."""
    fields, span = piece.fields, text[piece.start : piece.end]
    detail_start = piece.start if piece.detail_start is None else piece.detail_start
    value: dict[str, Any] = {
        "text": span,
        "province": None,
        "city": fields.get("city"),
        "county": fields.get("county"),
        "detail": text[detail_start : piece.end],
    }
    if fields.get("county") or fields.get("city"):
        value["province"] = value["city"] = "上海市"
    if "admin" in fields and lookup:
        value.update({k: v for k, v in _jionlp_location(span).items() if v})
    value.update({k: v for k, v in fields.items() if k not in value})
    return value


def _addresses(text: str, now: datetime) -> Iterator[Entity]:
    """Shanghai-style addresses: district, road + number, 小区, metro line/station, landmarks."""
    pieces = [*_metro(text), *_known_places(text)]
    covered = bytearray(len(text) + 1)
    for piece in pieces:
        covered[piece.start : piece.end] = b"\x01" * (piece.end - piece.start)
    pieces.extend(_suffix_places(text, covered))
    lookups = 0
    for piece in _merge_pieces(text, _select_pieces(pieces, len(text))):
        confidence = piece.confidence * (0.9 if piece.detail_start is None else 1.0)
        lookups += "admin" in piece.fields
        value = _address_value(text, piece, lookup=lookups <= MAX_LOCATION_LOOKUPS)
        yield _entity(ADDRESS, value, piece.start, piece.end, confidence)


# ---------------------------------------------------------------------------------------------
# Orchestration

_Extractor = Callable[[str, datetime], Iterable[Entity]]
_EXTRACTORS: tuple[_Extractor, ...] = (
    _id_numbers,
    _phones,
    _plates,
    _addresses,
    _times,
    _people,
    _weapons,
    _injuries,
)
_RANK = {kind: rank for rank, kind in enumerate(PRIORITY)}


def _resolve_overlaps(candidates: list[Entity], length: int) -> list[Entity]:
    """Keep the higher-priority (then longer) entity wherever two spans overlap."""
    taken = bytearray(length + 1)
    kept: list[Entity] = []
    per_type: dict[str, int] = {}
    ordered = sorted(candidates, key=lambda e: (_RANK[e.entity], e.start - e.end, e.start))
    for entity in ordered:
        if entity.end <= entity.start or any(taken[entity.start : entity.end]):
            continue
        if per_type.get(entity.entity, 0) >= MAX_PER_TYPE:
            continue
        per_type[entity.entity] = per_type.get(entity.entity, 0) + 1
        taken[entity.start : entity.end] = b"\x01" * (entity.end - entity.start)
        kept.append(entity)
    return sorted(kept, key=lambda e: (e.start, e.end))


def as_shanghai(now: datetime) -> datetime:
    """Aware Shanghai time; a naive `now` is taken to be Shanghai wall time already."""
    if now.tzinfo is None:
        return now.replace(tzinfo=SHANGHAI)
    return now.astimezone(SHANGHAI)


def extract_entities(text: str, now: datetime) -> list[Entity]:
    """All rule-based entities in `text` (first MAX_CHARS characters), sorted by position.

    Never raises: an extractor that fails is logged and skipped.
    """
    if not isinstance(text, str) or not text:
        return []
    source = text[:MAX_CHARS]
    try:
        folded = fold_for_matching(source)
        now = as_shanghai(now)
    except Exception:
        logger.exception("entity extraction: cannot prepare text")
        return []
    candidates: list[Entity] = []
    for extractor in _EXTRACTORS:
        try:
            candidates.extend(extractor(folded, now))
        except Exception:
            logger.exception("entity extractor %s failed", extractor.__name__)
    kept = _resolve_overlaps(candidates, len(source))
    return [replace(e, text=source[e.start : e.end]) for e in kept]


def warm_up() -> None:
    """Load cue tables, jionlp and stdnum's region table now rather than on the first message."""
    _cues()
    extract_entities(
        "昨晚十点在徐汇区漕溪北路88号有两个人拿刀，身份证110105194912310021", datetime.now()
    )
    _jionlp().parse_location("上海市徐汇区漕溪北路88号")
