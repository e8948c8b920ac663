"""The incident form: one question at a time, only what the route still needs.

Rasa's FormAction asks (utter_ask_report_<field>); this validation action reads every
answer itself (all report slots have custom mappings), because one message may answer
the question, correct an earlier answer, cancel, or reveal that someone is in danger —
and the last one must change the report at once, whatever was asked.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.custom_forms import AnswerReadingForm, Events
from actions.reporting import (
    FORM,
    answers_from,
    decision_from,
    decision_slots,
    described,
    field_of,
    language_of_slots,
    say,
    slot_of,
    sync_incident,
)
from actions.turn import Turn, answer_buttons
from routing.report import (
    UNKNOWN,
    clean,
    default_report_policy,
    escalate,
    find_correction,
    is_meaningful,
    language_of,
    read_answer,
)
from routing.triage import POLICE, triage

CONFIRM = "report_confirm"
SUBMIT, CANCEL, EDIT = "submit", "cancel", "edit"
_CANCEL_WORDS = re.compile(
    r"^(取消报警|取消|撤销报警|撤销|不报了|不报警了|算了不报了|cancel)$", re.I
)
_SUBMIT_WORDS = re.compile(
    r"^(提交|确认|确认提交|没问题|对|对的|是的|是|好|好的|可以|submit|ok|yes)$", re.I
)


class ValidateIncidentForm(AnswerReadingForm):
    form = FORM
    failures_slot = "report_failures"

    def required_for(self, slots: dict[str, Any]) -> list[str]:
        return required_for(slots)

    def finished(self, slots: dict[str, Any]) -> bool:
        return slots.get(CONFIRM) in (SUBMIT, CANCEL)

    async def answer(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        turn: Turn,
        requested: str,
        slots: dict[str, Any],
    ) -> Events:
        return self._answer(dispatcher, turn, requested, slots)

    async def after_answer(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, slots: dict[str, Any]
    ) -> Events:
        if slots.get(CONFIRM) == CANCEL:
            return []
        return await sync_incident(self.services, tracker, slots, dispatcher)

    def _answer(
        self,
        dispatcher: CollectingDispatcher,
        turn: Turn,
        requested: str,
        slots: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Events for one answer. Always sets at least one report slot, so Rasa keeps the form."""
        typed = clean(turn.text)
        language = language_of(typed, min_words=3) if typed else None
        if language and language != language_of_slots(slots):
            slots["language"] = language
            return [
                SlotSet("language", language),
                *self._answer(dispatcher, turn, requested, slots),
            ]
        if turn.button == CANCEL or _CANCEL_WORDS.match(typed):
            return [SlotSet(CONFIRM, CANCEL)]
        correction = find_correction(typed) if typed else None
        if requested == CONFIRM:
            return self._confirm(dispatcher, turn, typed, slots, correction)
        if correction is not None:
            return self._correct(dispatcher, turn, correction, requested, slots)
        return self._fill(dispatcher, turn, field_of(requested), slots)

    def _fill(
        self,
        dispatcher: CollectingDispatcher,
        turn: Turn,
        field: str,
        slots: dict[str, Any],
        text: str | None = None,
    ) -> list[dict[str, Any]]:
        failures = slots.get(self.failures_slot) or {}
        reading = read_answer(
            field,
            turn.text if text is None else text,
            turn.entities,
            button=turn.button if text is None else None,
            location=turn.share,
            failures=failures.get(field, 0),
            language=language_of_slots(slots),
        )
        if reading.value is None:
            counted, exhausted = self.count_failure(slots, field)
            if exhausted:  # never stuck on one fact: a call-taker checks it later
                dispatcher.utter_message(response="utter_report_skip_field")
                value = {"answer": UNKNOWN, "text": "（已跳过）", "skipped": True}
                return [SlotSet(slot_of(field), value), *counted]
            dispatcher.utter_message(text=reading.hint)
            return [SlotSet(slot_of(field), None), *counted]
        events = [SlotSet(slot_of(field), reading.value)]
        if field == "description":
            return self._triage_description(dispatcher, turn, reading.value["text"])
        if field == "reporter_safe" and reading.value.get("answer") == "no":
            dispatcher.utter_message(response="utter_safety_tip")
        if not turn.is_payload and is_meaningful(turn.text):
            events += self._reassess(dispatcher, turn.text, slots, field, reading.value)
        elif field in ("weapons", "injured", "ongoing", "aggression"):
            events += self._reassess(dispatcher, "", slots, field, reading.value)
        return events

    def _triage_description(
        self, dispatcher: CollectingDispatcher, turn: Turn, text: str
    ) -> list[dict[str, Any]]:
        decision = triage(text, reading=turn.reading)
        if decision.call_110_now:
            dispatcher.utter_message(response="utter_emergency_first")
        return described(text, decision, turn.entities)

    def _reassess(
        self,
        dispatcher: CollectingDispatcher,
        text: str,
        slots: dict[str, Any],
        field: str,
        value: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Danger in any later answer moves the report to police and the fast path."""
        current = decision_from(slots)
        if current is None:
            return []
        answers = {**answers_from(slots), field: value}
        change = escalate(current, text, answers)
        if not (change.became_police or change.became_emergency):
            return []
        if change.became_emergency:
            dispatcher.utter_message(response="utter_emergency_first")
        elif change.became_police:
            say(dispatcher, "now_police", language_of_slots(slots))
        updated = current.__class__(
            route=change.route,
            category=change.category,
            aggression=current.aggression or change.became_police,
            urgency=change.urgency,
            confidence=current.confidence,
            call_110_now=change.call_110_now,
            reasons=change.reasons,
        )
        return decision_slots(updated)

    def _correct(
        self,
        dispatcher: CollectingDispatcher,
        turn: Turn,
        correction: Any,
        requested: str,
        slots: dict[str, Any],
    ) -> list[dict[str, Any]]:
        field = correction.field
        if field is None:
            dispatcher.utter_message(response="utter_report_how_to_correct")
            return [SlotSet(requested, None)]
        if not is_meaningful(correction.text):
            # "地址不对" alone: ask that question again, after the current one.
            say(dispatcher, "ask_later", language_of_slots(slots))
            return [SlotSet(slot_of(field), None)]
        events = self._fill(dispatcher, turn, field, slots, text=correction.text)
        if events and events[0]["value"] is not None:
            say(dispatcher, "corrected", language_of_slots(slots))
        return events

    def _confirm(
        self,
        dispatcher: CollectingDispatcher,
        turn: Turn,
        typed: str,
        slots: dict[str, Any],
        correction: Any,
    ) -> list[dict[str, Any]]:
        button = turn.button or ""
        if button == SUBMIT or (not button and _SUBMIT_WORDS.match(typed)):
            return [SlotSet(CONFIRM, SUBMIT)]
        if button.startswith(f"{EDIT}:"):
            field = button.partition(":")[2]
            if slot_of(field) in required_for(slots):
                return [SlotSet(slot_of(field), None), SlotSet(CONFIRM, None)]
        if correction is not None and correction.field is not None:
            return [
                *self._correct(dispatcher, turn, correction, CONFIRM, slots),
                SlotSet(CONFIRM, None),
            ]
        if button == EDIT or correction is not None:
            answered = [s for s in required_for(slots) if slots.get(s) is not None and s != CONFIRM]
            policy = default_report_policy()
            dispatcher.utter_message(
                response="utter_report_how_to_correct",
                buttons=answer_buttons(
                    *(
                        (
                            policy.label(field_of(s), language_of_slots(slots)),
                            f"{EDIT}:{field_of(s)}",
                        )
                        for s in answered
                    )
                ),
            )
            return [SlotSet(CONFIRM, None)]
        say(dispatcher, "confirm_hint", language_of_slots(slots))
        return [SlotSet(CONFIRM, None)]


def required_for(slots: dict[str, Any]) -> list[str]:
    """Description first, then what this route asks (routing/report.yml), then confirm."""
    policy = default_report_policy()
    decision = decision_from(slots)
    route = decision.route if decision else POLICE
    category = decision.category if decision else "other"
    emergency = bool(decision and decision.call_110_now)
    fields = policy.questions(route, category, emergency)
    return [slot_of("description"), *map(slot_of, fields), CONFIRM]
