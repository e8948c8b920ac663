"""The one list of our actions, for the in-process executor."""

from __future__ import annotations

from rasa_sdk.executor import ActionExecutor

from actions.greet import ActionGreet
from actions.services import ActionServices

ACTION_CLASSES = (ActionGreet,)


def build_executor(services: ActionServices) -> ActionExecutor:
    executor = ActionExecutor()
    for action_class in ACTION_CLASSES:
        executor.register_action(action_class(services))
    return executor
