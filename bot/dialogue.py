"""The Rasa agent inside our process, and the one path every channel's message takes."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from rasa.core.actions.action import ActionExecutionRejection
from rasa.core.agent import Agent
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.shared.exceptions import RasaException
from rasa.utils.endpoints import EndpointConfig
from rasa_sdk import ActionExecutionRejection as SdkActionExecutionRejection
from rasa_sdk.executor import ActionExecutor, ActionNotFoundException

from bot.rasa_patches import install_fast_action_validation
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
) -> Agent:
    """Blocking (~10 s): run it in a thread so /healthz can answer meanwhile."""
    install_fast_action_validation()
    return Agent.load(str(model_path), tracker_store=tracker_store, action_endpoint=action_endpoint)


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
