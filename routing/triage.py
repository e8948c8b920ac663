"""Where a report goes, and why: 110 police, the 12345 civic hotline, or a people's mediator.

`triage()` is pure: the text (already normalised by `nlu.text.normalise`: Simplified
Chinese, half-width ASCII), optional form slots and the NLU model's reading in, a
`Decision` with reasons a call-taker can read out. The model proposes a category; the
policy rules in `policy.yml` decide what data cannot: danger and aggression override
everything, negation ("没有人受伤") and hearsay ("电视里说") are discounted, past events are
not emergencies, and when unsure between police and anything else, police wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

POLICE, CIVIC, MEDIATION = "police", "12345", "mediation"
ROUTES = (POLICE, CIVIC, MEDIATION)
URGENCIES = ("immediate", "urgent", "normal", "low")
DEFAULT_POLICY = Path(__file__).with_name("policy.yml")

# Police categories that are violent by nature, and those that are urgent even when calm.
# Violence, threats or self-harm (what the 110 hand-off flags as violenceOrThreats and what
# no mediator takes): not a fire, a gas leak or a person stuck in a lift.
AGGRESSIVE_CATEGORIES = frozenset(
    {"robbery", "assault", "domestic_violence", "threat", "self_harm"}
)
URGENT_CATEGORIES = frozenset({"fraud", "missing_person", "traffic", "fire_rescue", "robbery"})


@dataclass(frozen=True)
class IntentScore:
    name: str
    confidence: float


@dataclass(frozen=True)
class ModelReading:
    """What the NLU model said about the text: intent ranking (best first) and entities."""

    ranking: tuple[IntentScore, ...] = ()
    entities: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_parse(cls, parse: Mapping[str, Any]) -> ModelReading:
        """From Rasa's parse data (`tracker.latest_message` or `Agent.parse_message`)."""
        ranking = parse.get("intent_ranking") or ([parse["intent"]] if parse.get("intent") else [])
        return cls(
            ranking=tuple(
                IntentScore(str(item.get("name")), float(item.get("confidence") or 0.0))
                for item in ranking
                if item.get("name")
            ),
            entities=tuple(parse.get("entities") or ()),
        )


@dataclass(frozen=True)
class Decision:
    route: str
    category: str
    aggression: bool
    urgency: str
    confidence: float
    call_110_now: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)
    # The one reason that decided the route (a rule before the model's score), told to the
    # citizen; empty for a decision rebuilt from stored slots.
    decided_by: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        return data


@dataclass(frozen=True)
class CueList:
    """Cue phrases matched longest-first, each either counted or negated."""

    pattern: re.Pattern[str] | None

    @classmethod
    def of(cls, phrases: Iterable[str]) -> CueList:
        ordered = sorted({p for p in phrases if p}, key=len, reverse=True)
        pattern = re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE) if ordered else None
        return cls(pattern)

    def find(self, text: str, negation: re.Pattern[str], gap: int) -> tuple[list[str], list[str]]:
        """(counted cues, negated cues) in order of appearance, without duplicates."""
        counted: list[str] = []
        negated: list[str] = []
        if self.pattern is None:
            return counted, negated
        for match in self.pattern.finditer(text):
            before = text[max(0, match.start() - gap - 4) : match.start()]
            is_negated = any(
                found.end() >= len(before) - gap for found in negation.finditer(before)
            )
            target = negated if is_negated else counted
            if match.group() not in target:
                target.append(match.group())
        return counted, negated


@dataclass(frozen=True)
class CuePair:
    """Two kinds of cue within `window` characters of each other, either order, unless the
    text names one of the `unless` words anywhere (then the pair means something else)."""

    first: CueList = CueList(None)
    second: CueList = CueList(None)
    window: int = 12
    unless: CueList = CueList(None)

    @classmethod
    def of(cls, spec: Mapping[str, Any], first: str, second: str) -> CuePair:
        return cls(
            CueList.of(spec.get(first) or ()),
            CueList.of(spec.get(second) or ()),
            int(spec.get("window", 12)),
            CueList.of(spec.get("unless") or ()),
        )

    def find(self, text: str) -> list[str]:
        """Each pair found, as "first…second"."""
        first, second = self.first.pattern, self.second.pattern
        found: list[str] = []
        if first is None or second is None:
            return found
        if self.unless.pattern is not None and self.unless.pattern.search(text):
            return found
        for thing in first.finditer(text):
            lo = max(0, thing.start() - self.window)
            near = text[lo : thing.end() + self.window]
            for act in second.finditer(near):
                cue = f"{thing.group()}…{act.group()}"
                if cue not in found:
                    found.append(cue)
        return found


