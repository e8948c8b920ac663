"""/wechat end to end with the real model: the published safe-mode vector, a report over
numbered replies, a shared location, retries processed once (server from tests/support)."""

from __future__ import annotations

import time
import uuid

import aiohttp
import pytest
from rasa.shared.core.events import UserUttered

from bot.app import RUNTIME
from bot.channels.wechat import WECHAT
from bot.channels.wechat.local import LocalWeChatPush, push_xml
from bot.channels.wechat.protocol import signature
from bot.channels.wechat.render import ButtonMemory
from store.citizens import conversation_key
from store.incidents import IncidentBook
from tests.support import WECHAT_TEST_ENV, ServerThread
from tests.test_wechat_protocol import VECTOR, VECTOR_QUERY

TOKEN = WECHAT_TEST_ENV["WECHAT_TOKEN"]


class WeChatCitizen:
    """One WeChat user pushing through the local simulator, plain or safe mode."""

    def __init__(self, url: str, safe: bool = False) -> None:
        self.openid = f"oLOCAL{uuid.uuid4().hex[:20]}"
        self.sim = LocalWeChatPush(
            f"{url}/wechat",
            TOKEN,
            encoding_aes_key=WECHAT_TEST_ENV["WECHAT_ENCODING_AES_KEY"] if safe else "",
            app_id=WECHAT_TEST_ENV["WECHAT_APP_ID"] if safe else "",
        )
        self._msg_id = int(time.time() * 1000)

    def push(self, msg_type: str, **fields: object) -> str:
        if msg_type != "event":
            self._msg_id += 1
            fields["MsgId"] = self._msg_id
        return push_xml(self.openid, "gh_local", msg_type, int(time.time()), **fields)

    async def send(self, body_xml: str) -> str:
        async with aiohttp.ClientSession() as http:
            delivery = await self.sim.push(http, body_xml)
        assert delivery.status == 200 and delivery.attempts == 1, delivery
        assert delivery.reply is not None, delivery.body
        assert delivery.reply["ToUserName"] == self.openid
        return delivery.reply["Content"]

    async def say(self, text: str) -> str:
        return await self.send(self.push("text", Content=text))


def user_turns(server: ServerThread, openid: str) -> int:
    store = server.app[RUNTIME].dialogue.agent.tracker_store
    tracker = server.call(store.retrieve(conversation_key("wechat", openid)))
    return sum(isinstance(e, UserUttered) for e in tracker.events) if tracker else 0


async def test_wechatpy_published_vector_through_the_real_bot(live_server_url: str) -> None:
    query = {**VECTOR_QUERY, "signature": signature(TOKEN, "1411525903", "461056294")}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{live_server_url}/wechat", params=query, data=VECTOR.encode()) as response,
    ):
        assert response.status == 200
        body = await response.text()
    sim = LocalWeChatPush(
        "",
        TOKEN,
        encoding_aes_key=WECHAT_TEST_ENV["WECHAT_ENCODING_AES_KEY"],
        app_id=WECHAT_TEST_ENV["WECHAT_APP_ID"],
    )
    if body != "success":
        reply = sim.read_reply(body)
        assert reply is not None and reply["ToUserName"] == "messense"
        assert reply["MsgType"] == "text" and reply["Content"]


@pytest.mark.parametrize("safe", [False, True])
async def test_greeting_in_chinese(live_server_url: str, safe: bool) -> None:
    citizen = WeChatCitizen(live_server_url, safe)
    reply = await citizen.say("你好")
    assert "110" in reply and "回复1：" in reply


async def test_civic_report_over_numbered_replies(live_server, live_server_url: str) -> None:  # noqa: ANN001
    citizen = WeChatCitizen(live_server_url, safe=True)
    reply = await citizen.say("小区物业一直不修电梯，老人上下楼很困难")
    assert "12345" in reply
    reply = await citizen.say("浦东新区世纪大道100号")
    assert "回复1：同意" in reply and "回复2：不同意" in reply
    live_server.app[WECHAT].buttons = ButtonMemory()  # as if the digit reached another worker
    reply = await citizen.say("1")
    assert "请核对" in reply and "回复1：提交" in reply
    reply = await citizen.say("1")
    runtime = live_server.app[RUNTIME]
    book = IncidentBook(runtime.db, runtime.cipher)
    [incident] = live_server.call(book.for_reporter("wechat", citizen.openid))
    assert f"编号{incident.number}" in reply
    assert incident.route == "12345"
    assert incident.status in ("received", "transferred_12345"), "the relay may be done already"


