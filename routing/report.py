"""The incident report as data: which facts a route needs, how an answer is read, how
complete a report is, and what the confirmation card says. Pure: no Rasa, no database.

An answer is kept as a small JSON-able dict so it can live in a Rasa slot and in the
sealed incident details alike: `{"answer": "given"|"yes"|"no"|"unknown", "text": ...}`
plus facts of its kind (`iso` for a time, `lat`/`lng` for a shared location, `count`
for injuries, `kinds` for weapons).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from routing.triage import POLICE, Decision, default_policy, triage

DEFAULT_FILE = Path(__file__).with_name("report.yml")
SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_ANSWER_CHARS = 500

YES, NO, UNKNOWN, GIVEN = "yes", "no", "unknown", "given"

YES_NO_FIELDS = frozenset({"ongoing", "reporter_safe", "callback", "contact_consent", "aggression"})
FREE_TEXT_FIELDS = frozenset({"description", "suspects", "vehicle", "other_party", "contact_time"})


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    label_en: str
    weight: float


@dataclass(frozen=True)
class ReportPolicy:
    fields: Mapping[str, FieldSpec]
    routes: Mapping[str, Mapping[str, Any]]
    unknown_credit: float

    @classmethod
    def from_file(cls, path: Path = DEFAULT_FILE) -> ReportPolicy:
        return cls.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportPolicy:
        fields = {
            name: FieldSpec(name, spec["label"], spec["label_en"], float(spec["weight"]))
            for name, spec in data["fields"].items()
        }
        for route in data["routes"].values():
            lists = [
                route["default"],
                route.get("emergency", []),
                *route.get("categories", {}).values(),
            ]
            unknown = {f for names in lists for f in names} - set(fields)
            if unknown:
                raise ValueError(f"report.yml names unknown fields: {sorted(unknown)}")
        return cls(
            fields=fields,
            routes=data["routes"],
            unknown_credit=float(data["unknown_credit"]),
        )

    def questions(self, route: str, category: str, emergency: bool = False) -> list[str]:
        """The facts to ask for after the description, in order."""
        spec = self.routes.get(route) or self.routes[POLICE]
        if emergency and "emergency" in spec:
            return list(spec["emergency"])
        return list(spec.get("categories", {}).get(category, spec["default"]))

    def label(self, field: str, language: str = "zh") -> str:
        spec = self.fields[field]
        return spec.label_en if language == "en" else spec.label


@lru_cache(maxsize=1)
def default_report_policy() -> ReportPolicy:
    return ReportPolicy.from_file()


# --- reading answers -------------------------------------------------------------------

_UNKNOWN = re.compile(
    r"^(我?(也)?(不清楚|不知道|不确定|说不清|没看清|记不清|忘了|不记得)|不晓得|不懂|"
    r"not sure|unknown|no idea|i don'?t know|dunno|don'?t know)"
)
_NO = re.compile(
    r"^(没有|没|无|否|不是|不用|不要|不行|不可以|不方便|不同意|不安全|不在|不会|结束|已经(结束|走|跑|停|没|不)|停了|走了|跑了|"
    r"没事|没人|没动手|no\b|nope|not\b|n$)"
)
_YES = re.compile(
    r"^(是|对|有|在|还在|正在|嗯|恩|好|可以|行|要|同意|安全|方便|能|ok|okay|yes|yeah|yep|y$|sure)"
)
_TRIM = re.compile(r"^[\s,.!?，。！？、~～…]+|[\s,.!?，。！？、~～…]+$")
_MEANINGFUL = re.compile(r"[0-9A-Za-z\u4e00-\u9fff]")
_DIGITS = re.compile(r"\d+")
_CN_COUNT = {
    "一": 1,
    "两": 2,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}


_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_HAN = re.compile(r"[\u4e00-\u9fff]")

HINTS = {
    "no_text": (
        "没看到文字内容，请用文字回答，或点下面的按钮。",
        "I could not read that. Please answer in words or tap a button.",
    ),
    "yes_no": ("请点下面的按钮，或回答“是”或“否”。", "Please tap a button, or answer yes or no."),
    "location": (
        "请说说附近的路名、门牌、小区、店名、地标或地铁站。",
        "Please name a nearby street, building, shop, landmark or metro station.",
    ),
    "description": (
        "请简单说说发生了什么，几个字也可以。",
        "Please say briefly what happened, a few words are enough.",
    ),
    "location_not_time": (
        "这好像是时间。请告诉我地点：路名门牌、小区、店名、地标或地铁站。",
        "That sounds like a time. Where is it: a street, building, shop, landmark or station?",
    ),
    "contact_time": (
        "这好像是地址。请告诉我什么时间方便联系您，比如“工作日晚上”或“随时”。",
        "That sounds like an address. When may the mediator call you, e.g. weekday evenings?",
    ),
}
# Answers to the wrong question, caught once: a time given for "where", an address for
# "when may we call". Words that make a place or a time plausible keep the answer.
_PLACE_WORDS = re.compile(
    r"[路街道号弄巷村镇区县楼幢栋室门站场园院校店家厂口桥江河湖山湾岛]"
    r"|附近|对面|旁边|地铁|小区|大厦|中心|市场|公司|单位|商场|超市|酒店|医院|学校"
)
_TIME_WORDS = re.compile(
    r"[点时早晚午天周]|上午|下午|晚上|白天|随时|工作日|周末|现在|马上|以后|之前|都行|都可以"
)


def language_of(text: str, *, min_words: int = 1) -> str | None:
    """English ("en") for foreign residents, Chinese ("zh"), or None for neither (digits,
    emoji): then keep the language already in use. Mid-report answers ask for more English
    words, so a place name such as "IFC mall" does not switch a Chinese speaker to English.
    """
    if _HAN.search(text or ""):
        return "zh"
    words = _LATIN_WORD.findall(text or "")
    return "en" if len(words) >= min_words and sum(map(len, words)) >= 4 else None


def hint(key: str, language: str = "zh") -> str:
    zh, en = HINTS[key]
    return en if language == "en" else zh


def clean(text: str) -> str:
    return _TRIM.sub("", text or "").strip()


def is_meaningful(text: str) -> bool:
    """Emoji-only, punctuation-only and empty answers carry nothing to keep."""
    return bool(_MEANINGFUL.search(text or ""))


def yes_no(text: str) -> str | None:
    """`yes`, `no`, `unknown` or None for a typed answer to a closed question."""
    folded = clean(text).lower()
    if not folded:
        return None
    if _UNKNOWN.match(folded):
        return UNKNOWN
    if _NO.match(folded):
        return NO
    if _YES.match(folded):
        return YES
    return None


@dataclass(frozen=True)
class Reading:
    """What an answer gave: a value to keep, or a hint saying what we need instead."""

    value: dict[str, Any] | None = None
    hint: str | None = None


def _entities(entities: Iterable[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [e for e in entities if e.get("entity") == name]


def _given(text: str, **facts: Any) -> dict[str, Any]:
    return {"answer": GIVEN, "text": text[:MAX_ANSWER_CHARS], **facts}


def _count(text: str, entities: Sequence[Mapping[str, Any]]) -> int | None:
    for entity in _entities(entities, "people_count"):
        if isinstance(entity.get("value"), int):
            return int(entity["value"])
    digits = _DIGITS.search(text)
    if digits:
        return int(digits.group())
    for char, number in _CN_COUNT.items():
        if re.search(f"{char}[个位名人]", text):
            return number
    return None


def read_answer(
    field: str,
    text: str,
    entities: Sequence[Mapping[str, Any]] = (),
    *,
    button: str | None = None,
    location: Mapping[str, Any] | None = None,
    failures: int = 0,
    language: str = "zh",
    now: datetime | None = None,
) -> Reading:
    """Read the citizen's answer to the question about `field`.

    `button` is the answer a quick-reply button carried (`yes`, `no`, `unknown`, or a
    word); `location` a shared map point (lat, lng, label). `failures` is how many answers
    to this question could not be read so far: an unclear location is accepted as unknown
    the second time, so a report is never stuck on one fact.
    """
    text = clean(text)
    if button in (YES, NO, UNKNOWN):
        return _closed(field, button, text)
    if field == "time" and button == "now":
        moment = (now or datetime.now(SHANGHAI)).astimezone(SHANGHAI)
        return Reading(_given("刚才", iso=moment.isoformat(timespec="seconds")))
    if button:
        text = clean(button)
    if field == "location" and location:
        return Reading(_location_from_share(location))
    if not is_meaningful(text):
        return Reading(hint=hint("no_text", language))
    said = yes_no(text)
    if said == UNKNOWN and len(text) <= 12:
        if field in ("location", "description") and failures == 0:
            return Reading(hint=hint(field, language))
        return Reading({"answer": UNKNOWN, "text": text})
    if field in YES_NO_FIELDS:
        if said in (YES, NO):
            return _closed(field, said, text)
        return Reading(hint=hint("yes_no", language))
    if field == "injured":
        return Reading(_injured(text, entities, said))
    if field == "weapons":
        return Reading(_weapons(text, entities, said))
    if field == "time":
        return Reading(_time(text, entities))
    if field == "location":
        if failures == 0 and _time_not_place(text, entities):
            return Reading(hint=hint("location_not_time", language))
        return Reading(_location(text, entities))
    if field == "contact_time" and failures == 0 and _place_not_time(text, entities):
        return Reading(hint=hint("contact_time", language))
    if field in ("suspects", "vehicle") and said == NO and len(text) <= 8:
        return Reading({"answer": NO, "text": text})
    if field == "vehicle":
        plates = [str(e["value"]) for e in _entities(entities, "vehicle_plate")]
        return Reading(_given(text, plates=plates))
    return Reading(_given(text))


def _closed(field: str, answer: str, text: str) -> Reading:
    value: dict[str, Any] = {"answer": answer, "text": text}
    if field == "injured" and answer == NO:
        value["count"] = 0
    return Reading(value)


def _injured(text: str, entities: Sequence[Mapping[str, Any]], said: str | None) -> dict[str, Any]:
    if _entities(entities, "injury_negated") or (said == NO and len(text) <= 8):
        return {"answer": NO, "text": text, "count": 0}
    count = _count(text, entities)
    if said == YES or count or _entities(entities, "injury"):
        return {"answer": YES, "text": text[:MAX_ANSWER_CHARS], "count": count}
    return _given(text, count=count)


def _weapons(text: str, entities: Sequence[Mapping[str, Any]], said: str | None) -> dict[str, Any]:
    kinds = [str(e["value"]) for e in _entities(entities, "weapon")]
    if kinds:
        return {"answer": YES, "text": text[:MAX_ANSWER_CHARS], "kinds": kinds}
    if _entities(entities, "weapon_negated") or (said == NO and len(text) <= 8):
        return {"answer": NO, "text": text, "kinds": []}
    if said == YES:
        return {"answer": YES, "text": text, "kinds": []}
    return _given(text, kinds=[])


def _time(text: str, entities: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    times = _entities(entities, "time")
    iso = str(times[0]["value"]) if times else None
    return _given(text, iso=iso)


def _time_not_place(text: str, entities: Sequence[Mapping[str, Any]]) -> bool:
    return bool(
        _entities(entities, "time")
        and not _entities(entities, "address")
        and not _PLACE_WORDS.search(text)
    )


def _place_not_time(text: str, entities: Sequence[Mapping[str, Any]]) -> bool:
    return bool(
        _entities(entities, "address")
        and not _entities(entities, "time")
        and not _TIME_WORDS.search(text)
    )


def _location(text: str, entities: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    address = next((e["value"] for e in _entities(entities, "address")), None)
    district = address.get("county") if isinstance(address, Mapping) else None
    return _given(text, district=district)


def _location_from_share(share: Mapping[str, Any]) -> dict[str, Any]:
    label = clean(str(share.get("label") or ""))[:200]
    lat, lng = float(share["lat"]), float(share["lng"])
    text = label or f"定位 {lat:.5f},{lng:.5f}"
    return {"answer": GIVEN, "text": text, "lat": lat, "lng": lng, "label": label}


def valid_share(share: Mapping[str, Any] | None) -> bool:
    """A shared map point we can use: numbers in range (WGS-84/GCJ-02 alike)."""
    if not share:
        return False
    try:
        lat, lng = float(share["lat"]), float(share["lng"])
    except (KeyError, TypeError, ValueError):
        return False
    return -90 <= lat <= 90 and -180 <= lng <= 180 and not (lat == 0 and lng == 0)


def prefill(text: str, entities: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Facts the first description already gives (place, time, weapons, injuries, plates),
    so the form does not ask for them again; the summary card still shows them to confirm."""

    def span(entity: Mapping[str, Any]) -> str:
        start, end = entity.get("start"), entity.get("end")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
            return text[start:end]
        return str(entity.get("value"))

    facts: dict[str, dict[str, Any]] = {}
    address = next(iter(_entities(entities, "address")), None)
    if address is not None and isinstance(address.get("value"), Mapping):
        place = address["value"]
        facts["location"] = _given(
            str(place.get("text") or span(address)), district=place.get("county")
        )
    time = next(iter(_entities(entities, "time")), None)
    if time is not None:
        facts["time"] = _given(span(time), iso=str(time.get("value")))
    kinds = [str(e.get("value")) for e in _entities(entities, "weapon")]
    if kinds:
        facts["weapons"] = {"answer": YES, "text": "、".join(kinds), "kinds": kinds}
    elif _entities(entities, "weapon_negated"):
        facts["weapons"] = {"answer": NO, "text": "没有", "kinds": []}
    if _entities(entities, "injury_negated"):
        facts["injured"] = {"answer": NO, "text": "没有人受伤", "count": 0}
    elif _entities(entities, "injury"):
        injuries = [span(e) for e in _entities(entities, "injury")]
        facts["injured"] = {"answer": YES, "text": "、".join(injuries), "count": None}
    plates = [str(e.get("value")) for e in _entities(entities, "vehicle_plate")]
    if plates:
        facts["vehicle"] = _given("、".join(plates), plates=plates)
    return facts