@dataclass(frozen=True)
class SignalPair:
    """A CuePair that, found, is a police signal of one category, told with a reason; a
    `danger` pair (a person who may be lying inside, a body in the river) is an emergency."""

    cues: CuePair
    category: str
    reason: str
    danger: bool = False


# "<the courier side> 把 … <parcel> 拿走": they did it (快递员把快递拿回去了).
_BY_THEM = re.compile("■[^■]{0,4}[把将]")


@dataclass(frozen=True)
class TriagePolicy:
    labels: Mapping[str, Mapping[str, str]]
    route_labels: Mapping[str, str]
    intent_prefixes: Mapping[str, str]
    min_confidence: float
    min_model_confidence: float
    police_pull: float
    min_route_confidence: float
    signal_confidence: float
    negation: re.Pattern[str]
    negation_gap: int
    danger: CueList
    aggression: CueList
    injury: CueList
    threat: CueList
    police_signal: CueList
    immediate_categories: frozenset[str]
    ongoing: CueList
    past: CueList
    hearsay: CueList
    aggression_override: Mapping[str, str]
    keywords: Mapping[str, CueList]
    not_cues: re.Pattern[str] | None = None
    tool_weapons: frozenset[str] = frozenset()
    wielding: re.Pattern[str] | None = None
    wielding_window: int = 4
    injury_is_the_dispute: frozenset[str] = frozenset()
    dispute_symptoms: frozenset[str] = frozenset()
    danger_categories: Mapping[str, CueList] = field(default_factory=dict)
    keyword_category_below: float = 0.0
    exposure: CuePair = CuePair()
    getting_away: CuePair = CuePair()
    signal_pairs: Mapping[str, SignalPair] = field(default_factory=dict)
    gone_words: CueList = CueList(None)
    gone_things: CueList = CueList(None)
    gone_kind: Mapping[str, str] = field(default_factory=dict)
    gone_window: int = 6
    happening_now: CueList = CueList(None)
    found: CueList = CueList(None)
    taken_things: CueList = CueList(None)
    taken_words: CueList = CueList(None)
    taken_not_by: CueList = CueList(None)
    taken_window: int = 12
    unreachable_words: CueList = CueList(None)
    unreachable_businesses: CueList = CueList(None)
    unreachable_window: int = 8
    gone_people: CueList = CueList(None)

    @classmethod
    def from_file(cls, path: Path = DEFAULT_POLICY) -> TriagePolicy:
        return cls.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TriagePolicy:
        cues = data["cues"]
        negation_words = sorted(data["negation_words"], key=len, reverse=True)
        gone = data.get("gone") or {}
        taken = data.get("taken") or {}
        unreachable = data.get("unreachable") or {}
        danger_categories = data.get("danger_categories") or {}
        # What was gone, by kind: a thing is a theft, a document is lost property, a
        # person is a missing person, a parcel is the courier's business.
        gone_kind = {
            word: kind for kind, words in (gone.get("kinds") or {}).items() for word in words
        }
        return cls(
            labels={route: dict(cats) for route, cats in data["categories"].items()},
            route_labels={route: spec["label"] for route, spec in data["routes"].items()},
            intent_prefixes={
                spec["intent_prefix"]: route for route, spec in data["routes"].items()
            },
            min_confidence=float(data["thresholds"]["min_confidence"]),
            min_model_confidence=float(data["thresholds"]["min_model_confidence"]),
            police_pull=float(data["thresholds"]["police_pull"]),
            min_route_confidence=float(data["thresholds"]["min_route_confidence"]),
            signal_confidence=float(data["thresholds"].get("signal_confidence", 0.75)),
            negation=re.compile("|".join(map(re.escape, negation_words))),
            negation_gap=int(data.get("negation_gap", 1)),
            # A cue that names its emergency is a danger cue too: each is written once.
            danger=CueList.of(
                [*cues["danger"], *(w for ws in danger_categories.values() for w in ws)]
            ),
            aggression=CueList.of(cues["aggression"]),
            injury=CueList.of(cues["injury"]),
            threat=CueList.of(cues["threat"]),
            police_signal=CueList.of(cues["police_signal"]),
            immediate_categories=frozenset(data["immediate_categories"]),
            ongoing=CueList.of(cues["ongoing"]),
            happening_now=CueList.of(cues.get("happening_now") or []),
            found=CueList.of(cues.get("found") or []),
            past=CueList.of(cues["past"]),
            hearsay=CueList.of(cues["hearsay"]),
            aggression_override=dict(data["aggression_override"]),
            keywords={intent: CueList.of(words) for intent, words in data["keywords"].items()},
            not_cues=CueList.of(data.get("not_cues") or ()).pattern,
            tool_weapons=frozenset(data.get("tools", {}).get("weapons") or ()),
            wielding=CueList.of(data.get("tools", {}).get("wielded_by") or ()).pattern,
            wielding_window=int(data.get("tools", {}).get("window", 4)),
            injury_is_the_dispute=frozenset(data.get("injury_is_the_dispute") or ()),
            dispute_symptoms=frozenset(data.get("dispute_symptoms") or ()),
            keyword_category_below=float(data["thresholds"].get("keyword_category_below", 0.0)),
            danger_categories={
                category: CueList.of(words) for category, words in danger_categories.items()
            },
            exposure=CuePair.of(data.get("exposure") or {}, "private", "publish"),
            getting_away=CuePair.of(data.get("getting_away") or {}, "toward", "gone"),
            signal_pairs={
                name: SignalPair(
                    CuePair.of(spec, "first", "second"),
                    str(spec["category"]),
                    str(spec["reason"]),
                    bool(spec.get("danger", False)),
                )
                for name, spec in (data.get("signal_pairs") or {}).items()
            },
            gone_words=CueList.of(gone.get("words") or ()),
            gone_things=CueList.of(gone_kind),
            gone_kind=gone_kind,
            gone_window=int(gone.get("window", 6)),
            taken_things=CueList.of(taken.get("things") or ()),
            taken_words=CueList.of(taken.get("words") or ()),
            taken_not_by=CueList.of(taken.get("not_by") or ()),
            taken_window=int(taken.get("window", 12)),
            unreachable_words=CueList.of(unreachable.get("words") or ()),
            unreachable_businesses=CueList.of(unreachable.get("businesses") or ()),
            unreachable_window=int(unreachable.get("window", 8)),
            # 人 alone is no one in particular (房东人在国外).
            gone_people=CueList.of(
                word for word in (gone.get("kinds") or {}).get("person") or () if word != "人"
            ),
        )

    def route_of(self, intent: str) -> tuple[str, str] | None:
        """(route, category) for a report intent such as 'police_theft'; None otherwise."""
        for prefix, route in self.intent_prefixes.items():
            if intent.startswith(prefix):
                category = intent[len(prefix) :]
                if category in self.labels.get(route, {}):
                    return route, category
        return None

    def label(self, route: str, category: str) -> str:
        return self.labels.get(route, {}).get(category, category)

    def cues(self, cue_list: CueList, text: str) -> tuple[list[str], list[str]]:
        return cue_list.find(text, self.negation, self.negation_gap)

    def blank_not_cues(self, text: str) -> str:
        """The text with harmless look-alikes (打桩, 偷偷, 打不着火) blanked out, same length,
        so that no cue matches inside them; and 'cannot be reached' said of a business."""
        if self.not_cues is not None:
            text = self.not_cues.sub(lambda m: "□" * len(m.group()), text)
        return self.blank_unreachable_businesses(text)

    def blank_unreachable_businesses(self, text: str) -> str:
        """'Cannot be reached' said of a landlord, a shop or a gym owner who ran off (房东在国外
        联系不上, 健身房老板跑路了 找不到人) is a consumer or civic matter, not a missing
        person: the business named nearest before the word (within `unreachable_window`
        characters, no person named in between), or right after it (联系不上房东), unless
        a person is named right after it (公司里联系不上我妈)."""
        words, businesses = self.unreachable_words.pattern, self.unreachable_businesses.pattern
        if words is None or businesses is None:
            return text
        people = self.gone_people.pattern
        spans = []
        for word in words.finditer(text):
            before = text[max(0, word.start() - self.unreachable_window) : word.start()]
            named = [(m.end(), "business") for m in businesses.finditer(before)]
            if people is not None:
                named += [(m.end(), "person") for m in people.finditer(before)]
            after = text[word.end() : word.end() + 4]
            if people is not None and people.search(after):
                continue  # 联系不上我妈: the person said after it is the one missing
            if (named and max(named)[1] == "business") or businesses.match(after):
                spans.append(word.span())
        for start, end in spans:
            text = text[:start] + "□" * (end - start) + text[end:]
        return text

    def exposure_threats(self, text: str) -> list[str]:
        """Threats to put someone's private images or details where others see them
        (要把你洗澡的视频发到网上, 把她住址挂到群里)."""
        return self.exposure.find(text)

    def paired_signals(self, text: str) -> list[tuple[SignalPair, list[str]]]:
        """Police signals that take two cues near each other (a rotting smell and flies, a job
        and a fee paid up front), each with the cues found."""
        found = []
        for pair in self.signal_pairs.values():
            cues = pair.cues.find(text)
            if cues:
                found.append((pair, cues))
        return found

    def what_is_gone(self, text: str) -> set[str]:
        """The kinds of thing said to be gone (手机不见了 → thing, 孩子不见了 → person): for
        each 'gone' word, the nearest thing named within `gone_window` characters before
        it."""
        kinds: set[str] = set()
        if self.gone_words.pattern is None or self.gone_things.pattern is None:
            return kinds
        for gone in self.gone_words.pattern.finditer(text):
            before = text[max(0, gone.start() - self.gone_window) : gone.start()]
            named = list(self.gone_things.pattern.finditer(before))
            if named:
                kinds.add(self.gone_kind[named[-1].group()])
        return kinds

    def parcels_taken(self, text: str) -> list[str]:
        """A parcel and a taking word within `taken_window` characters, either order
        (快递都被一个老头拿走, 拿走了我的包裹), unless the courier side or the estate is named
        as the one taking it (快递被驿站拿回去, 快递员把快递拿走): someone took it, a theft."""
        things, words = self.taken_things.pattern, self.taken_words.pattern
        found: list[str] = []
        if things is None or words is None:
            return found
        if self.taken_not_by.pattern is not None:
            text = self.taken_not_by.pattern.sub(lambda m: "■" * len(m.group()), text)
        for thing in things.finditer(text):
            lo = max(0, thing.start() - self.taken_window)
            near = text[lo : thing.end() + self.taken_window]
            for act in words.finditer(near):
                start, end = sorted((thing.start(), lo + act.start()))
                if "■" in text[start:end] or _BY_THEM.search(text[max(0, start - 8) : start]):
                    continue
                cue = f"{thing.group()}…{act.group()}"
                if cue not in found:
                    found.append(cue)
        return found

    def is_idle_tool(self, text: str, entity: Mapping[str, Any]) -> bool:
        """A tool or building material nobody is holding (钢管掉下来, 钢筋被偷了): only a
        wielding word just before it (拿着, 手里, 抄起) makes it a weapon. Without a
        position the entity counts, to stay on the safe side."""
        if str(entity.get("value")) not in self.tool_weapons or self.wielding is None:
            return False
        start = entity.get("start")
        if not isinstance(start, int):
            return False
        before = text[max(0, start - self.wielding_window) : start]
        return self.wielding.search(before) is None


