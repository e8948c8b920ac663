"""What the citizen wrote is kept even when the dialogue engine fails mid-turn."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.dialogue import Dialogue
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
