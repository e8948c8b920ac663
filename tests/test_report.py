"""The incident report as pure data: questions per route, reading answers, completeness,
escalation on danger, corrections and the summary card."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nlu.entities import extract_entities
from routing.report import (
    NO,
    UNKNOWN,
    YES,
    ReportPolicy,
    completeness,
    default_report_policy,
    display_answer,
    escalate,
    find_correction,
    language_of,
    prefill,
    read_answer,
    summary_lines,
    valid_share,
    yes_no,
)
from routing.triage import Decision

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
POLICY = default_report_policy()


def entities(text: str) -> list[dict]:
    return [
        {"entity": e.entity, "value": e.value, "start": e.start, "end": e.end}
        for e in extract_entities(text, NOW)
    ]


def read(field: str, text: str, **kwargs):  # noqa: ANN003, ANN201
    return read_answer(field, text, entities(text), **kwargs)


def decision(route: str, category: str, *, call_now: bool = False, urgency: str = "normal"):  # noqa: ANN201
    return Decision(route, category, False, urgency, 0.8, call_now, ("去向",))


# --- questions per route ----------------------------------------------------------------


def test_emergency_asks_where_first_then_safety() -> None:
    questions = POLICY.questions("police", "assault", emergency=True)
    assert questions[:2] == ["location", "reporter_safe"]


@pytest.mark.parametrize(
    ("route", "category", "must", "never"),
    [
        ("police", "theft", {"location", "time", "callback"}, {"contact_consent"}),
        ("police", "traffic", {"vehicle", "injured"}, {"other_party"}),
        ("12345", "property", {"location", "contact_consent"}, {"weapons", "injured"}),
        ("mediation", "neighbor", {"other_party", "aggression", "contact_time"}, {"weapons"}),
    ],
)
def test_each_route_asks_only_what_it_needs(route, category, must, never) -> None:  # noqa: ANN001
    questions = set(POLICY.questions(route, category))
    assert must <= questions
    assert not (never & questions)


def test_unknown_category_falls_back_to_the_route_default() -> None:
    assert POLICY.questions("police", "no_such") == POLICY.questions("police", "other")
    assert POLICY.questions("nowhere", "x") == POLICY.questions("police", "other")


def test_policy_file_naming_an_unknown_field_is_refused() -> None:
    data = {
        "fields": {"description": {"label": "a", "label_en": "a", "weight": 1}},
        "routes": {"police": {"default": ["location"]}},
        "unknown_credit": 0.5,
    }
    with pytest.raises(ValueError, match="location"):
        ReportPolicy.from_dict(data)


# --- reading answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("是的", YES),
        ("还在", YES),
        ("嗯", YES),
        ("yes", YES),
        ("没有", NO),
        ("不是", NO),
        ("已经走了", NO),
        ("No", NO),
        ("不知道", UNKNOWN),
        ("没看清", UNKNOWN),
        ("not sure", UNKNOWN),
        ("南京东路", None),
        ("", None),
    ],
)
def test_yes_no(text: str, expected: str | None) -> None:
    assert yes_no(text) == expected


def test_already_fighting_is_not_read_as_over() -> None:
    assert yes_no("已经打起来了") != NO


def test_buttons_answer_closed_questions() -> None:
    assert read_answer("ongoing", "", button=YES).value["answer"] == YES
    assert read_answer("injured", "", button=NO).value == {"answer": NO, "text": "", "count": 0}
    assert read_answer("callback", "", button=NO).value["answer"] == NO


@pytest.mark.parametrize("text", ["", "   ", "😭😭😭", "？？？！！", "。。。"])
def test_empty_emoji_or_punctuation_gets_a_hint_not_a_value(text: str) -> None:
    reading = read_answer("location", text)
    assert reading.value is None and "文字" in reading.hint


def test_location_text_keeps_the_district() -> None:
    value = read("location", "浦东新区世纪大道100号").value
    assert value["answer"] == "given" and value["district"] == "浦东新区"
    assert value["text"] == "浦东新区世纪大道100号"


def test_unknown_location_asks_for_a_landmark_once_then_accepts() -> None:
    first = read("location", "不清楚")
    assert first.value is None and "地标" in first.hint
    second = read("location", "我也不知道", failures=1)
    assert second.value == {"answer": UNKNOWN, "text": "我也不知道"}


@pytest.mark.parametrize("text", ["工作日晚上七点以后", "下午三点以后", "刚才"])
def test_a_time_given_for_where_is_asked_again_once(text: str) -> None:
    first = read("location", text)
    assert first.value is None and "时间" in first.hint
    assert read("location", text, failures=1).value["text"] == text  # never stuck


@pytest.mark.parametrize("text", ["晚上八点在人民广场", "在家里", "楼下", "地铁2号线南京东路站"])
def test_places_with_or_without_a_time_are_places(text: str) -> None:
    assert read("location", text).value["text"] == text


def test_an_address_given_for_when_to_call_is_asked_again_once() -> None:
    first = read("contact_time", "徐汇区漕溪北路88号3号楼")
    assert first.value is None and "方便联系您" in first.hint
    assert read("contact_time", "徐汇区漕溪北路88号3号楼", failures=1).value["answer"] == "given"
    for when in ("工作日晚上", "随时", "明天下午", "周末都行"):
        assert read("contact_time", when).value["text"] == when


def test_shared_location_wins_over_text() -> None:
    share = {"lat": 31.2304, "lng": 121.4737, "label": "人民广场"}
    value = read_answer("location", "", location=share).value
    assert value["lat"] == 31.2304 and value["label"] == "人民广场"


@pytest.mark.parametrize(
    ("share", "ok"),
    [
        ({"lat": 31.2, "lng": 121.4}, True),
        ({"lat": "31.2", "lng": "121.4"}, True),
        ({"lat": 0, "lng": 0}, False),
        ({"lat": 91, "lng": 121}, False),
        ({"lat": "north", "lng": 1}, False),
        ({"lat": 31.2}, False),
        (None, False),
    ],
)
def test_valid_share(share, ok: bool) -> None:  # noqa: ANN001
    assert valid_share(share) is ok


def test_time_is_normalised() -> None:
    value = read("time", "昨晚十点").value
    assert value["iso"] == "2026-11-22T22:00:00+08:00"
    assert display_answer("time", value) == "11月22日 22:00（昨晚十点）"


def test_injuries_with_a_count_and_with_a_negation() -> None:
    assert read("injured", "两个人受伤了").value["count"] == 2
    assert read("injured", "没有人受伤").value["answer"] == NO
    assert read("injured", "有").value["answer"] == YES


def test_weapons_named_or_denied() -> None:
    assert read("weapons", "他手里拿着刀").value["kinds"] == ["刀"]
    assert read("weapons", "没有").value["answer"] == NO


def test_yes_no_question_answered_with_prose_gets_a_hint() -> None:
    reading = read("reporter_safe", "南京东路")
    assert reading.value is None and "是" in reading.hint


def test_vehicle_keeps_the_plate() -> None:
    value = read("vehicle", "白色轿车沪A12345往北开走了").value
    assert value["plates"] == ["沪A12345"]


@given(st.text(max_size=3000))
def test_any_text_is_read_without_error_and_kept_short(text: str) -> None:
    for field in POLICY.fields:
        reading = read_answer(field, text)
        assert (reading.value is None) != (reading.hint is None)
        if reading.value is not None:
            assert len(reading.value.get("text", "")) <= 500


# --- corrections --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "rest"),
    [
        ("地址不对，是南京东路100号", "location", "南京东路100号"),
        ("地点错了 应该是人民广场", "location", "应该是人民广场"),
        ("时间说错了，是昨晚十点", "time", "昨晚十点"),
        ("车牌写错了，沪B54321", "vehicle", "沪B54321"),
        ("刚才说错了", None, ""),
    ],
)
def test_corrections(text: str, field: str | None, rest: str) -> None:
    correction = find_correction(text)
    assert correction is not None and correction.field == field
    assert rest.endswith(correction.text) or correction.text.endswith(rest.removeprefix("应该是"))


def test_ordinary_answers_are_not_corrections() -> None:
    for text in ("南京东路100号", "不对劲，他一直跟着我", "两个人", "不知道"):
        assert find_correction(text) is None, text


# --- completeness and the card ------------------------------------------------------------


def test_completeness_grows_and_names_what_is_missing() -> None:
    answers = {"description": {"answer": "given", "text": "手机被偷"}}
    empty = completeness(answers, "police", "theft")
    assert "location" in empty.missing and 0 < empty.score < 1
    answers["location"] = {"answer": "given", "text": "人民广场"}
    better = completeness(answers, "police", "theft")
    assert better.score > empty.score and "location" not in better.missing
    assert "具体地点" not in better.missing_labels(POLICY)


def test_unknown_earns_partial_credit_and_stays_missing() -> None:
    base = {"description": {"answer": "given", "text": "x"}}
    given_ = completeness({**base, "location": {"answer": "given", "text": "y"}}, "12345", "other")
    unknown = completeness({**base, "location": {"answer": UNKNOWN, "text": "?"}}, "12345", "other")
    assert given_.score > unknown.score > completeness(base, "12345", "other").score
    assert "location" in unknown.missing


def test_full_report_is_complete() -> None:
    fields = ["description", *POLICY.questions("mediation", "neighbor")]
    answers = {f: {"answer": "given", "text": "x"} for f in fields}
    assert completeness(answers, "mediation", "neighbor") == completeness(
        answers, "mediation", "neighbor"
    )
    assert completeness(answers, "mediation", "neighbor").score == 1.0


def test_summary_lists_each_asked_fact() -> None:
    answers = {
        "description": {"answer": "given", "text": "电动车被偷"},
        "location": {"answer": "given", "text": "漕溪北路"},
        "callback": {"answer": NO, "text": ""},
    }
    lines = summary_lines(answers, "police", "theft")
    assert lines[0] == "发生了什么：电动车被偷"
    assert "具体地点：漕溪北路" in lines
    assert "能否回电：只发文字，不便接听" in lines
    assert "发生时间：未填" in lines


# --- escalation ---------------------------------------------------------------------------


def test_violence_in_a_later_answer_moves_mediation_to_police() -> None:
    current = decision("mediation", "neighbor")
    change = escalate(current, "他刚才拿刀威胁我", {"aggression": {"answer": YES}})
    assert change.route == "police" and change.became_police
    assert change.call_110_now and change.urgency == "immediate"


def test_aggression_button_alone_makes_it_police() -> None:
    change = escalate(decision("mediation", "family"), "", {"aggression": {"answer": YES}})
    assert change.route == "police" and change.category == "domestic_violence"


def test_weapon_while_ongoing_is_an_emergency() -> None:
    answers = {"weapons": {"answer": YES, "kinds": ["刀"]}, "ongoing": {"answer": YES}}
    change = escalate(decision("police", "public_order"), "", answers)
    assert change.call_110_now and change.became_emergency


def test_a_calm_answer_never_lowers_the_stakes() -> None:
    current = decision("police", "assault", call_now=True, urgency="immediate")
    change = escalate(current, "没事了，已经结束了", {"ongoing": {"answer": NO}})
    assert change.route == "police" and change.call_110_now and change.urgency == "immediate"
    civic = escalate(decision("12345", "property", urgency="low"), "电梯坏了", {})
    assert civic.route == "12345" and not civic.became_police


# --- what the first description already says ------------------------------------------


def test_prefill_takes_place_time_weapon_and_plate_from_the_description() -> None:
    text = "昨晚十点在徐汇区漕溪北路88号，一个男的拿着刀抢了我的包，开着沪A12345跑了"
    facts = prefill(text, entities(text))
    assert facts["location"]["district"] == "徐汇区"
    assert "漕溪北路88号" in facts["location"]["text"]
    assert facts["time"]["iso"] == "2026-11-22T22:00:00+08:00"
    assert facts["weapons"]["kinds"] == ["刀"]
    assert facts["vehicle"]["plates"] == ["沪A12345"]
    assert "injured" not in facts


def test_prefill_keeps_negations() -> None:
    text = "刚才两个人吵起来了，没有人受伤，也没动刀"
    facts = prefill(text, entities(text))
    assert facts["injured"] == {"answer": NO, "text": "没有人受伤", "count": 0}


def test_prefill_of_plain_text_is_empty() -> None:
    assert prefill("物业不管事", entities("物业不管事")) == {}


@pytest.mark.parametrize(
    ("text", "min_words", "expected"),
    [
        ("Help! A man with a knife", 1, "en"),
        ("有人打架 help", 1, "zh"),
        ("IFC mall", 3, None),
        ("It happened at IFC mall", 3, "en"),
        ("110", 1, None),
        ("😭", 1, None),
    ],
)
def test_language_of(text: str, min_words: int, expected: str | None) -> None:
    assert language_of(text, min_words=min_words) == expected


def test_english_card_and_hints() -> None:
    answers = {"description": {"answer": "given", "text": "lift broken"}}
    lines = summary_lines(answers, "12345", "property", language="en")
    assert lines[0] == "what happened: lift broken"
    assert "location: not given" in lines
    assert read_answer("reporter_safe", "maybe later", language="en").hint.startswith("Please tap")


def test_just_now_button_is_the_current_time_in_shanghai() -> None:
    value = read_answer("time", "", button="now", now=NOW).value
    assert value == {"answer": "given", "text": "刚才", "iso": "2026-11-23T20:00:00+08:00"}