@cache
def default_policy() -> TriagePolicy:
    return TriagePolicy.from_file(DEFAULT_POLICY)


@dataclass(frozen=True)
class _Proposal:
    """A (route, category) someone proposed, and how sure they are."""

    route: str
    category: str
    confidence: float
    source: str  # "model" or "keywords"


def keyword_proposal(text: str, policy: TriagePolicy, route: str | None = None) -> _Proposal | None:
    """The keyword-only reading: most matched cue words wins, police first on ties; only
    `route`'s categories when given (which police category a police signal is)."""
    text = policy.blank_not_cues(text)
    best: tuple[int, int, str] | None = None
    for order, (intent, cue_list) in enumerate(policy.keywords.items()):
        if route is not None and (policy.route_of(intent) or ("",))[0] != route:
            continue
        hits, _ = policy.cues(cue_list, text)
        if hits and (best is None or len(hits) > best[0]):
            best = (len(hits), order, intent)
    if best is None:
        return None
    routed = policy.route_of(best[2])
    if routed is None:
        return None
    return _Proposal(routed[0], routed[1], min(0.5 + 0.1 * best[0], 0.8), "keywords")


def _model_proposal(reading: ModelReading | None, policy: TriagePolicy) -> _Proposal | None:
    """The model's likeliest report category, skipping greet / nlu_fallback / out_of_scope.

    Rasa's FallbackClassifier puts `nlu_fallback` on top of an unsure ranking; the report
    categories under it are still the model's best guess, with their own confidence.
    """
    if reading is None:
        return None
    for score in reading.ranking:
        routed = policy.route_of(score.name)
        if routed is not None:
            if score.confidence < policy.min_model_confidence:
                return None
            return _Proposal(routed[0], routed[1], score.confidence, "model")
    return None