# --- corrections -----------------------------------------------------------------------

_CORRECTION_CUES: dict[str, tuple[str, ...]] = {
    "location": ("地址", "地点", "位置", "地方"),
    "time": ("时间",),
    "injured": ("受伤", "伤者"),
    "weapons": ("凶器", "武器"),
    "suspects": ("嫌疑人", "对方长相", "对方情况"),
    "vehicle": ("车牌", "车辆"),
    "other_party": ("对方是",),
    "contact_time": ("联系时间",),
    "description": ("情况", "经过"),
}
_CORRECTION = re.compile(
    r"^(?P<head>.{0,12}?)(?P<verb>不对(?!劲)|错了|说错了?|写错了?|搞错了?|有误|要改|改一下|更正)[，,。:： ]*"
    r"(应该是|其实是|实际是|改成|改为|是)?[，,:： ]*(?P<rest>.*)$"
)
_SLIP = ("说错", "写错", "搞错")  # "刚才说错了" names no fact; "不对" alone is a plain "no"


@dataclass(frozen=True)
class Correction:
    field: str | None  # None: the citizen said something was wrong but not which fact
    text: str


def find_correction(text: str) -> Correction | None:
    """ "地址不对，是南京东路100号" → (location, 南京东路100号); "刚才说错了" → (None, "")."""
    match = _CORRECTION.match(clean(text))
    if not match:
        return None
    head, rest = match.group("head"), clean(match.group("rest"))
    for field, cues in _CORRECTION_CUES.items():
        if any(cue in head for cue in cues):
            return Correction(field, rest)
    slip = match.group("verb").startswith(_SLIP)
    if slip and head in ("", "刚才", "我刚才", "刚刚", "我", "我刚刚"):
        return Correction(None, rest)
    return None


