"""Shared by the report actions: slot names, the triage decision kept in slots, and keeping
the stored incident in step with the conversation."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.services import ActionServices
from actions.turn import reporter
from routing.report import (
    MAX_ANSWER_CHARS,
    completeness,
    default_report_policy,
    language_of,
    prefill,
)
from routing.triage import Decision

FORM = "incident_form"
_PREFIX = "report_"
META_SLOTS = ("report_confirm", "report_failures", "incident_number")
TRIAGE_SLOTS = (
    "triage_route",
    "triage_category",
    "triage_aggression",
    "triage_urgency",
    "triage_confidence",
    "triage_call_110_now",
    "triage_reasons",
)


# What the report actions say, in Chinese and in English for foreign residents. Static
# replies live in domain.yml (with `language: en` variations); these carry numbers.
TEXTS: dict[str, tuple[str, str]] = {
    "recorded": (
        "已记下您的报警，编号{number}，正在转给110接警员。",
        "Your report is recorded, number {number}, and is being passed to 110.",
    ),
    "now_police": (
        "您说的情况涉及暴力或威胁，已改按110警情处理。",
        "What you describe involves violence or threats: it is now a police (110) matter.",
    ),
    "ask_later": ("好的，这一项稍后重新问您。", "OK, I will ask about that again."),
    "corrected": ("已更正。", "Corrected."),
    "confirm_hint": (
        "请点“提交”；要修改请说哪一项不对。",
        "Tap Submit, or tell me which item is wrong.",
    ),
    "check": ("请核对您的报警（{label}）：", "Please check your report ({label}):"),
    "missing": ("还差：{items}", "Still missing: {items}"),
    "submitted": (
        "已提交，报警编号{number}。可在“我的报警”查看进度。",
        "Submitted. Report number {number}. See My reports for progress.",
    ),
    "cancel_reason": ("填写中取消", "cancelled while reporting"),
}


def language_of_slots(slots: dict[str, Any]) -> str:
    return "en" if slots.get("language") == "en" else "zh"


def say(dispatcher: CollectingDispatcher, key: str, language: str, **values: Any) -> None:
    zh, en = TEXTS[key]
    dispatcher.utter_message(text=(en if language == "en" else zh).format(**values))


def slot_of(field: str) -> str:
    return _PREFIX + field


def field_of(slot: str) -> str:
    return slot[len(_PREFIX) :] if slot.startswith(_PREFIX) else slot


def answers_from(slots: dict[str, Any]) -> dict[str, Any]:
    """field -> answer dict, for the facts of routing/report.yml that have an answer."""
    fields = default_report_policy().fields
    return {f: slots[slot_of(f)] for f in fields if slots.get(slot_of(f))}


def decision_slots(decision: Decision) -> list[dict[str, Any]]:
    return [
        SlotSet("triage_route", decision.route),
        SlotSet("triage_category", decision.category),
        SlotSet("triage_aggression", decision.aggression),
        SlotSet("triage_urgency", decision.urgency),
        SlotSet("triage_confidence", decision.confidence),
        SlotSet("triage_call_110_now", decision.call_110_now),
        SlotSet("triage_reasons", list(decision.reasons)),
    ]


def decision_from(slots: dict[str, Any]) -> Decision | None:
    if not slots.get("triage_route"):
        return None
    return Decision(
        route=slots["triage_route"],
        category=slots.get("triage_category") or "other",
        aggression=bool(slots.get("triage_aggression")),
        urgency=slots.get("triage_urgency") or "normal",
        confidence=float(slots.get("triage_confidence") or 0.0),
        call_110_now=bool(slots.get("triage_call_110_now")),
        reasons=tuple(slots.get("triage_reasons") or ()),
    )


def described(
    text: str, decision: Decision, entities: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Slots for a new description: the triage decision, the text, and every fact the
    text already gives, so the form only asks for what is still missing."""
    events = [*decision_slots(decision)]
    language = language_of(text)
    if language:
        events.append(SlotSet("language", language))
    events.append(
        SlotSet(slot_of("description"), {"answer": "given", "text": text[:MAX_ANSWER_CHARS]})
    )
    events += [SlotSet(slot_of(f), value) for f, value in prefill(text, entities).items()]
    return events


def reset_report() -> list[dict[str, Any]]:
    """Clear the finished report so the next one starts empty."""
    fields = default_report_policy().fields
    names = [*map(slot_of, fields), *META_SLOTS, *TRIAGE_SLOTS]
    return [SlotSet(name, None) for name in names]


def incident_details(slots: dict[str, Any]) -> dict[str, Any]:
    decision = decision_from(slots)
    return {
        "answers": answers_from(slots),
        "reasons": list(decision.reasons) if decision else [],
        "confidence": decision.confidence if decision else None,
    }


async def sync_incident(
    services: ActionServices,
    tracker: Tracker,
    slots: dict[str, Any],
    dispatcher: CollectingDispatcher,
) -> list[dict[str, Any]]:
    """Create the incident once its nature is known (at once on the emergency path, so it is
    never lost with a dropped connection), and keep it enriched as the chat goes on."""
    decision = decision_from(slots)
    answers = answers_from(slots)
    if decision is None or "description" not in answers:
        return []
    emergency = decision.call_110_now
    if not emergency and "location" not in answers:
        return []
    score = completeness(answers, decision.route, decision.category, emergency)
    location = answers.get("location") or {}
    common = {
        "route": decision.route,
        "category": decision.category,
        "urgency": decision.urgency,
        "call_110_now": decision.call_110_now,
        "aggression": decision.aggression,
        "details": incident_details(slots),
        "missing": list(score.missing),
        "completeness": score.score,
        "district": location.get("district"),
    }
    number = slots.get("incident_number")
    if number:
        record = await services.incidents.update(
            number, emergency=True if emergency else None, **common
        )
        if emergency and record.status == "draft":
            await services.incidents.submit(number, actor="system")
        if emergency or record.status != "draft":  # already handed off: the update goes too
            services.handoff_queued()
        return []
    channel, sender_id = reporter(tracker)
    citizen_id = await services.citizens.registered_id(channel, sender_id)
    record = await services.incidents.open_draft(
        channel,
        sender_id,
        emergency=emergency,
        verified=citizen_id is not None,
        citizen_id=citizen_id,
        status="received" if emergency else "draft",
        **common,
    )
    # Photos sent before the incident existed belong to it.
    await services.incidents.link_attachments(channel, sender_id, record.number)
    if emergency:
        services.handoff_queued()
        say(dispatcher, "recorded", language_of_slots(slots), number=record.number)
    return [SlotSet("incident_number", record.number)]