def _police_mass(reading: ModelReading | None, policy: TriagePolicy) -> tuple[float, str | None]:
    """Total probability the model gives to police intents, and the likeliest of them."""
    if reading is None:
        return 0.0, None
    mass, best = 0.0, None
    for score in reading.ranking:
        routed = policy.route_of(score.name)
        if routed and routed[0] == POLICE:
            mass += score.confidence
            best = best or routed[1]
    return mass, best


def _entity_values(reading: ModelReading | None, name: str) -> list[str]:
    """Values of a rule-extracted entity: learned weapon/injury spans are too noisy to
    override a route on their own (DIET once tagged 牙齿 as an injury)."""
    return [str(e.get("value")) for e in _rule_entities(reading, name)]


def _blanked(cue_text: str, entity: Mapping[str, Any]) -> bool:
    """The entity overlaps a harmless look-alike that `not_cues` blanked out (去世了)."""
    start, end = entity.get("start"), entity.get("end")
    if not isinstance(start, int) or not isinstance(end, int):
        return False
    return "□" in cue_text[start:end]


def _rule_entities(reading: ModelReading | None, name: str) -> list[Mapping[str, Any]]:
    if reading is None:
        return []
    return [
        e
        for e in reading.entities
        if e.get("entity") == name and e.get("extractor") != "DIETClassifier"
    ]


