"""The citizen's latest message as the report form reads it: text, button answer, map point."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rasa_sdk import Tracker

from routing.report import valid_share
from routing.triage import ModelReading
from store.citizens import split_conversation_key


@dataclass(frozen=True)
class Turn:
    text: str
    intent: str | None
    confidence: float
    entities: list[dict[str, Any]] = field(default_factory=list)
    button: str | None = None  # what a quick-reply button carried: yes / no / unknown / a word
    share: dict[str, Any] | None = None  # a shared map point: lat, lng, label
    is_payload: bool = False
    reading: ModelReading | None = None  # the NLU model's view, for triage

    @classmethod
    def latest(cls, tracker: Tracker) -> Turn:
        message = tracker.latest_message or {}
        text = str(message.get("text") or "")
        intent = message.get("intent") or {}
        entities = [e for e in message.get("entities") or [] if isinstance(e, dict)]
        by_name = {e.get("entity"): e.get("value") for e in entities}
        is_payload = text.startswith("/")
        button = by_name.get("answer") if is_payload else None
        share = None
        if is_payload and "lat" in by_name and "lng" in by_name:
            candidate = {
                "lat": by_name["lat"],
                "lng": by_name["lng"],
                "label": by_name.get("label"),
            }
            share = candidate if valid_share(candidate) else None
        return cls(
            text="" if is_payload else text,
            intent=intent.get("name"),
            confidence=float(intent.get("confidence") or 0.0),
            entities=entities,
            button=str(button) if button is not None else None,
            share=share,
            is_payload=is_payload,
            reading=None if is_payload else ModelReading.from_parse(message),
        )


def answer_buttons(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    """Quick replies whose payload `Turn.latest` reads back as `button`: (title, answer)."""
    return [
        {"title": title, "payload": f'/inform{{"answer": "{answer}"}}'} for title, answer in pairs
    ]


def is_answer_turn(tracker: Tracker, form: str) -> bool:
    """True when the form runs right after the citizen spoke, not when it resumes after
    answering an interruption (then the latest message was already handled)."""
    executed = [e for e in tracker.events if e.get("event") == "action"]
    # Rasa appends its own ActionExecuted(form) to the tracker it hands to validation.
    if executed and executed[-1].get("name") == form:
        executed = executed[:-1]
    return bool(executed) and executed[-1].get("name") == "action_listen"


def reporter(tracker: Tracker) -> tuple[str, str]:
    """(channel, sender id) of the conversation."""
    return split_conversation_key(tracker.sender_id)
