from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.services import UsesServices
from store.citizens import split_conversation_key


class ActionGreet(UsesServices, Action):
    """Greets a registered citizen differently: no need to explain registration again."""

    def name(self) -> str:
        return "action_greet"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        channel, sender_id = split_conversation_key(tracker.sender_id)
        registered = await self.services.citizens.is_registered(channel, sender_id)
        dispatcher.utter_message(
            response="utter_greet_registered" if registered else "utter_greet_unregistered"
        )
        return []