def triage(
    text: str,
    slots: Mapping[str, Any] | None = None,
    reading: ModelReading | None = None,
    policy: TriagePolicy | None = None,
) -> Decision:
    """Decide the route for a report. Never raises on any text."""
    policy = policy or default_policy()
    slots = slots or {}
    text = (text or "").strip()
    reasons: list[str] = []
    cue_text = policy.blank_not_cues(text)

    danger, danger_negated = policy.cues(policy.danger, cue_text)
    aggression, aggression_negated = policy.cues(policy.aggression, cue_text)
    injury_cues, injury_negated = policy.cues(policy.injury, cue_text)
    threat, _ = policy.cues(policy.threat, cue_text)
    exposure = policy.exposure_threats(cue_text)
    if exposure:
        reasons.append("扬言公开隐私：" + "、".join(exposure[:2]))
        threat += [cue for cue in exposure if cue not in threat]
    paired = policy.paired_signals(cue_text)
    # A pair found is told by its own reason (冒充单位人员…), not by its bare cues.
    pair_reason = danger_pair_reason = ""
    for pair, cues in paired:
        reasons.append(f"{pair.reason}：" + "、".join(cues[:2]))
        pair_reason = pair_reason or reasons[-1]
        if pair.danger:
            danger_pair_reason = danger_pair_reason or reasons[-1]
            danger += [cue for cue in cues if cue not in danger]
    police_signal, _ = policy.cues(policy.police_signal, cue_text)
    taken = policy.parcels_taken(cue_text)
    police_signal += taken + [cue for _, cues in paired for cue in cues]
    ongoing, _ = policy.cues(policy.ongoing, cue_text)
    happening, _ = policy.cues(policy.happening_now, cue_text)
    happening += policy.getting_away.find(cue_text)
    past, _ = policy.cues(policy.past, cue_text)
    hearsay, _ = policy.cues(policy.hearsay, cue_text)
    weapons = [
        str(e.get("value"))
        for e in _rule_entities(reading, "weapon")
        if not policy.is_idle_tool(text, e) and not _blanked(cue_text, e)
    ]
    injuries = injury_cues + [
        str(e.get("value")) for e in _rule_entities(reading, "injury") if not _blanked(cue_text, e)
    ]
    if _entity_values(reading, "injury_negated"):
        injuries = []
    if slots.get("weapons"):
        weapons.append(str(slots["weapons"]))
    if slots.get("injured") or (slots.get("injured_count") or 0) > 0:
        injuries.append("有人受伤")
    if slots.get("ongoing") is True:
        ongoing.append("仍在发生")
    negated = [
        cue
        for cue in danger_negated + aggression_negated + injury_negated
        if cue not in danger + aggression + injury_cues
    ]
    ruled_out = ""
    if negated:
        exclusions = [f"没{cue}" if cue.startswith("有") else f"没有{cue}" for cue in negated]
        ruled_out = "已排除：" + "、".join(list(dict.fromkeys(exclusions))[:3])
        reasons.append(ruled_out)

    model = _model_proposal(reading, policy)
    keywords = keyword_proposal(text, policy)
    proposal = model or keywords
    if model is not None:
        reasons.append(
            f"模型判断：{policy.label(model.route, model.category)}（{model.confidence:.0%}）"
        )
    elif keywords is not None:
        reasons.append(f"关键词判断：{policy.label(keywords.route, keywords.category)}")
    proposal_reason = reasons[-1] if proposal is not None else ""

    harm_is_the_dispute = _injury_is_the_dispute(model, policy) and not (
        aggression or threat or weapons
    )
    symptoms = [cue for cue in danger if cue in policy.dispute_symptoms]
    if symptoms and harm_is_the_dispute and not (ongoing or happening):
        reasons.append(
            f"症状（{'、'.join(symptoms[:2])}）是{policy.label(model.route, model.category)}"
            "本身的争议，且已过去"
        )
        danger = [cue for cue in danger if cue not in symptoms]
    if injuries and harm_is_the_dispute:
        reasons.append(
            f"伤情（{'、'.join(dict.fromkeys(injuries[:2]))}）是"
            f"{policy.label(model.route, model.category)}本身的争议，未见暴力"
        )
        injuries = []
    violent_signals = list(
        dict.fromkeys(
            aggression + [cue for cue in threat if cue not in aggression] + weapons + injuries
        )
    )
    is_hearsay = bool(hearsay) and not ongoing
    if is_hearsay:
        reasons.append("转述或媒体内容（" + "、".join(hearsay) + "），未按紧急处理")
    past_only = bool(past) and not ongoing

    # The model's (or keywords') word decides unless a rule below does; a dispute stays with
    # its mediator because the violence it mentions was ruled out (没动手).
    decided_by = ruled_out or proposal_reason
    if danger and not is_hearsay:
        route = POLICE
        named = _danger_category(danger, policy)
        category = named or _police_category(proposal, keywords, threat, policy, paired)
        reasons.append("危险信号：" + "、".join(danger[:4]))
        decided_by = danger_pair_reason or reasons[-1]
    elif violent_signals and not is_hearsay:
        route = POLICE
        category = _police_category(proposal, keywords, threat, policy, paired)
        reasons.append("暴力/威胁信号：" + "、".join(dict.fromkeys(violent_signals[:4])))
        decided_by = reasons[-1]
        if proposal is not None and proposal.route == MEDIATION:
            reasons.append(f"{policy.label(MEDIATION, proposal.category)}涉及暴力或威胁，转为警情")
    elif proposal is not None and proposal.route == POLICE:
        route, category = POLICE, proposal.category
        decided_by = pair_reason or proposal_reason
    elif police_signal and not is_hearsay:
        route = POLICE
        category = _signal_category(taken, paired, keyword_proposal(text, policy, POLICE), threat)
        reasons.append("警情信号：" + "、".join(police_signal[:3]))
        decided_by = pair_reason or reasons[-1]
    elif proposal is not None:
        route, category = proposal.route, proposal.category
        mass, likeliest = _police_mass(reading, policy)
        unsure = proposal.confidence < policy.min_confidence
        police_words = keywords is not None and keywords.route == POLICE
        if unsure and (mass >= policy.police_pull or police_words):
            route = POLICE
            category = likeliest or (keywords.category if police_words else "other")
            reasons.append(f"把握不足（{proposal.confidence:.0%}），可能是警情，按110处理")
            decided_by = reasons[-1]
        elif proposal.confidence < policy.min_route_confidence and not (
            keywords is not None and keywords.route == proposal.route
        ):
            route, category = POLICE, (likeliest if mass >= policy.police_pull else None) or "other"
            reasons.append(f"模型把握过低（{proposal.confidence:.0%}），按110处理，由接警员核实")
            decided_by = reasons[-1]
    else:
        route, category = POLICE, "other"
        reasons.append("无法判断类别，按110警情处理，由接警员核实")
        decided_by = reasons[-1]

    if route == POLICE and model is not None and model.route == POLICE:
        corrected = _keyword_category(cue_text, category, model, keywords, policy)
        if corrected is not None:
            reasons.append(
                f"描述更符合{policy.label(POLICE, corrected)}（关键词），"
                f"不像{policy.label(POLICE, category)}"
            )
            category = corrected
    if route == POLICE and category == "missing_person":
        gone = policy.what_is_gone(cue_text)
        if gone and "person" not in gone and gone & set(policy.labels[POLICE]):
            corrected = "theft" if "theft" in gone else min(gone & set(policy.labels[POLICE]))
            reasons.append(f"不见的是东西不是人：按{policy.label(POLICE, corrected)}处理")
            category = corrected
    if route == POLICE and category in ("missing_person", "self_harm"):
        # Someone who went missing yesterday is still missing today, until found; someone
        # who said goodbye last night (之前有抑郁症, 昨天说再见了) is at risk until found safe.
        found, _ = policy.cues(policy.found, cue_text)
        past_only = bool(found)
        if found:
            past = found
    said_police = proposal is not None and proposal.route == POLICE and route == POLICE
    aggressive = bool((violent_signals or _violent_dangers(danger, policy)) and not is_hearsay) or (
        said_police and category in AGGRESSIVE_CATEGORIES
    )
    call_110_now = (
        route == POLICE
        and not is_hearsay
        and not past_only
        and (
            bool(danger)
            or (aggressive and (bool(ongoing) or bool(weapons) or category != "threat"))
            or (said_police and category in policy.immediate_categories)
            or bool(happening)
        )
    )
    if past_only and route == POLICE:
        reasons.append("事情已过去（" + "、".join(past[:2]) + "），非正在发生")
    if call_110_now:
        reasons.append("可能危及人身安全：请能通话时立即拨打110")

    urgency = _urgency(route, category, aggressive, call_110_now, bool(ongoing), past_only)
    confidence = _confidence(route, proposal, danger, violent_signals, police_signal, policy)
    reasons.insert(0, f"去向：{policy.route_labels[route]}·{policy.label(route, category)}")
    return Decision(
        route=route,
        category=category,
        aggression=aggressive,
        urgency=urgency,
        confidence=round(confidence, 3),
        call_110_now=call_110_now,
        reasons=tuple(reasons),
        decided_by=decided_by,
    )


