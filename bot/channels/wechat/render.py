"""The bot's messages as WeChat text: buttons become numbered lines the citizen answers with
a digit, since a passive reply cannot carry buttons."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from wechatpy.replies import TextReply

from store.citizens import conversation_key

if TYPE_CHECKING:  # Rasa is imported late: bot.settings imports this package
    from rasa.core.tracker_store import TrackerStore
    from rasa.shared.core.events import Event

MAX_REPLY_BYTES = 2000  # WeChat cuts a text reply at 2048 bytes
DIGITS = re.compile(r"^\s*(\d{1,2})\s*$")
TRANSLATE_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def render_text(messages: Sequence[dict[str, Any]]) -> tuple[str, list[str]]:
    """(text, button payloads in the order numbered). Images are named, not sent."""
    parts: list[str] = []
    payloads: list[str] = []
    for message in messages:
        if message.get("text"):
            parts.append(str(message["text"]))
        if message.get("image"):
            parts.append("[图片]")
        lines = []
        for button in message.get("buttons") or []:
            title, payload = button.get("title"), button.get("payload")
            if not title or not payload:
                continue
            payloads.append(str(payload))
            lines.append(f"回复{len(payloads)}：{title}")
        if lines:
            parts.append("\n".join(lines))
    return "\n\n".join(parts), payloads


def split_for_wechat(text: str, limit: int = MAX_REPLY_BYTES) -> list[str]:
    """Pieces under WeChat's byte limit, cut at line ends where possible."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode()) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(line.encode()) > limit:
            cut = limit // 3  # a CJK character is 3 bytes in UTF-8
            pieces.append(line[:cut])
            line = line[cut:]
        current = line
    if current:
        pieces.append(current)
    return pieces or [""]


def passive_reply(text: str, *, to_openid: str, from_account: str) -> str:
    """The XML a push is answered with (plain mode; safe mode encrypts it)."""
    reply = TextReply(content=text, target=to_openid, source=from_account)
    reply.time = int(time.time())
    return reply.render()


def last_turn_payloads(events: Sequence[Event]) -> list[str]:
    """The button payloads of the bot's messages since the citizen last wrote, numbered in
    the order `render_text` numbered them."""
    from rasa.shared.core.events import BotUttered, UserUttered

    payloads: list[str] = []
    for event in reversed(events):
        if isinstance(event, UserUttered):
            break
        if isinstance(event, BotUttered):
            shown = [
                str(b["payload"])
                for b in event.data.get("buttons") or []
                if b.get("title") and b.get("payload")
            ]
            payloads[:0] = shown
    return payloads


async def tracker_payloads(tracker_store: TrackerStore, channel: str, sender: str) -> list[str]:
    """The last buttons from the stored conversation: right whichever worker showed them."""
    tracker = await tracker_store.retrieve(conversation_key(channel, sender))
    return last_turn_payloads(list(tracker.events)) if tracker is not None else []


class ButtonMemory:
    """The last numbered buttons shown to each sender, so that "1" means that button.

    In process, bounded: the fallback when no stored conversation is at hand (the app
    passes `tracker_payloads`, which is right across workers and restarts).
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._last: OrderedDict[str, list[str]] = OrderedDict()

    def remember(self, sender: str, payloads: list[str]) -> None:
        self._last.pop(sender, None)
        if payloads:
            self._last[sender] = payloads
            while len(self._last) > self._capacity:
                self._last.popitem(last=False)

    def payloads(self, sender: str) -> list[str]:
        return self._last.get(sender, [])

    def payload_for(self, sender: str, text: str) -> str | None:
        """The payload a numeric answer picks, else None (the text is just text)."""
        return pick(self.payloads(sender), text)


def numeric(text: str) -> int | None:
    """1-based choice when the text is just a number (full-width digits too)."""
    match = DIGITS.fullmatch(text.translate(TRANSLATE_DIGITS))
    return int(match.group(1)) if match else None


def pick(payloads: Sequence[str], text: str) -> str | None:
    choice = numeric(text)
    if choice is None or not 1 <= choice <= len(payloads):
        return None
    return payloads[choice - 1]
