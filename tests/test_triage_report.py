"""What the citizen is told after a described report: short, danger first, truthful."""

from __future__ import annotations

import pytest

from actions.triage_report import explain
from routing.triage import IntentScore, ModelReading, triage


def _reading(intent: str, confidence: float = 0.9) -> ModelReading:
    return ModelReading((IntentScore(intent, confidence),))


@pytest.mark.parametrize(
    ("text", "intent", "expect"),
    [
        ("我的自行车被偷了", "police_theft", "110警情"),
        ("物业不修电梯", "civic_property", "12345"),
        ("邻居家漏水不肯赔", "mediation_neighbor", "人民调解"),
    ],
)
def test_each_route_is_named_briefly(text: str, intent: str, expect: str) -> None:
    messages = explain(triage(text, reading=_reading(intent)))
    assert expect in messages[0]
    assert all(len(m) <= 60 for m in messages), messages


def test_danger_comes_first() -> None:
    messages = explain(triage("有人拿刀在砍人", reading=_reading("police_assault")))
    assert messages[0].startswith("情况危急") and "110" in messages[0]


def test_nothing_promises_a_dispatch_that_does_not_happen_yet() -> None:
    for intent in ("police_theft", "civic_courier", "mediation_family"):
        text = " ".join(explain(triage("情况说明", reading=_reading(intent))))
        assert "已派警" not in text and "已转" not in text


def test_the_reason_given_is_the_rule_that_decided_not_a_contrary_model_score() -> None:
    text = "我妈把存折都交给我了 说以后家里就靠你了"
    messages = explain(triage(text, reading=_reading("police_theft", 0.26)))
    assert messages[0].startswith("情况危急")
    assert "轻生自伤" in messages[1] and "盗窃" not in messages[1], messages
    impostor = "说是燃气公司的 收了六百 燃气公司说根本没派人"
    reason = explain(triage(impostor, reading=_reading("civic_utilities", 0.96)))[-1]
    assert "诈骗" in reason and "水电燃气" not in reason, reason


def test_a_rescue_pair_is_told_by_its_own_reason_and_a_ruled_out_fight_keeps_the_mediator() -> None:
    text = "楼上邻居家的狗叫了两天了 一直没见人回来 敲门也没人应"
    decision = triage(text, reading=_reading("mediation_neighbor", 0.77))
    assert decision.decided_by.startswith("多日未见人且敲门无人应")
    quarrel = "跟对门为了放婴儿车的事吵了一架 没动手 想找人调解"
    decision = triage(quarrel, reading=_reading("mediation_neighbor", 0.9))
    assert decision.route == "mediation" and decision.decided_by == "已排除：没有动手"


def test_a_ruled_out_injury_reads_as_plain_chinese_once() -> None:
    decision = triage(
        "没有人受伤 就是店门被撬了 没有人受伤", reading=_reading("police_theft", 0.99)
    )
    assert "已排除：没有人受伤" in decision.reasons