async def test_menu_click_and_location_share(live_server_url: str) -> None:
    citizen = WeChatCitizen(live_server_url)
    reply = await citizen.send(citizen.push("event", Event="CLICK", EventKey="我要报警"))
    assert reply
    await citizen.say("我的电动车在楼下被人偷了")
    reply = await citizen.send(
        citizen.push(
            "location", Location_X=31.2304, Location_Y=121.4737, Scale=15, Label="人民广场"
        )
    )
    assert "什么时候" in reply  # the place came from the share; the next question is the time


async def test_a_retry_is_answered_but_processed_once(live_server, live_server_url: str) -> None:  # noqa: ANN001
    citizen = WeChatCitizen(live_server_url)
    push = citizen.push("text", Content="你好")
    first = await citizen.send(push)
    again = await citizen.send(push)
    assert first == again
    assert user_turns(live_server, citizen.openid) == 1


@pytest.fixture
def fake_wechat_api(live_server):  # noqa: ANN001, ANN201
    """The LOCAL fake WeChat API, plugged into the shared server's channel for one test."""
    from bot.channels.wechat import WeChatConfig
    from bot.channels.wechat.client import DatabaseKeys, SharedTokenClient, WeChatApi
    from bot.channels.wechat.local import LOCAL_JPEG, LocalWeChatApi
    from store.wechat import KeyStore

    api = live_server.call(LocalWeChatApi(media={"MEDIA-E2E": (LOCAL_JPEG, "image/jpeg")}).start())
    channel = live_server.app[WECHAT]
    config = WeChatConfig(token=TOKEN, app_id="wxLOCALe2e", app_secret="s", api_base_url=api.url)
    keys = DatabaseKeys(KeyStore(live_server.app[RUNTIME].db), live_server._loop, 30)
    channel.api = WeChatApi(SharedTokenClient(config, keys))
    yield api
    channel.api = None
    live_server.call(api.stop())


async def test_a_photo_is_fetched_and_kept_with_the_report(live_server, fake_wechat_api) -> None:  # noqa: ANN001
    from sqlalchemy import select

    from store.models import Attachment

    citizen = WeChatCitizen(live_server.url)
    await citizen.say("我的电动车在楼下被人偷了")
    reply = await citizen.send(
        citizen.push("image", PicUrl="http://127.0.0.1/p.jpg", MediaId="MEDIA-E2E")
    )
    assert reply.startswith("照片已收到")

    async def kept() -> list[tuple[str, str]]:
        query = select(Attachment.kind, Attachment.mime).where(
            Attachment.channel == "wechat", Attachment.sender_id == citizen.openid
        )
        async with live_server.app[RUNTIME].db.reader() as session:
            return [tuple(row) for row in await session.execute(query)]

    assert live_server.call(kept()) == [("image", "image/jpeg")]
    assert fake_wechat_api.token_fetches == 1


async def test_miniprogram_signs_in_and_chats_as_its_openid(live_server, fake_wechat_api) -> None:  # noqa: ANN001
    openid = f"oLOCALmp{uuid.uuid4().hex[:16]}"
    fake_wechat_api.login_codes["code-e2e-mp"] = openid
    async with aiohttp.ClientSession(live_server.url) as http:
        async with http.post("/api/mp/login", json={"code": "code-e2e-mp"}) as response:
            assert response.status == 200
            token = (await response.json())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(
            "/api/chat", headers=headers, json={"sender": "someone-else", "text": "你好"}
        ) as response:
            assert response.status == 200
            assert "110" in (await response.json())["messages"][0]["text"]
        async with http.get("/api/mp/incidents", headers=headers) as response:
            assert (await response.json()) == {"incidents": []}
    store = live_server.app[RUNTIME].dialogue.agent.tracker_store
    assert live_server.call(store.retrieve(conversation_key("miniprogram", openid))) is not None
    assert live_server.call(store.retrieve(conversation_key("web", "someone-else"))) is None
