"""The Rasa agent inside our process, and the one path every channel's message takes."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from rasa.core.actions.action import ActionExecutionRejection
from rasa.core.agent import Agent
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.nlu.classifiers.regex_message_handler import RegexMessageHandler
from rasa.shared.core.domain import Domain
from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader
from rasa.shared.exceptions import RasaException
from rasa.shared.nlu.constants import (
    ENTITIES,
    INTENT,
    INTENT_NAME_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.utils.endpoints import EndpointConfig
from rasa_sdk import ActionExecutionRejection as SdkActionExecutionRejection
from rasa_sdk.executor import ActionExecutor, ActionNotFoundException

from bot.rasa_patches import install_all
from bot.tracker_store import SealedSQLTrackerStore, reply_content
from store.citizens import conversation_key
from store.conversations import ConversationLog

logger = logging.getLogger(__name__)


class InProcessActions(EndpointConfig):
    """An action endpoint that runs rasa_sdk actions in this process: no HTTP hop.

    Rasa's `RemoteAction` calls `request(json=...)`; we hand that JSON to rasa_sdk's
    executor and translate its errors into the ones Rasa expects from an action server.
    """

    def __init__(self, executor: ActionExecutor) -> None:
        super().__init__(url="inprocess://actions")
        self._executor = executor

    async def request(
        self,
        method: str = "post",
        subpath: str | None = None,
        content_type: str | None = "application/json",
        compress: bool = False,
        **kwargs: Any,
    ) -> Any:
        action_call = kwargs["json"]
        try:
            return await self._executor.run(action_call)
        except SdkActionExecutionRejection as e:
            raise ActionExecutionRejection(e.action_name, e.message) from e
        except ActionNotFoundException as e:
            raise RasaException(f"no custom action named '{e.action_name}'") from e


def load_agent(
    model_path: Path,
    tracker_store: SealedSQLTrackerStore,
    action_endpoint: EndpointConfig,
    tf_threads: int = 1,
) -> Agent:
    """Blocking (a few seconds): run it in a thread so /healthz can answer meanwhile."""
    install_all(tf_threads)
    return Agent.load(str(model_path), tracker_store=tracker_store, action_endpoint=action_endpoint)


def parse_payload(payload: str, domain: Domain) -> dict[str, Any] | None:
    """What Rasa's NLU graph makes of a button payload `/intent{...}`, without running it.

    In the graph only the last node, RegexMessageHandler, decides a payload; the tokenizer,
    featurizers and DIET before it work on "/intent{...}" for nothing (about 5 ms of CPU per
    button press, most turns of a report). None for a payload the graph would treat as text
    (an intent the domain does not know), which then takes the normal path.
    """
    unpacked = YAMLStoryReader.unpack_regex_message(
        Message({TEXT: payload}), domain, entity_extractor_name=RegexMessageHandler.__name__
    )
    if unpacked.get(INTENT) is None:
        return None
    return {
        TEXT: "",
        INTENT: {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0},
        ENTITIES: [],
        **unpacked.as_dict(only_output_properties=True),
    }


class Dialogue:
    """Hands a citizen's message to Rasa; the tracker store records both sides of the turn."""

    def __init__(self, agent: Agent, log: ConversationLog) -> None:
        self.agent = agent
        self._log = log

    @property
    def transcript(self) -> ConversationLog:
        """For turns that do not go through Rasa (an upload) but belong in the transcript."""
        return self._log

    @property
    def model_id(self) -> str:
        return self.agent.model_name or self.agent.model_id or "unknown"

    async def respond(
        self,
        channel: str,
        sender_id: str,
        text: str,
        *,
        is_payload: bool = False,
        metadata: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """The bot's messages for one citizen message (text, or a button's payload)."""
        output = CollectingOutputChannel()
        message = UserMessage(
            text,
            output,
            conversation_key(channel, sender_id),
            input_channel=channel,
            metadata=metadata,
            message_id=request_id,
            parse_data=parse_payload(text, self.agent.domain) if is_payload else None,
        )
        started = time.perf_counter()
        try:
            await self.agent.handle_message(message)
        except Exception:
            # Rasa saves nothing when a turn fails: keep what the citizen wrote all the same.
            inbound = {"payload": text} if is_payload else {"text": text}
            await self._log.append(channel, sender_id, [("in", inbound, None)], request_id)
            raise
        finally:
            logger.debug("dialogue turn took %.1f ms", (time.perf_counter() - started) * 1000)
        return [reply_content(raw) for raw in output.messages]
