"""LOCAL stand-ins for WeChat, for tests, benchmarks and development — never production.

`LocalWeChatPush` pushes to /wechat the way WeChat's servers do (signed, optionally in safe
mode, retried when no answer comes within 5 s). `LocalWeChatApi` serves the few API calls
the channel makes (token, customer-service and subscribe send, media get, mini-program
jscode2session, menu create) on 127.0.0.1 and records them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from wechatpy.crypto import WeChatCrypto

from bot.channels.wechat.protocol import parse_xml, signature

logger = logging.getLogger(__name__)

# The smallest valid JPEG header the attachment check accepts, padded: a stand-in photo.
LOCAL_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
WECHAT_TIMEOUT_S = 5.0  # WeChat gives up on an answer after 5 s and retries
WECHAT_RETRIES = 3


def text_push(openid: str, to: str, content: str, msg_id: int, create_time: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


def push_xml(openid: str, to: str, msg_type: str, create_time: int, **fields: Any) -> str:
    """Any push: fields become elements in the order given (CDATA for strings)."""
    parts = [
        f"<ToUserName><![CDATA[{to}]]></ToUserName>",
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>",
        f"<CreateTime>{create_time}</CreateTime>",
        f"<MsgType><![CDATA[{msg_type}]]></MsgType>",
    ]
    for name, value in fields.items():
        text = f"<![CDATA[{value}]]>" if isinstance(value, str) else str(value)
        parts.append(f"<{name}>{text}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


@dataclass
class Delivery:
    status: int
    body: str
    attempts: int
    reply: dict[str, str] | None = None  # the decrypted, parsed passive reply, if any


class LocalWeChatPush:
    """Signs (and in safe mode encrypts) a push like WeChat and posts it, retrying at 5 s."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        encoding_aes_key: str = "",
        app_id: str = "",
        timeout_s: float = WECHAT_TIMEOUT_S,
        retries: int = WECHAT_RETRIES,
    ) -> None:
        self.url = url
        self.token = token
        self.crypto = WeChatCrypto(token, encoding_aes_key, app_id) if encoding_aes_key else None
        self.timeout_s = timeout_s
        self.retries = retries

    def query(self, body_xml: str, *, timestamp: int | None = None) -> tuple[dict[str, str], str]:
        """(query parameters, body) exactly as WeChat would send them."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = str(secrets.randbelow(10**9))
        query = {"timestamp": ts, "nonce": nonce, "signature": signature(self.token, ts, nonce)}
        if self.crypto is None:
            return query, body_xml
        envelope = parse_xml(self.crypto.encrypt_message(body_xml, nonce, ts).encode())
        query.update(encrypt_type="aes", msg_signature=envelope["MsgSignature"])
        body = (
            "<xml><ToUserName><![CDATA[local]]></ToUserName>"
            f"<Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt></xml>"
        )
        return query, body

    def read_reply(self, body: str) -> dict[str, str] | None:
        if not body.startswith("<xml"):
            return None
        fields = parse_xml(body.encode())
        if self.crypto is not None and "Encrypt" in fields:
            plain = self.crypto.decrypt_message(
                {"Encrypt": fields["Encrypt"]},
                fields["MsgSignature"],
                fields["TimeStamp"],
                fields["Nonce"],
            )
            fields = parse_xml(plain.encode())
        return fields

    async def push(self, http: aiohttp.ClientSession, body_xml: str) -> Delivery:
        """Post until answered within the timeout, at most 1 + retries times (same query)."""
        query, body = self.query(body_xml)
        for attempt in range(1, self.retries + 2):
            try:
                async with http.post(
                    self.url,
                    params=query,
                    data=body.encode(),
                    headers={"Content-Type": "text/xml"},
                    timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                ) as response:
                    text = await response.text()
                    return Delivery(response.status, text, attempt, self.read_reply(text))
            except asyncio.TimeoutError:
                continue
        return Delivery(0, "", self.retries + 1)


@dataclass
class LocalWeChatApi:
    """A fake api.weixin.qq.com on 127.0.0.1: records what the channel sends."""

    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    subscribe_sent: list[dict[str, Any]] = field(default_factory=list)
    menus: list[dict[str, Any]] = field(default_factory=list)
    # wx.login codes it accepts: code → openid; each works once, like WeChat's (else 40029).
    login_codes: dict[str, str] = field(default_factory=dict)
    # Subscribe grants WeChat knows of, (openid, template id) → count: a send without one
    # gets 43101, as from WeChat when the user did not accept (or the grant was used).
    subscribe_grants: dict[tuple[str, str], int] = field(default_factory=dict)
    token_fetches: int = 0
    fail_next: int = 0  # answer this many calls with HTTP 503 (a transient error)
    token_delay_s: float = 0.0
    url: str = ""
    _tokens: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    _counter: itertools.count = field(default_factory=itertools.count)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._send)
        app.router.add_get("/cgi-bin/media/get", self._media)
        app.router.add_post("/cgi-bin/message/subscribe/send", self._subscribe_send)
        app.router.add_post("/cgi-bin/menu/create", self._menu_create)
        app.router.add_get("/sns/jscode2session", self._jscode2session)
        return app

    async def start(self, port: int = 0) -> LocalWeChatApi:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/cgi-bin/"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _failing(self) -> bool:
        if self.fail_next > 0:
            self.fail_next -= 1
            return True
        return False

    def _authorised(self, request: web.Request) -> bool:
        return request.query.get("access_token", "") in self._tokens

    async def _token(self, request: web.Request) -> web.Response:
        if self._failing():
            return web.Response(status=503)
        if self.token_delay_s:
            await asyncio.sleep(self.token_delay_s)
        self.token_fetches += 1
        token = f"LOCAL-TOKEN-{next(self._counter)}"
        self._tokens = {token}  # like WeChat: a new token replaces the old one
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def _send(self, request: web.Request) -> web.Response:
        if self._failing():
            return web.Response(status=503)
        if not self._authorised(request):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        self.sent.append(await request.json())
        # Counts only: a reply can quote what the citizen wrote.
        logger.info("LOCAL WeChat API: customer-service message %d received", len(self.sent))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _subscribe_send(self, request: web.Request) -> web.Response:
        if self._failing():
            return web.Response(status=503)
        if not self._authorised(request):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        body = await request.json()
        grant = (body.get("touser", ""), body.get("template_id", ""))
        if self.subscribe_grants.get(grant, 0) < 1:
            return web.json_response({"errcode": 43101, "errmsg": "user refuse to accept"})
        self.subscribe_grants[grant] -= 1
        self.subscribe_sent.append(body)
        logger.info("LOCAL WeChat API: subscribe message %d received", len(self.subscribe_sent))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _menu_create(self, request: web.Request) -> web.Response:
        if self._failing():
            return web.Response(status=503)
        if not self._authorised(request):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        menu = await request.json()
        if not isinstance(menu.get("button"), list) or not 1 <= len(menu["button"]) <= 3:
            return web.json_response({"errcode": 40016, "errmsg": "invalid button size"})
        self.menus.append(menu)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _jscode2session(self, request: web.Request) -> web.Response:
        """sns/jscode2session: app id and secret in the query, no access token."""
        if self._failing():
            return web.Response(status=503)
        query = request.query
        if query.get("grant_type") != "authorization_code" or not query.get("secret"):
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        openid = self.login_codes.pop(query.get("js_code", ""), None)
        if openid is None:
            return web.json_response({"errcode": 40029, "errmsg": "invalid code"})
        session_key = secrets.token_urlsafe(16)
        return web.json_response({"openid": openid, "session_key": session_key})

    async def _media(self, request: web.Request) -> web.Response:
        if self._failing():
            return web.Response(status=503)
        if not self._authorised(request):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        found = self.media.get(request.query.get("media_id", ""))
        if found is None:
            return web.json_response({"errcode": 40007, "errmsg": "invalid media_id"})
        data, mime = found
        return web.Response(body=data, content_type=mime)


async def _push_once(url: str, text: str, openid: str) -> Delivery:
    import os

    sim = LocalWeChatPush(
        url,
        os.environ["WECHAT_TOKEN"],
        encoding_aes_key=os.environ.get("WECHAT_ENCODING_AES_KEY", ""),
        app_id=os.environ.get("WECHAT_APP_ID", ""),
    )
    body = push_xml(
        openid, "gh_local", "text", int(time.time()), Content=text, MsgId=time.time_ns() // 1000
    )
    async with aiohttp.ClientSession() as http:
        return await sim.push(http, body)


def main(argv: list[str] | None = None) -> int:
    """`python -m bot.channels.wechat "你好"`: one push as WeChat would send it, using
    WECHAT_TOKEN (and WECHAT_ENCODING_AES_KEY / WECHAT_APP_ID for safe mode) from the env."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("text")
    parser.add_argument("--url", default="http://127.0.0.1:8080/wechat")
    parser.add_argument("--openid", default="oLOCALdeveloper0001")
    args = parser.parse_args(argv)
    delivery = asyncio.run(_push_once(args.url, args.text, args.openid))
    print(f"HTTP {delivery.status} after {delivery.attempts} attempt(s)")
    print(delivery.reply.get("Content", "") if delivery.reply else delivery.body)
    return 0 if delivery.status == 200 else 1
