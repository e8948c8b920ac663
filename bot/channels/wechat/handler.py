"""/wechat: WeChat's URL check (GET) and message push (POST), answered within 5 seconds.

A push is checked (signature, replay window, size, well-formed), deduplicated, turned into a
dialogue turn, and answered passively if the bot is ready within the budget; otherwise
WeChat gets `success` at once and the reply follows as a customer-service message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.channels.wechat.client import WeChatApi, WeChatApiError
from bot.channels.wechat.config import WeChatConfig
from bot.channels.wechat.dedup import Dedup
from bot.channels.wechat.notify import CustomerService
from bot.channels.wechat.protocol import (
    Inbound,
    Refused,
    SafeMode,
    check_signature,
    check_timestamp,
    inbound,
    parse_body,
    parse_json,
    parse_xml,
)
from bot.channels.wechat.render import (
    ButtonMemory,
    numeric,
    passive_reply,
    pick,
    render_text,
    split_for_wechat,
)
from nlu.text import normalise
from store.notices import NoticeBoard
from store.wechat import ContactWindows

logger = logging.getLogger(__name__)

CALL_110 = "紧急情况请直接拨打110。"
OPENID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MENU = {  # menu CLICK EventKey (ours, set when the menu is created) → dialogue payload
    "REPORT": "/report_incident",
    "MY_INCIDENTS": "/my_incidents",
    "PROFILE": "/help",  # until registration lands in this channel
    "我要报警": "/report_incident",
    "我的报警": "/my_incidents",
    "个人信息": "/help",
}
# The official account's menu (`alarmbot wechat menu` creates it): title → EventKey above.
MENU_BUTTONS = (("我要报警", "REPORT"), ("我的报警", "MY_INCIDENTS"), ("个人信息", "PROFILE"))
GREETING_EVENTS = {"subscribe", "user_enter_tempsession"}
# Events that are the citizen acting (and so open WeChat's 48-hour customer-service window);
# any message is too. Unsubscribing, automatic location reports and send reports are not.
ACTING_EVENTS = {"subscribe", "scan", "click", "view", "user_enter_tempsession"}
CHANNEL = "wechat"  # how the dialogue, reports and notices name this channel
UNSUPPORTED = "暂时只能处理文字、位置、图片和语音消息。请用文字告诉我您遇到的情况。" + CALL_110
BUSY = "系统繁忙，请稍后再试。" + CALL_110
STARTING = "服务正在启动，请稍候再试。" + CALL_110
VOICE_KEPT = "语音已收到，但没能识别内容。请用文字告诉我发生了什么、在哪里。" + CALL_110
MEDIA_FAILED = "图片没能收到，请稍后重发，或用文字描述。" + CALL_110

Respond = Callable[[str, str, bool], Awaitable[list[dict[str, Any]]]]
KeepMedia = Callable[[str, str, bytes, str], Awaitable[str]]
LastButtons = Callable[[str], Awaitable[list[str]]]


def menu_definition() -> dict[str, Any]:
    """The body of WeChat's menu/create: one click button per entry of MENU_BUTTONS."""
    return {"button": [{"type": "click", "name": name, "key": key} for name, key in MENU_BUTTONS]}


class DialogueStarting(Exception):
    """The model is still loading: the citizen is told so, and to call 110 if urgent."""


@dataclass
class _Pending:
    """A push being handled; a retry reaching this worker waits for the same answer."""

    task: asyncio.Task[str | None]
    deferred: bool = False  # the answer goes by customer-service message


