from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from routing.triage import CIVIC, MEDIATION, Decision, ModelReading, default_policy, triage

# What happens next, truthfully: until the incident flow and handoffs land, nothing is
# forwarded from here, so every answer says where to turn.
NEXT_STEP = {
    "police": "文字报警受理正在接入中，请拨打110或发短信至12110。",
    CIVIC: "请拨打12345市民服务热线反映，非紧急情况无需拨打110。",
    MEDIATION: "可向所在街道人民调解委员会申请调解，或拨打12348咨询。有人动手或威胁请拨110。",
}


def explain(decision: Decision) -> list[str]:
    """Short messages (≤60 characters each): danger first, then where, why, and next."""
    policy = default_policy()
    label = policy.label(decision.route, decision.category)
    why = next((r for r in decision.reasons[1:] if not r.startswith("可能危及")), "")
    where = {
        "police": f"这属于110警情：{label}。",
        CIVIC: f"这属于12345市民热线受理范围：{label}。",
        MEDIATION: f"这属于人民调解范围：{label}。",
    }[decision.route]
    messages = []
    if decision.call_110_now:
        messages.append("情况危急！能通话请立即拨打110，不便通话请发短信至12110。")
    messages.append(where + (f"（{why}）" if why and len(where + why) <= 56 else ""))
    messages.append(NEXT_STEP[decision.route])
    return messages


class ActionTriageReport(Action):
    """Says where a described report belongs and why; remembers the decision in slots."""

    def name(self) -> str:
        return "action_triage_report"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        latest = tracker.latest_message or {}
        decision = triage(latest.get("text") or "", reading=ModelReading.from_parse(latest))
        bare_request = (latest.get("intent") or {}).get("name") == "report_incident"
        if bare_request and decision.category == "other" and not decision.call_110_now:
            dispatcher.utter_message(response="utter_report_guidance")
            return []
        for text in explain(decision):
            dispatcher.utter_message(text=text)
        return [
            SlotSet("triage_route", decision.route),
            SlotSet("triage_category", decision.category),
            SlotSet("triage_call_110_now", decision.call_110_now),
        ]