# --- completeness, escalation, summary -------------------------------------------------


@dataclass(frozen=True)
class Completeness:
    score: float
    missing: tuple[str, ...]

    def missing_labels(self, policy: ReportPolicy, language: str = "zh") -> list[str]:
        return [policy.label(f, language) for f in self.missing]


def completeness(
    answers: Mapping[str, Any],
    route: str,
    category: str,
    emergency: bool = False,
    policy: ReportPolicy | None = None,
) -> Completeness:
    """Weighted share of the facts this route needs; "不清楚" earns partial credit."""
    policy = policy or default_report_policy()
    needed = ["description", *policy.questions(route, category, emergency)]
    total = sum(policy.fields[f].weight for f in needed)
    got, missing = 0.0, []
    for name in needed:
        answer = answers.get(name)
        weight = policy.fields[name].weight
        if not answer:
            missing.append(name)
        elif answer.get("answer") == UNKNOWN:
            got += weight * policy.unknown_credit
            missing.append(name)
        else:
            got += weight
    return Completeness(round(got / total, 3) if total else 1.0, tuple(missing))


def answer_signals(answers: Mapping[str, Any]) -> dict[str, Any]:
    """The answers triage listens to: weapons, injuries, whether it is still going on."""
    weapons = answers.get("weapons") or {}
    injured = answers.get("injured") or {}
    ongoing = answers.get("ongoing") or {}
    signals: dict[str, Any] = {}
    if weapons.get("answer") == YES:
        signals["weapons"] = "、".join(weapons.get("kinds") or []) or "有凶器"
    if injured.get("answer") == YES:
        signals["injured"] = True
        signals["injured_count"] = injured.get("count") or 0
    if ongoing.get("answer") == YES:
        signals["ongoing"] = True
    return signals