class WeChatChannel:
    def __init__(
        self,
        config: WeChatConfig,
        *,
        respond: Respond,
        keep_media: KeepMedia,
        dedup: Dedup,
        api: WeChatApi | None,
        count: Callable[[str], None] | None = None,
        last_buttons: LastButtons | None = None,
        contacts: ContactWindows | None = None,
        notices: NoticeBoard | None = None,
    ) -> None:
        """`contacts` keeps WeChat's 48-hour window and five messages per citizen message
        for all workers; `notices` holds what could not be sent (shown with the next reply).
        Without them: five messages per late reply, and the rest is dropped."""
        self.config = config
        self._count = count or (lambda outcome: None)  # for /metrics: outcomes, no content
        self._respond = respond
        self._keep_media = keep_media
        self._dedup = dedup
        self.api = api
        self.contacts = contacts
        self.customer_service = CustomerService(api, contacts)
        self._notices = notices
        self._safe = (
            SafeMode(config.token, config.encoding_aes_key, config.app_id)
            if config.encoding_aes_key
            else None
        )
        self.buttons = ButtonMemory()
        self._last_buttons = last_buttons
        self._pending: dict[str, _Pending] = {}
        self._answered: OrderedDict[str, str | None] = OrderedDict()  # recent, for retries
        self._background: set[asyncio.Task[None]] = set()

    # -- HTTP ----------------------------------------------------------------------------

    async def verify(self, request: web.Request) -> web.Response:
        """GET: WeChat checks the URL; echo `echostr` if the signature is ours."""
        query = request.query
        try:
            check_signature(
                self.config.token,
                query.get("timestamp", ""),
                query.get("nonce", ""),
                query.get("signature", ""),
            )
            check_timestamp(query.get("timestamp", ""), self.config.timestamp_window_s)
        except Refused as exc:
            logger.warning("wechat URL check refused: %s", exc.reason)
            return web.Response(status=exc.status, text="forbidden")
        return web.Response(text=query.get("echostr", ""))

    async def receive(self, request: web.Request) -> web.Response:
        """POST: a message or event pushed by WeChat."""
        # The budget counts from arrival: the dedup write and reading the body spend it too.
        deadline = asyncio.get_running_loop().time() + self.config.reply_budget_s
        try:
            push, safe_nonce = await self._checked_push(request)
        except Refused as exc:
            logger.warning("wechat push refused (%d): %s", exc.status, exc.reason)
            self._count(f"refused_{exc.status}")
            return web.Response(status=exc.status, text="forbidden" if exc.status == 403 else "")
        try:
            reply, first = await self._answer(push, deadline)
        except Exception:  # dedup storage down, say: a kind word, never a 500 to WeChat
            logger.exception("wechat push not handled")
            self._count("error")
            reply, first = BUSY, False
        if push.body_format == "json":
            # The mini-program takes no passive reply: `success`, and the reply by API.
            if reply and first:
                self._spawn(self._deliver(push.openid, reply))
            return web.Response(text="success")
        if reply is None:
            return web.Response(text="success")
        # One passive reply per push, cut by WeChat at 2048 bytes: the rest goes by API.
        first_piece, *rest = split_for_wechat(reply)
        if rest and first:
            self._spawn(self._deliver(push.openid, "\n".join(rest)))
        xml = passive_reply(first_piece, to_openid=push.openid, from_account=push.to)
        if safe_nonce is not None and self._safe is not None:
            xml = self._safe.encrypt(xml, safe_nonce)
        return web.Response(text=xml, content_type="application/xml")

    async def _checked_push(self, request: web.Request) -> tuple[Inbound, str | None]:
        query = request.query
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        safe = query.get("encrypt_type", "raw").lower() == "aes"
        if safe:
            if self._safe is None:
                raise Refused(400, "safe mode push but no WECHAT_ENCODING_AES_KEY")
            if "signature" in query:
                check_signature(self.config.token, timestamp, nonce, query["signature"])
        else:
            check_signature(self.config.token, timestamp, nonce, query.get("signature", ""))
        check_timestamp(timestamp, self.config.timestamp_window_s)
        body = await self._read_body(request)
        fields, body_format = parse_body(body, request.content_type)
        if safe:
            assert self._safe is not None
            plaintext = self._safe.decrypt(
                fields, query.get("msg_signature", ""), timestamp, nonce
            ).encode()
            fields = parse_json(plaintext) if body_format == "json" else parse_xml(plaintext)
        push = inbound(fields, body_format)
        if not OPENID.fullmatch(push.openid):
            raise Refused(400, "FromUserName is not an openid")
        return push, (nonce if safe else None)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise Refused(413, "body too large")
        body = await request.content.read(limit + 1)
        if len(body) > limit:
            raise Refused(413, "body too large")
        if not body.strip():
            raise Refused(400, "empty body")
        return body

    # -- the 5-second rule and dedup -------------------------------------------------------

    async def _answer(self, push: Inbound, deadline: float) -> tuple[str | None, bool]:
        """(passive reply or None for `success`, whether this copy was the one processed)."""
        key = push.dedup_key
        pending = self._pending.get(key)
        if pending is not None:  # WeChat's retry while we still work on the first copy
            self._count("retry")
            return await self._within_budget(pending, deadline), False
        if key in self._answered:
            self._count("retry")
            return self._answered[key], False
        if not await self._dedup.first(key):
            self._count("duplicate")
            return None, False  # handled by another worker (or before a restart)
        self._count("processed")
        pending = _Pending(asyncio.create_task(self._handle_safely(push)))
        self._pending[key] = pending
        pending.task.add_done_callback(lambda task: self._finished(key, push.openid, task))
        return await self._within_budget(pending, deadline), True

    async def _within_budget(self, pending: _Pending, deadline: float) -> str | None:
        if not pending.deferred:
            left = max(0.0, deadline - asyncio.get_running_loop().time())
            done, _ = await asyncio.wait({pending.task}, timeout=left)
            if done:
                return pending.task.result()
            pending.deferred = True
            self._count("deferred")
        return None

    def _finished(self, key: str, openid: str, task: asyncio.Task[str | None]) -> None:
        pending = self._pending.pop(key, None)
        if task.cancelled():
            return
        reply = task.result()
        self._answered[key] = None if pending is not None and pending.deferred else reply
        while len(self._answered) > 1000:
            self._answered.popitem(last=False)
        if pending is not None and pending.deferred and reply:
            self._spawn(self._deliver(openid, reply))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _deliver(self, openid: str, text: str) -> None:
        """The late reply, as customer-service messages (the citizen wrote just now, so
        WeChat's window is open, unless this message's five are used up)."""
        if self.api is None:
            logger.warning("wechat reply missed the budget and cannot be sent: no app secret")
        try:
            rest = await self.customer_service.send(openid, text)
            if rest and self._notices is not None:
                await self._notices.post(CHANNEL, openid, rest)
                self._count("queued")
                return
        except Exception:  # the database, say: this runs in the background, log it
            logger.exception("wechat late reply not delivered")
            rest = text
        self._count("undelivered" if rest else "delivered")

    async def close(self, timeout_s: float = 10) -> None:
        """Let late replies go out before the worker stops (or give up after `timeout_s`)."""
        pending = [p.task for p in self._pending.values()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)
        await asyncio.sleep(0)  # done callbacks spawn the deliveries
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout_s)
        for task in [*self._background, *(p.task for p in self._pending.values())]:
            task.cancel()

    # -- message types ---------------------------------------------------------------------

    async def _handle_safely(self, push: Inbound) -> str | None:
        # The window is recorded beside the dialogue turn, not before it (a write that would
        # wait its turn for the database), and always before any late reply is sent.
        window = asyncio.ensure_future(self._opened_window(push))
        try:
            reply = await self._handle(push)
            return await self._with_notices(push.openid, reply)
        except DialogueStarting:
            return STARTING
        except Exception:
            logger.exception("wechat %s push failed", push.kind)
            return BUSY
        finally:
            await window

    async def _opened_window(self, push: Inbound) -> None:
        """The citizen acted: customer-service messages may go for 48 hours, five more."""
        if self.contacts is None or (push.kind == "event" and push.event not in ACTING_EVENTS):
            return
        try:
            await self.contacts.inbound(push.openid)
        except Exception:  # the answer matters more; late messages then wait as notices
            logger.exception("wechat contact window not recorded")

    async def _with_notices(self, openid: str, reply: str | None) -> str | None:
        """Status updates that could not be sent go first in the next reply."""
        if self._notices is None or reply is None:
            return reply
        try:
            waiting = await self._notices.take(CHANNEL, openid)
        except Exception:  # they keep waiting; the reply goes
            logger.exception("wechat notices not read")
            return reply
        return "\n\n".join([*(n.text for n in waiting), reply]) if waiting else reply

    async def _handle(self, push: Inbound) -> str | None:
        fields = push.fields
        if push.kind == "text":
            return await self._text(push.openid, fields.get("Content", ""))
        if push.kind == "voice":
            recognised = fields.get("Recognition", "")
            if recognised.strip():
                return await self._text(push.openid, recognised)
            if fields.get("MediaId"):
                await self._media(push.openid, "voice", fields["MediaId"])
            return VOICE_KEPT
        if push.kind == "location":
            return await self._location(push)
        if push.kind == "image":
            return await self._media(push.openid, "image", fields.get("MediaId", ""))
        if push.kind == "event":
            return await self._event(push)
        return UNSUPPORTED

    async def _turn(self, openid: str, message: str, is_payload: bool) -> str | None:
        messages = await self._respond(openid, message, is_payload)
        text, payloads = render_text(messages)
        self.buttons.remember(openid, payloads)
        return text or None

    async def _text(self, openid: str, content: str) -> str | None:
        if numeric(content) is not None:  # "回复1：…": a digit picks that button
            payloads = (
                await self._last_buttons(openid)
                if self._last_buttons is not None
                else self.buttons.payloads(openid)
            )
            payload = pick(payloads, content)
            if payload is not None:
                return await self._turn(openid, payload, True)
        # As on /api/chat: typed text is only ever text, never an intent command.
        message = normalise(content).lstrip("/").strip()
        if not message:
            return "请用文字告诉我您遇到的情况。" + CALL_110
        return await self._turn(openid, message[:2000], False)

    async def _location(self, push: Inbound) -> str | None:
        try:
            lat = float(push.fields.get("Location_X", ""))
            lng = float(push.fields.get("Location_Y", ""))
        except ValueError:
            return UNSUPPORTED
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            return UNSUPPORTED
        label = push.fields.get("Label", "")[:200]
        entities = json.dumps({"lat": lat, "lng": lng, "label": label}, ensure_ascii=False)
        return await self._turn(push.openid, f"/inform{entities}", True)

    async def _media(self, openid: str, kind: str, media_id: str) -> str | None:
        if self.api is None or not media_id:
            return MEDIA_FAILED
        try:
            data, mime = await self.api.download_media(media_id)
            return await self._keep_media(openid, kind, data, mime)
        except WeChatApiError as exc:
            logger.warning("wechat media not fetched: %s", exc)
            return MEDIA_FAILED

    async def _event(self, push: Inbound) -> str | None:
        event = push.event
        if event == "unsubscribe":
            return None
        if event in GREETING_EVENTS:
            return await self._turn(push.openid, "/greet", True)
        if event == "click":
            payload = MENU.get(push.fields.get("EventKey", ""))
            if payload is not None:
                return await self._turn(push.openid, payload, True)
        if event in ("view", "location", "templatesendjobfinish", "view_miniprogram"):
            return None  # notifications that expect no answer
        return UNSUPPORTED


WECHAT = web.AppKey("wechat", WeChatChannel)


async def _verify(request: web.Request) -> web.Response:
    return await request.app[WECHAT].verify(request)


async def _receive(request: web.Request) -> web.Response:
    return await request.app[WECHAT].receive(request)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/wechat", _verify)
    app.router.add_post("/wechat", _receive)