def _injury_is_the_dispute(model: _Proposal | None, policy: TriagePolicy) -> bool:
    """The model is sure this is a dispute about harm itself (e.g. a medical dispute)."""
    return (
        model is not None
        and model.route == MEDIATION
        and model.category in policy.injury_is_the_dispute
        and model.confidence >= policy.min_confidence
    )


def _keyword_category(
    cue_text: str,
    category: str,
    model: _Proposal,
    keywords: _Proposal | None,
    policy: TriagePolicy,
) -> str | None:
    """A police category the keywords clearly name instead of the model's unsure one: the
    model's category has none of its own cue words and another police category has some."""
    if model.category != category or model.confidence >= policy.keyword_category_below:
        return None
    if keywords is None or keywords.route != POLICE or keywords.category == category:
        return None
    own = policy.keywords.get(f"police_{category}")
    if own is not None and policy.cues(own, cue_text)[0]:
        return None
    return keywords.category


def _violent_dangers(danger: Sequence[str], policy: TriagePolicy) -> list[str]:
    """Danger cues that are not the fire brigade's (持刀, 掐脖子, 要跳楼; not 冒烟, 困在电梯)."""
    return [cue for cue in danger if _danger_category([cue], policy) != "fire_rescue"]


def _danger_category(danger: Sequence[str], policy: TriagePolicy) -> str | None:
    """The emergency the danger cues name, when they name exactly one (冒黑烟 is a fire)."""
    named = {
        category
        for category, cue_list in policy.danger_categories.items()
        if any(cue_list.pattern is not None and cue_list.pattern.fullmatch(cue) for cue in danger)
    }
    return named.pop() if len(named) == 1 else None


