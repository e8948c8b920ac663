"""Messages to WeChat citizens beyond the passive reply, on SQLite and PostgreSQL: the 48-hour
window and five customer-service messages per citizen message (shared by workers, late
replies and status updates alike), one-shot subscribe messages, stored notices otherwise —
through the real WeChat client against the LOCAL fake API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp import web

from bot.app import NOTIFIER, RUNTIME, create_app
from bot.channels.wechat import WECHAT, WeChatChannel, WeChatConfig
from bot.channels.wechat.client import DatabaseKeys, SharedTokenClient, WeChatApi
from bot.channels.wechat.handler import add_routes
from bot.channels.wechat.local import LocalWeChatApi, LocalWeChatPush, push_xml
from bot.channels.wechat.notify import CustomerService, WeChatNotifier, subscribe_text
from bot.channels.wechat.protocol import parse_xml
from routing.notify import StoredNotifier
from store.crypto import PiiCipher
from store.db import Database
from store.notices import NoticeBoard
from store.wechat import ContactWindows, KeyStore, SubscriptionGrants
from tests.support import START, Clock, make_settings

CIPHER = PiiCipher(b"w" * 32)
TEMPLATE = "TMPL-progress"
OPENID = "oLOCALnotify01"


@pytest.fixture
async def wechat_api():
    api = await LocalWeChatApi().start()
    yield api
    await api.stop()


def make_api(db: Database, wechat_api: LocalWeChatApi) -> WeChatApi:
    config = WeChatConfig(
        token="t", app_id="wxLOCALnotify", app_secret="s", api_base_url=wechat_api.url
    )
    keys = DatabaseKeys(KeyStore(db), asyncio.get_running_loop(), 30)
    return WeChatApi(SharedTokenClient(config, keys))


class Setup:
    def __init__(self, db: Database, wechat_api: LocalWeChatApi) -> None:
        self.clock = Clock()
        self.contacts = ContactWindows(db, now=self.clock)
        self.grants = SubscriptionGrants(db, now=self.clock)
        self.board = NoticeBoard(db, CIPHER, now=self.clock)
        self.service = CustomerService(make_api(db, wechat_api), self.contacts)
        config = WeChatConfig(token="t", subscribe_template_id=TEMPLATE)
        self.notifier = WeChatNotifier(
            config, self.service, self.grants, StoredNotifier(self.board)
        )


@pytest.fixture
async def setup(db: Database, wechat_api: LocalWeChatApi) -> Setup:
    return Setup(db, wechat_api)


async def test_the_48_hour_window_boundary(setup: Setup) -> None:
    contacts, clock = setup.contacts, setup.clock
    assert await contacts.reserve(OPENID) is False  # never wrote: no window
    await contacts.inbound(OPENID)
    assert await contacts.last_inbound(OPENID) == START
    clock.advance(hours=48, seconds=-1)
    assert await contacts.reserve(OPENID) is True
    clock.advance(seconds=1)
    assert await contacts.reserve(OPENID) is False
    await contacts.inbound(OPENID)  # wrote again: a new window
    assert await contacts.reserve(OPENID) is True


async def test_five_per_citizen_message_for_two_workers_together(db: Database) -> None:
    engines = [Database(db.url) for _ in range(2)]
    try:
        workers = [ContactWindows(engine) for engine in engines]
        await workers[0].inbound(OPENID)
        taken = await asyncio.gather(*(workers[i % 2].reserve(OPENID) for i in range(12)))
        assert taken.count(True) == 5
        await workers[1].inbound(OPENID)  # the next citizen message: five more
        assert await workers[0].reserve(OPENID) is True
    finally:
        for engine in engines:
            await engine.dispose()


async def test_status_update_in_the_window_goes_as_customer_service(setup, wechat_api) -> None:  # noqa: ANN001
    await setup.contacts.inbound(OPENID)
    await setup.notifier.notify("wechat", OPENID, "您的报警已受理。")
    assert wechat_api.sent == [
        {"touser": OPENID, "msgtype": "text", "text": {"content": "您的报警已受理。"}}
    ]
    assert await setup.board.take("wechat", OPENID) == []


async def test_outside_the_window_a_granted_subscribe_message_is_used_once(
    setup, wechat_api
) -> None:  # noqa: ANN001
    await setup.contacts.inbound(OPENID)
    setup.clock.advance(hours=49)
    await setup.grants.grant(OPENID, [TEMPLATE])
    wechat_api.subscribe_grants[(OPENID, TEMPLATE)] = 1
    text = "您的报警20261124001已转交12345市民热线，工单号A-1，请留意来电。"

    await setup.notifier.notify("miniprogram", OPENID, text)
    assert wechat_api.sent == []
    [message] = wechat_api.subscribe_sent
    assert message["template_id"] == TEMPLATE and message["touser"] == OPENID
    assert message["data"] == {"thing1": {"value": subscribe_text(text)}}
    assert len(message["data"]["thing1"]["value"]) <= 20
    assert message["page"] == "pages/incidents/index"
    # The subscribe message holds 20 characters: the full text waits for the page too.
    assert [n.text for n in await setup.board.take("miniprogram", OPENID)] == [text]
    assert await setup.grants.available(OPENID, TEMPLATE) == 0

    await setup.notifier.notify("miniprogram", OPENID, "第二条进度")  # the grant is used up
    assert len(wechat_api.subscribe_sent) == 1
    assert [n.text for n in await setup.board.take("miniprogram", OPENID)] == ["第二条进度"]


async def test_without_a_grant_or_window_the_notice_is_stored(setup, wechat_api) -> None:  # noqa: ANN001
    await setup.notifier.notify("wechat", OPENID, "民警已出发。")
    assert wechat_api.sent == [] and wechat_api.subscribe_sent == []
    assert [n.text for n in await setup.board.take("wechat", OPENID)] == ["民警已出发。"]


async def test_a_grant_wechat_no_longer_honours_falls_back_to_the_notice(setup, wechat_api) -> None:  # noqa: ANN001
    await setup.grants.grant(OPENID, [TEMPLATE])  # but the fake WeChat knows of none: 43101
    await setup.notifier.notify("wechat", OPENID, "已办结。")
    assert wechat_api.subscribe_sent == []
    assert [n.text for n in await setup.board.take("wechat", OPENID)] == ["已办结。"]


async def test_the_sixth_message_after_one_citizen_message_is_not_customer_service(
    db: Database, setup: Setup, wechat_api: LocalWeChatApi
) -> None:
    """A late reply in three pieces and three status updates after one citizen message:
    five go as customer-service messages, the sixth waits as a notice."""
    http_channel = WeChatChannel(
        WeChatConfig(token="t"),
        respond=None,  # type: ignore[arg-type] - not called: only _deliver is
        keep_media=None,  # type: ignore[arg-type]
        dedup=None,  # type: ignore[arg-type]
        api=setup.service.api,
        contacts=setup.contacts,
        notices=setup.board,
    )
    await setup.contacts.inbound(OPENID)
    late_reply = "\n".join(["很长的回答。" * 100] * 3)  # three customer-service pieces
    await http_channel._deliver(OPENID, late_reply)
    assert len(wechat_api.sent) == 3
    for number in range(1, 4):
        await setup.notifier.notify("wechat", OPENID, f"进度{number}")
    assert [m["text"]["content"] for m in wechat_api.sent[3:]] == ["进度1", "进度2"]
    assert [n.text for n in await setup.board.take("wechat", OPENID)] == ["进度3"]


# -- the channel records the window and shows waiting notices ------------------------------


class Echo:
    async def respond(self, openid: str, message: str, is_payload: bool) -> list[dict]:
        return [{"text": f"收到：{message}"}]

    async def keep_media(self, openid: str, kind: str, data: bytes, mime: str) -> str:
        return "照片已收到。"


class NoDedup:
    async def first(self, key: str) -> bool:
        return True

    async def forget(self, key: str) -> None:
        return None


async def test_a_push_opens_the_window_and_gets_waiting_notices_first(
    aiohttp_client,  # noqa: ANN001
    setup: Setup,
) -> None:
    config = WeChatConfig(token="t", timestamp_window_s=0)
    echo = Echo()
    channel = WeChatChannel(
        config,
        respond=echo.respond,
        keep_media=echo.keep_media,
        dedup=NoDedup(),
        api=setup.service.api,
        contacts=ContactWindows(setup.contacts._db),  # the real clock: the push is now
        notices=setup.board,
    )
    app = web.Application()
    app[WECHAT] = channel
    add_routes(app)
    http = await aiohttp_client(app)
    await setup.board.post("wechat", OPENID, "您的报警已办结。")
    sim = LocalWeChatPush(str(http.make_url("/wechat")), "t")

    async def say(text: str, msg_id: int) -> str:
        query, body = sim.query(
            push_xml(OPENID, "gh", "text", int(time.time()), Content=text, MsgId=msg_id)
        )
        response = await http.post("/wechat", params=query, data=body.encode())
        return parse_xml((await response.text()).encode())["Content"]

    assert await say("你好", 1) == "您的报警已办结。\n\n收到：你好"
    assert await say("还在吗", 2) == "收到：还在吗"
    assert await channel.contacts.reserve(OPENID) is True
    # Unsubscribing is not the citizen writing: it opens no window.
    query, body = sim.query(
        push_xml("oLOCALleaving", "gh", "event", int(time.time()), Event="unsubscribe")
    )
    await http.post("/wechat", params=query, data=body.encode())
    assert await channel.contacts.last_inbound("oLOCALleaving") is None


# -- wiring: the app's notifier uses WeChat for both WeChat doors ---------------------------


async def test_the_app_routes_wechat_and_miniprogram_updates_through_wechat(
    aiohttp_client,  # noqa: ANN001
    tmp_path: Path,
    wechat_api: LocalWeChatApi,
) -> None:
    settings = make_settings(
        tmp_path,
        tmp_path / "no-models",
        env={"WECHAT_APP_SECRET": "local-secret", "WECHAT_API_BASE_URL": wechat_api.url},
    )
    http = await aiohttp_client(create_app(settings))
    notifier = http.app[NOTIFIER]
    assert isinstance(notifier.by_channel["wechat"], WeChatNotifier)
    assert notifier.by_channel["miniprogram"] is notifier.by_channel["wechat"]
    assert isinstance(notifier.default, StoredNotifier)
    await http.app[WECHAT].contacts.inbound(OPENID)
    await notifier.notify("wechat", OPENID, "您的报警已受理。")
    assert [m["text"]["content"] for m in wechat_api.sent] == ["您的报警已受理。"]
    await notifier.notify("web", "h5-user", "网页用户的消息")
    runtime = http.app[RUNTIME]
    notices = await NoticeBoard(runtime.db, runtime.cipher).take("web", "h5-user")
    assert [n.text for n in notices] == ["网页用户的消息"]
