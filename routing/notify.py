"""Telling a citizen that their case moved on, on the channel they used.

`CitizenNotifier` is the hook: `notify(channel, sender_id, text)`. The web/H5 (and
mini-program) implementation stores the text for the page to fetch (`GET /api/updates`);
WeChat will plug in its customer-service sender. A failing notifier must never undo what
it reports, so callers use `notify_quietly`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from store.notices import NoticeBoard

logger = logging.getLogger(__name__)


class CitizenNotifier(Protocol):
    async def notify(self, channel: str, sender_id: str, text: str) -> None:
        """Deliver `text` (Chinese, no other person's data) to the citizen, or raise."""
        ...


class StoredNotifier:
    """For channels that pull: the notice waits in the database until the page asks."""

    def __init__(self, board: NoticeBoard) -> None:
        self.board = board

    async def notify(self, channel: str, sender_id: str, text: str) -> None:
        await self.board.post(channel, sender_id, text)


class ChannelNotifier:
    """Routes by channel: `by_channel[channel]`, else `default` (the stored notices)."""

    def __init__(
        self, default: CitizenNotifier, by_channel: Mapping[str, CitizenNotifier] | None = None
    ) -> None:
        self.default = default
        self.by_channel = dict(by_channel or {})

    async def notify(self, channel: str, sender_id: str, text: str) -> None:
        await self.by_channel.get(channel, self.default).notify(channel, sender_id, text)


async def notify_quietly(
    notifier: CitizenNotifier | None, channel: str, sender_id: str, text: str
) -> bool:
    """Notify, logging (without the text or the sender) instead of raising; True if sent."""
    if notifier is None:
        return False
    try:
        await notifier.notify(channel, sender_id, text)
    except Exception:
        logger.exception("could not notify a citizen on channel %s", channel)
        return False
    return True
