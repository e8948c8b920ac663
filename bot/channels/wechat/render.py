"""The bot's messages as WeChat text: buttons become numbered lines the citizen answers with
a digit, since a passive reply cannot carry buttons."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from wechatpy.replies import TextReply

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


class ButtonMemory:
    """The last numbered buttons shown to each sender, so that "1" means that button.

    In process, bounded: a digit answered on another worker, or after a restart, is read as
    text by the model, which is no worse than a citizen typing a number.
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

    def payload_for(self, sender: str, text: str) -> str | None:
        """The payload a numeric answer picks, else None (the text is just text)."""
        match = DIGITS.fullmatch(text.translate(TRANSLATE_DIGITS))
        payloads = self._last.get(sender)
        if match is None or not payloads:
            return None
        index = int(match.group(1)) - 1
        return payloads[index] if 0 <= index < len(payloads) else None
