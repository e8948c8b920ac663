"""Messages to a WeChat citizen that are not the answer to a push: late replies and status
updates. WeChat allows customer-service messages for 48 hours after the citizen's last
message, five per message; beyond that only a subscribe message the citizen granted (one
per grant). What can go neither way waits as a stored notice, shown with the next reply on
/wechat or by the mini-program's GET /api/updates.
"""

from __future__ import annotations

import logging

from bot.channels.wechat.client import WeChatApi, WeChatApiError
from bot.channels.wechat.config import WeChatConfig
from bot.channels.wechat.render import split_for_wechat
from routing.notify import CitizenNotifier
from store.wechat import MESSAGES_PER_INBOUND, ContactWindows, SubscriptionGrants

logger = logging.getLogger(__name__)

SUBSCRIBE_CHARS = 20  # a subscribe message's "thing" field holds at most 20 characters


class CustomerService:
    """Customer-service messages under WeChat's rule, counted in the database so that all
    workers together send at most five per citizen message (late replies and status updates
    alike). Without `contacts` (protocol tests) it caps each call at five instead."""

    def __init__(self, api: WeChatApi | None, contacts: ContactWindows | None) -> None:
        self.api = api
        self.contacts = contacts

    async def send(self, openid: str, text: str) -> str:
        """Send `text` in as many messages as it takes; returns what could not go ('' if all
        went): the window is closed, the five are used, or WeChat refused."""
        if self.api is None:
            return text
        pieces = split_for_wechat(text)
        for index, piece in enumerate(pieces):
            if self.contacts is not None:
                allowed = await self.contacts.reserve(openid)
            else:
                allowed = index < MESSAGES_PER_INBOUND
            if not allowed:
                return "\n".join(pieces[index:])
            try:
                await self.api.send_text(openid, piece)
            except WeChatApiError as exc:
                logger.error("wechat customer-service message not delivered: %s", exc)
                return "\n".join(pieces[index:])
        return ""


def subscribe_text(text: str) -> str:
    """The first line, cut to what the template's field holds."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= SUBSCRIBE_CHARS else line[: SUBSCRIBE_CHARS - 1] + "…"


class WeChatNotifier:
    """`CitizenNotifier` for both WeChat doors ("wechat" pushes, "miniprogram" pages): the
    citizen is one openid. Customer-service message while allowed; else a subscribe message
    where a grant is left (the full text also waits as a notice: the message holds 20
    characters); else only the notice."""

    def __init__(
        self,
        config: WeChatConfig,
        service: CustomerService,
        grants: SubscriptionGrants,
        stored: CitizenNotifier,
    ) -> None:
        self.config = config
        self.service = service
        self.grants = grants
        self.stored = stored

    async def notify(self, channel: str, sender_id: str, text: str) -> None:
        rest = await self.service.send(sender_id, text)
        if not rest:
            return
        await self._subscribe(sender_id, rest)
        await self.stored.notify(channel, sender_id, rest)

    async def _subscribe(self, openid: str, text: str) -> bool:
        api, template = self.service.api, self.config.subscribe_template_id
        if api is None or not template or not await self.grants.consume(openid, template):
            return False
        data = {self.config.subscribe_field: {"value": subscribe_text(text)}}
        try:
            await api.send_subscribe(openid, template, data, self.config.subscribe_page)
        except WeChatApiError as exc:  # 43101: the grant WeChat knew of is gone
            logger.warning("wechat subscribe message not delivered: %s", exc)
            return False
        return True
