"""One base for our forms, so they all behave alike.

Each form reads every answer itself (its slots have custom mappings): one message may
answer, correct, cancel, or reveal danger, which Rasa's slot mappings cannot tell apart.
A short question the model is sure about (bot? help? 我的报警) fills nothing, so Rasa
rejects the form, a rule answers, and the form asks again. Answers that cannot be read are
counted per question; the limit comes from actions/forms.yml.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import yaml
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction

from actions.services import UsesServices
from actions.turn import Turn, is_answer_turn

FORMS_FILE = Path(__file__).with_name("forms.yml")
INTERRUPTIONS = frozenset({"bot_challenge", "help", "my_incidents"})
INTERRUPTION_CONFIDENCE = 0.85
INTERRUPTION_MAX_CHARS = 20

Events = list[dict[str, Any]]


@lru_cache(maxsize=1)
def form_limits() -> dict[str, int]:
    data = yaml.safe_load(FORMS_FILE.read_text(encoding="utf-8"))
    return {form: int(spec["max_failures"]) for form, spec in data.items()}


def is_interruption(turn: Turn) -> bool:
    return (
        not turn.is_payload
        and turn.intent in INTERRUPTIONS
        and turn.confidence >= INTERRUPTION_CONFIDENCE
        and len(turn.text) <= INTERRUPTION_MAX_CHARS
    )


class AnswerReadingForm(UsesServices, FormValidationAction):
    """Abstract (so `rasa run actions` does not register it): one subclass per form."""

    form: ClassVar[str]
    failures_slot: ClassVar[str]

    def name(self) -> str:
        return f"validate_{self.form}"

    @abstractmethod
    def required_for(self, slots: dict[str, Any]) -> list[str]:
        """The slots still to ask for, in order, given what is known so far."""
        raise NotImplementedError

    @abstractmethod
    def finished(self, slots: dict[str, Any]) -> bool:
        """Done early (submitted, cancelled, declined, left for an emergency)."""
        raise NotImplementedError

    @abstractmethod
    async def answer(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        turn: Turn,
        requested: str,
        slots: dict[str, Any],
    ) -> Events:
        """Events for one answer; they must set a form slot (None re-asks the question)."""
        raise NotImplementedError

    async def after_answer(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, slots: dict[str, Any]
    ) -> Events:
        """Side effects once the slots are updated (e.g. keep the stored incident in step)."""
        return []

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[str]:
        return self.required_for(tracker.slots)

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> Events:
        slots = dict(tracker.slots)
        requested = slots.get("requested_slot")
        events: Events = []
        if requested and is_answer_turn(tracker, self.form):
            turn = Turn.latest(tracker)
            if is_interruption(turn):
                return []  # nothing filled: Rasa rejects the form, a rule answers
            events = await self.answer(dispatcher, tracker, turn, requested, slots)
        _apply(slots, events)
        more = await self.after_answer(dispatcher, tracker, slots)
        _apply(slots, more)
        events += more
        if self.finished(slots):
            return [*events, SlotSet("requested_slot", None)]
        following = next((s for s in self.required_for(slots) if slots.get(s) is None), None)
        return [*events, SlotSet("requested_slot", following)]

    def count_failure(self, slots: dict[str, Any], question: str) -> tuple[Events, bool]:
        """One more unreadable answer to `question`: the updated count, and whether the
        form's limit is reached (then the form takes its way out)."""
        failures = dict(slots.get(self.failures_slot) or {})
        failures[question] = failures.get(question, 0) + 1
        reached = failures[question] >= form_limits()[self.form]
        return [SlotSet(self.failures_slot, failures)], reached


def _apply(slots: dict[str, Any], events: Events) -> None:
    for event in events:
        if event.get("event") == "slot":
            slots[event["name"]] = event["value"]