def _police_category(
    proposal: _Proposal | None,
    keywords: _Proposal | None,
    threat: Sequence[str],
    policy: TriagePolicy,
    paired: Sequence[tuple[SignalPair, list[str]]] = (),
) -> str:
    """The police category when rules force police: the model's if it said police, else the
    one a two-cue signal names (a child's head caught in railings is a rescue)."""
    if proposal is not None and proposal.route == POLICE:
        return proposal.category
    if paired:
        return paired[0][0].category
    if threat:
        return "threat"
    if proposal is not None and proposal.route == MEDIATION:
        return policy.aggression_override.get(
            proposal.category, policy.aggression_override["default"]
        )
    if keywords is not None and keywords.route == POLICE:
        return keywords.category
    return policy.aggression_override["default"]


def _signal_category(
    taken: Sequence[str],
    paired: Sequence[tuple[SignalPair, list[str]]],
    keywords: _Proposal | None,
    threat: Sequence[str],
) -> str:
    """The police category a police signal alone implies: no model or violence said police."""
    if taken:
        return "theft"
    if paired:
        return paired[0][0].category
    if keywords is not None and keywords.route == POLICE:
        return keywords.category
    if threat:
        return "threat"
    return "other"


def _urgency(
    route: str, category: str, aggressive: bool, call_now: bool, ongoing: bool, past_only: bool
) -> str:
    if call_now:
        return "immediate"
    if route == POLICE:
        if (aggressive or ongoing or category in URGENT_CATEGORIES) and not past_only:
            return "urgent"
        return "normal"
    return "normal" if route == MEDIATION else "low"


def _confidence(
    route: str,
    proposal: _Proposal | None,
    danger: Sequence[str],
    violent: Sequence[str],
    signals: Sequence[str],
    policy: TriagePolicy,
) -> float:
    """How sure the route is (not the category): rule evidence raises it for police. A
    police signal overriding a confident civic reading is not "4% sure"."""
    base = proposal.confidence if proposal is not None else 0.3
    if route == POLICE and (danger or violent):
        return max(base, 0.9)
    if route == POLICE and signals:
        agrees = proposal is not None and proposal.route == POLICE
        return max(base if agrees else 1.0 - base, policy.signal_confidence)
    if proposal is not None and proposal.route != route:
        return 1.0 - base  # pulled to police against the proposal
    return base
