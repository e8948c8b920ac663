"""Stop the server mid-conversation, start it again: the conversation goes on."""

from __future__ import annotations

import aiohttp

from bot.app import RUNTIME
from store.citizens import conversation_key
from tests.support import ServerThread, make_settings


async def _say(url: str, body: dict) -> dict:
    body = {"sender": "restart-1", **body}
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/chat", json=body) as r:
        assert r.status == 200
        return await r.json()


async def test_conversation_survives_a_restart(model_path, tmp_path) -> None:  # noqa: ANN001
    settings = make_settings(tmp_path, model_path.parent)
    first = ServerThread(settings).start()
    try:
        await _say(first.url, {"text": "你好"})
        await _say(first.url, {"payload": "/help"})
    finally:
        first.stop()

    second = ServerThread(settings).start()
    try:
        await _say(second.url, {"payload": "/goodbye"})
        tracker = second.call(
            second.app[RUNTIME].dialogue.agent.tracker_store.retrieve(
                conversation_key("web", "restart-1")
            )
        )
    finally:
        second.stop()
    intents = [e.intent_name for e in tracker.events if e.type_name == "user"]
    assert intents == ["greet", "help", "goodbye"], "one session, nothing lost, nothing restarted"
    assert sum(e.type_name == "session_started" for e in tracker.events) == 1
