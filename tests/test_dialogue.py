"""What the citizen wrote is kept even when the dialogue engine fails mid-turn."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from rasa.core.channels.channel import UserMessage

from bot.app import RUNTIME
from bot.dialogue import Dialogue, parse_payload
from store import migrate
from store.conversations import ConversationLog
from store.crypto import PiiCipher
from store.db import Database, default_sqlite_url


class _CrashingAgent:
    """Stands in for a Rasa agent whose pipeline raises (e.g. an action server outage)."""

    model_name = "crashing"

    async def handle_message(self, message) -> None:  # noqa: ANN001
        raise RuntimeError("pipeline exploded")


async def test_inbound_text_is_logged_when_rasa_raises(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(migrate.upgrade, url).result()
    db = Database(url)
    log = ConversationLog(db, PiiCipher(b"d" * 32))
    try:
        with pytest.raises(RuntimeError):
            await Dialogue(_CrashingAgent(), log).respond("web", "crash-1", "有人撬门")
        transcript = await log.transcript("web", "crash-1")
    finally:
        await db.dispose()
    assert [(m.direction, m.content) for m in transcript] == [("in", {"text": "有人撬门"})]


PAYLOADS = [
    "/help",
    "/greet",
    '/inform{"answer": "yes"}',
    '/inform{"answer": "不清楚"}',
    '/inform{"lat": 31.2304, "lng": 121.4737, "label": "人民广场"}',
    "/report_incident@0.7",
    "/inform{broken json",
]


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_payload_parse_is_what_the_nlu_graph_says(live_server, payload: str) -> None:  # noqa: ANN001
    """The shortcut for button payloads gives exactly the graph's parse, entities included."""
    agent = live_server.app[RUNTIME].dialogue.agent
    graph = live_server.call(agent.processor.parse_message(UserMessage(payload)))
    assert parse_payload(payload, agent.domain) == graph


def test_payload_with_an_unknown_intent_takes_the_normal_path(live_server) -> None:  # noqa: ANN001
    assert parse_payload("/no_such_intent", live_server.app[RUNTIME].dialogue.agent.domain) is None