@dataclass(frozen=True)
class Escalation:
    """How a later answer changes the report: never downwards."""

    route: str
    category: str
    urgency: str
    call_110_now: bool
    reasons: tuple[str, ...]
    became_police: bool
    became_emergency: bool


_URGENCY_RANK = {"low": 0, "normal": 1, "urgent": 2, "immediate": 3}


def escalate(
    current: Decision,
    answer_text: str,
    answers: Mapping[str, Any],
) -> Escalation:
    """Re-read a report after a new answer: danger or violence moves it to police at once.

    Only ever raises the stakes: a calm later answer never takes a report away from 110.
    """
    later = triage(answer_text, slots=answer_signals(answers))
    aggression = answers.get("aggression") or {}
    violent = later.aggression or aggression.get("answer") == YES or later.call_110_now
    route, category = current.route, current.category
    reasons = list(current.reasons)
    if route != POLICE and violent:
        route = POLICE
        override = default_policy().aggression_override
        category = (
            later.category
            if later.route == POLICE and later.category != "other"
            else override.get(category, override["default"])
        )
        reasons.append("补充情况涉及暴力或威胁，转为110警情")
    call_now = current.call_110_now or (route == POLICE and later.call_110_now)
    if (
        route == POLICE
        and answer_signals(answers).get("ongoing")
        and ("weapons" in answer_signals(answers) or "injured" in answer_signals(answers))
    ):
        call_now = True
    if call_now and not current.call_110_now:
        reasons.append("补充情况显示正在危及人身安全")
    urgency = max(
        (current.urgency, "immediate" if call_now else later.urgency if route == POLICE else "low"),
        key=lambda u: _URGENCY_RANK.get(u, 1),
    )
    if route == POLICE and urgency == "low":
        urgency = "normal"
    return Escalation(
        route=route,
        category=category,
        urgency=urgency,
        call_110_now=call_now,
        reasons=tuple(dict.fromkeys(reasons)),
        became_police=route == POLICE and current.route != POLICE,
        became_emergency=call_now and not current.call_110_now,
    )


