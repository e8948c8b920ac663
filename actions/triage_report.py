"""The first answer to a described report: danger first, then where it goes and why. The
incident form then asks what is still missing."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from actions.reporting import FORM, described, reset_report
from routing.report import clean, language_of
from routing.triage import CIVIC, MEDIATION, Decision, ModelReading, default_policy, triage


def decisive_reason(decision: Decision) -> str:
    """The reason that decided the route, for the citizen: the rule triage() says decided,
    else (a decision rebuilt from slots) the first reason after where it goes."""
    if decision.decided_by:
        return decision.decided_by
    return next((r for r in decision.reasons[1:] if not r.startswith("可能危及")), "")


def explain(decision: Decision, language: str = "zh") -> list[str]:
    """Short messages (≤60 characters each): danger first, then where and why."""
    if language == "en":
        return _explain_en(decision)
    policy = default_policy()
    label = policy.label(decision.route, decision.category)
    why = decisive_reason(decision)
    where = {
        "police": f"这属于110警情：{label}。",
        CIVIC: f"这属于12345市民热线受理范围：{label}。",
        MEDIATION: f"这属于人民调解范围：{label}。",
    }[decision.route]
    messages = []
    if decision.call_110_now:
        messages.append("情况危急！能通话请立即拨打110，不便通话请发短信到12110。")
    messages.append(where + (f"（{why}）" if why and len(where + why) <= 56 else ""))
    return messages


def _explain_en(decision: Decision) -> list[str]:
    kind = decision.category.replace("_", " ")
    where = {
        "police": f"This is a police (110) matter: {kind}.",
        CIVIC: f"This is for the 12345 city hotline: {kind}.",
        MEDIATION: f"This is for a people's mediator: {kind} dispute.",
    }[decision.route]
    if decision.call_110_now:
        return ["This sounds dangerous! Call 110 now if you can talk; if not, text 12110.", where]
    return [where]


def start_report(
    dispatcher: CollectingDispatcher, text: str, decision: Decision, parse: dict[str, Any]
) -> list[dict[str, Any]]:
    """Say where the report goes, and open a fresh one holding this description."""
    for message in explain(decision, language_of(text) or "zh"):
        dispatcher.utter_message(text=message)
    return [*reset_report(), *described(text, decision, parse.get("entities") or [])]


class ActionTriageReport(Action):
    """Triages a described report, keeps the decision in slots and opens a fresh report.

    A bare "我要报警" has nothing to triage yet: the form asks what happened first.
    """

    def name(self) -> str:
        return "action_triage_report"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        latest = tracker.latest_message or {}
        text = clean(latest.get("text") or "")
        fresh = reset_report()
        if text.startswith("/"):
            return fresh
        decision = triage(text, reading=ModelReading.from_parse(latest))
        bare_request = (latest.get("intent") or {}).get("name") == "report_incident"
        if bare_request and decision.category == "other" and not decision.call_110_now:
            return fresh
        return start_report(dispatcher, text, decision, latest)


class ActionUnclearMessage(Action):
    """What the model could not place, or a stray answer: still read for danger.

    An emergency must never be lost to a re-prompt: danger or violence starts the report
    (the form follows), as does a described English message; anything else gets the polite
    "please rephrase" with buttons.
    """

    def name(self) -> str:
        return "action_unclear_message"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        latest = tracker.latest_message or {}
        text = clean(latest.get("text") or "")
        if not text.startswith("/"):
            decision = triage(text, reading=ModelReading.from_parse(latest))
            # The model knows little English: a described English message is taken as a
            # report (police when the model is unsure) rather than bounced in Chinese.
            english = language_of(text, min_words=4) == "en"
            if decision.call_110_now or decision.aggression or english:
                return [*start_report(dispatcher, text, decision, latest), FollowupAction(FORM)]
        dispatcher.utter_message(response="utter_nlu_fallback")
        return []