def display_time(iso: str | None) -> str | None:
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso).astimezone(SHANGHAI)
    except ValueError:
        return None
    return f"{moment.month}月{moment.day}日 {moment:%H:%M}"


_YES_NO_TEXT_EN = {
    "ongoing": {YES: "still happening", NO: "over"},
    "reporter_safe": {YES: "safe", NO: "not safe"},
    "callback": {YES: "may phone", NO: "text only"},
    "contact_consent": {YES: "agreed", NO: "not agreed"},
    "aggression": {YES: "violence or threats", NO: "none"},
}
_WORDS_EN = {"未填": "not given", "不清楚": "not sure", "没有": "none", "有": "yes"}
_YES_NO_TEXT = {
    "ongoing": {YES: "还在发生", NO: "已结束"},
    "reporter_safe": {YES: "安全", NO: "不安全"},
    "callback": {YES: "可以回电", NO: "只发文字，不便接听"},
    "contact_consent": {YES: "同意联系", NO: "不同意联系"},
    "aggression": {YES: "有动手或威胁", NO: "没有"},
}


def display_answer(field: str, answer: Mapping[str, Any] | None, language: str = "zh") -> str:
    """One fact as a call-taker or the citizen reads it on the summary card."""
    if language == "en":
        kind = (answer or {}).get("answer")
        if field in _YES_NO_TEXT_EN and kind in (YES, NO):
            return _YES_NO_TEXT_EN[field][kind]
        if field == "injured" and kind in (YES, NO):
            count = (answer or {}).get("count")
            return "nobody hurt" if kind == NO else f"{count} hurt" if count else "someone hurt"
        if field == "time" and (answer or {}).get("iso"):
            try:
                moment = datetime.fromisoformat(str(answer["iso"])).astimezone(SHANGHAI)
                return f"{moment:%d %b %H:%M}"
            except ValueError:
                pass
        shown = display_answer(field, answer)
        return _WORDS_EN.get(shown, shown)
    if not answer:
        return "未填"
    kind = answer.get("answer")
    if kind == UNKNOWN:
        return "不清楚"
    if field in _YES_NO_TEXT and kind in (YES, NO):
        return _YES_NO_TEXT[field][kind]
    if field == "injured":
        if kind == NO:
            return "无人受伤"
        count = answer.get("count")
        return f"{count}人受伤" if count else "有人受伤"
    if field == "weapons":
        if kind == NO:
            return "没有"
        kinds = answer.get("kinds") or []
        return "有：" + "、".join(kinds) if kinds else "有"
    if field in ("suspects", "vehicle") and kind == NO:
        return "没有"
    if field == "time":
        shown = display_time(answer.get("iso"))
        text = str(answer.get("text") or "")
        return f"{shown}（{text}）" if shown and text and text not in shown else shown or text
    text = str(answer.get("text") or "")
    return text if len(text) <= 40 else text[:39] + "…"


def summary_lines(
    answers: Mapping[str, Any],
    route: str,
    category: str,
    emergency: bool = False,
    policy: ReportPolicy | None = None,
    language: str = "zh",
) -> list[str]:
    """The confirmation card, one fact a line, in the order they were asked."""
    policy = policy or default_report_policy()
    fields = ["description", *policy.questions(route, category, emergency)]
    colon = ": " if language == "en" else "："
    return [
        f"{policy.label(f, language)}{colon}{display_answer(f, answers.get(f), language)}"
        for f in fields
    ]
