"""/wechat protocol without the model: signatures, replay window, safe mode, hostile bodies,
dedup, the 5-second rule and message types, against a stand-in dialogue."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wechatpy.crypto import WeChatCrypto

from bot.channels.wechat import WECHAT, WeChatChannel, WeChatConfig
from bot.channels.wechat.client import SharedTokenClient, WeChatApi
from bot.channels.wechat.handler import UNSUPPORTED, DialogueStarting, add_routes
from bot.channels.wechat.local import LOCAL_JPEG, LocalWeChatApi, LocalWeChatPush, push_xml
from bot.channels.wechat.protocol import parse_xml, signature
from bot.channels.wechat.render import ButtonMemory, render_text, split_for_wechat

TOKEN = "123456"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
APP_ID = "wx49f0ab532d5d035a"
OPENID = "oLOCALopenid-0001"
# wechatpy's own published test vector (tests/test_crypto.py): Content "test" from messense.
VECTOR = """<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>
<Encrypt><![CDATA[RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>
<AgentID><![CDATA[1]]></AgentID>
</xml>"""
VECTOR_QUERY = {
    "timestamp": "1411525903",
    "nonce": "461056294",
    "encrypt_type": "aes",
    "msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
}


class MemoryDedup:
    def __init__(self) -> None:
        self.keys: set[str] = set()

    async def first(self, key: str) -> bool:
        if key in self.keys:
            return False
        self.keys.add(key)
        return True

    async def forget(self, key: str) -> None:
        self.keys.discard(key)


class StandInDialogue:
    """Echoes; offers two buttons after "按钮"; can be made slow."""

    def __init__(self) -> None:
        self.turns: list[tuple[str, str, bool]] = []
        self.delay_s = 0.0
        self.starting = False
        self.kept: list[tuple[str, str, int, str]] = []

    async def respond(self, openid: str, message: str, is_payload: bool) -> list[dict[str, Any]]:
        if self.starting:
            raise DialogueStarting
        self.turns.append((openid, message, is_payload))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if message == "按钮":
            buttons = [
                {"title": "是", "payload": '/inform{"answer": "yes"}'},
                {"title": "否", "payload": '/inform{"answer": "no"}'},
            ]
            return [{"text": "是否有人受伤？", "buttons": buttons}]
        return [{"text": f"收到：{message}"}]

    async def keep_media(self, openid: str, kind: str, data: bytes, mime: str) -> str:
        self.kept.append((openid, kind, len(data), mime))
        return "照片已收到。"


def make_config(**changes: Any) -> WeChatConfig:
    base = WeChatConfig(
        token=TOKEN,
        encoding_aes_key=AES_KEY,
        app_id=APP_ID,
        app_secret="local-secret",
        timestamp_window_s=300,
        reply_budget_s=2.0,
    )
    return replace(base, **changes)


@pytest.fixture
async def wechat_api():
    api = await LocalWeChatApi(media={"MEDIA1": (LOCAL_JPEG, "image/jpeg")}).start()
    yield api
    await api.stop()


class Memory:
    """SharedKeys in process memory, for protocol tests."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def set(self, key: str, value: str, ttl_s: float) -> None:
        self.data[key] = value

    def add(self, key: str, ttl_s: float) -> bool:
        if key in self.data:
            return False
        self.data[key] = "1"
        return True

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


@pytest.fixture
def dialogue() -> StandInDialogue:
    return StandInDialogue()


@pytest.fixture
async def client(aiohttp_client, dialogue: StandInDialogue, wechat_api: LocalWeChatApi):  # noqa: ANN001, ANN201
    async def build(**changes: Any):  # noqa: ANN202
        config = make_config(api_base_url=wechat_api.url, **changes)
        app = web.Application()
        channel = WeChatChannel(
            config,
            respond=dialogue.respond,
            keep_media=dialogue.keep_media,
            dedup=MemoryDedup(),
            api=WeChatApi(SharedTokenClient(config, Memory())),
        )
        app[WECHAT] = channel
        add_routes(app)
        http = await aiohttp_client(app)
        return http, channel

    return build


def simulator(http, safe: bool = False) -> LocalWeChatPush:  # noqa: ANN001
    return LocalWeChatPush(
        str(http.make_url("/wechat")),
        TOKEN,
        encoding_aes_key=AES_KEY if safe else "",
        app_id=APP_ID if safe else "",
    )


def text(content: str, msg_id: int = 1, openid: str = OPENID) -> str:
    return push_xml(openid, "gh_local", "text", int(time.time()), Content=content, MsgId=msg_id)


async def post(http, sim: LocalWeChatPush, body_xml: str):  # noqa: ANN001, ANN201
    query, body = sim.query(body_xml)
    response = await http.post("/wechat", params=query, data=body.encode())
    return response, await response.text()


# -- crypto: the published vector -----------------------------------------------------------


async def test_wechatpy_published_vector_end_to_end(client) -> None:  # noqa: ANN001
    http, _ = await client(timestamp_window_s=0)
    query = {**VECTOR_QUERY, "signature": signature(TOKEN, "1411525903", "461056294")}
    response = await http.post("/wechat", params=query, data=VECTOR.encode())
    assert response.status == 200
    body = await response.text()
    reply = simulator(http, safe=True).read_reply(body)
    assert reply is not None and reply["ToUserName"] == "messense"
    assert reply["Content"] == "收到：test"


async def test_vector_without_plain_signature_is_still_accepted(client) -> None:  # noqa: ANN001
    http, _ = await client(timestamp_window_s=0)
    response = await http.post("/wechat", params=VECTOR_QUERY, data=VECTOR.encode())
    assert response.status == 200


async def test_vector_is_a_replay_outside_the_window(client) -> None:  # noqa: ANN001
    http, _ = await client()  # 300 s window; the vector is from 2014
    response = await http.post("/wechat", params=VECTOR_QUERY, data=VECTOR.encode())
    assert response.status == 403


async def test_tampered_ciphertext_is_refused(client) -> None:  # noqa: ANN001
    http, _ = await client(timestamp_window_s=0)
    body = VECTOR.replace("RgqEoJj5", "RgqEoJj6")
    response = await http.post("/wechat", params=VECTOR_QUERY, data=body.encode())
    assert response.status == 403


# -- verification and signatures ------------------------------------------------------------


async def test_url_verification_echoes_only_when_signed(client) -> None:  # noqa: ANN001
    http, _ = await client()
    ts, nonce = str(int(time.time())), "42"
    good = {"timestamp": ts, "nonce": nonce, "signature": signature(TOKEN, ts, nonce)}
    response = await http.get("/wechat", params={**good, "echostr": "hello123"})
    assert response.status == 200 and await response.text() == "hello123"
    response = await http.get("/wechat", params={**good, "signature": "0" * 40, "echostr": "x"})
    assert response.status == 403


@pytest.mark.parametrize("safe", [False, True])
async def test_plain_and_safe_text_push_answered_passively(client, dialogue, safe) -> None:  # noqa: ANN001
    http, _ = await client()
    response, body = await post(http, simulator(http, safe), text("你好"))
    assert response.status == 200
    reply = simulator(http, safe).read_reply(body)
    assert reply is not None
    assert reply["ToUserName"] == OPENID and reply["FromUserName"] == "gh_local"
    assert reply["MsgType"] == "text" and reply["Content"] == "收到：你好"
    if safe:
        assert "<Encrypt>" in body and "收到" not in body
    assert dialogue.turns == [(OPENID, "你好", False)]


async def test_compatible_mode_uses_the_encrypted_copy(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client()
    sim = simulator(http, safe=True)
    query, body = sim.query(text("真的内容"))
    compatible = body.replace("</xml>", "<Content><![CDATA[伪造]]></Content></xml>")
    response = await http.post("/wechat", params=query, data=compatible.encode())
    assert response.status == 200
    assert dialogue.turns == [(OPENID, "真的内容", False)]


async def test_bad_signature_and_old_timestamp_are_403_and_not_processed(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client()
    sim = simulator(http)
    query, body = sim.query(text("你好"))
    response = await http.post("/wechat", params={**query, "signature": "f" * 40}, data=body)
    assert response.status == 403
    old, body = sim.query(text("你好"), timestamp=int(time.time()) - 3600)
    response = await http.post("/wechat", params=old, data=body)
    assert response.status == 403
    assert dialogue.turns == []


async def test_replay_window_zero_turns_the_check_off(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client(timestamp_window_s=0)
    query, body = simulator(http).query(text("你好"), timestamp=1_000_000_000)
    response = await http.post("/wechat", params=query, data=body)
    assert response.status == 200 and len(dialogue.turns) == 1


# -- hostile bodies -------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<xml><FromUserName>o1</FromUserName><MsgType>text</MsgType><Content>&d;</Content></xml>"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<xml><FromUserName>o1</FromUserName><MsgType>text</MsgType><Content>&x;</Content></xml>"""


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, XXE, "<xml><unclosed>", "not xml at all", "<other/>", '{"a": [', "[1]"],
)
async def test_hostile_or_malformed_bodies_are_400(client, dialogue, body: str) -> None:  # noqa: ANN001
    http, _ = await client()
    query, _ = simulator(http).query(text("x"))
    response = await http.post("/wechat", params=query, data=body.encode())
    assert response.status == 400
    assert dialogue.turns == []


async def test_body_size_is_limited(client) -> None:  # noqa: ANN001
    http, _ = await client()
    query, _ = simulator(http).query(text("x"))
    response = await http.post("/wechat", params=query, data=b"<xml>" + b" " * 70_000 + b"</xml>")
    assert response.status == 413


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.one_of(
        st.binary(max_size=600),
        st.text(max_size=300).map(lambda t: f"<xml>{t}</xml>"),
        st.dictionaries(
            st.sampled_from(
                ["FromUserName", "MsgType", "Content", "MsgId", "Event", "Location_X", "Encrypt"]
            ),
            st.text(max_size=40),
        ).map(lambda d: "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in d.items()) + "</xml>"),
    ),
    safe=st.booleans(),
)
async def test_fuzzed_pushes_never_500(client, body, safe) -> None:  # noqa: ANN001
    http, _ = await client()
    query, _ = simulator(http, safe).query(text("x"))
    data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    response = await http.post("/wechat", params=query, data=data)
    assert response.status in (200, 400, 403, 413)
    response = await http.post("/wechat", params={"x": body[:20]} if isinstance(body, str) else {})
    assert response.status in (400, 403)


# -- dedup and the 5-second rule --------------------------------------------------------------


async def test_a_retry_is_answered_but_processed_once(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client()
    sim = simulator(http)
    push = text("只处理一次", msg_id=77)
    first = await post(http, sim, push)
    again = await post(http, sim, push)
    assert first[0].status == again[0].status == 200
    assert parse_xml(again[1].encode())["Content"] == "收到：只处理一次"
    assert len(dialogue.turns) == 1


async def test_concurrent_retries_share_the_first_answer(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client()
    dialogue.delay_s = 0.3
    sim = simulator(http)
    push = text("并发重试", msg_id=78)
    results = await asyncio.gather(*(post(http, sim, push) for _ in range(3)))
    assert {parse_xml(body.encode())["Content"] for _, body in results} == {"收到：并发重试"}
    assert len(dialogue.turns) == 1


async def test_slow_bot_gets_success_then_a_customer_service_message(  # noqa: ANN001
    client, dialogue, wechat_api
) -> None:
    http, channel = await client(reply_budget_s=0.2)
    dialogue.delay_s = 1.0
    response, body = await post(http, simulator(http, safe=True), text("慢一点", msg_id=79))
    assert response.status == 200 and body == "success"
    await channel.close()
    assert wechat_api.sent == [
        {"touser": OPENID, "msgtype": "text", "text": {"content": "收到：慢一点"}}
    ]
    # WeChat's retry after 5 s: answered, not processed again, nothing sent twice.
    response, body = await post(http, simulator(http), text("慢一点", msg_id=79))
    assert body == "success" and len(dialogue.turns) == 1 and len(wechat_api.sent) == 1


async def test_transient_api_errors_are_retried(client, dialogue, wechat_api) -> None:  # noqa: ANN001
    http, channel = await client(reply_budget_s=0.05)
    dialogue.delay_s = 0.3
    wechat_api.fail_next = 2
    await post(http, simulator(http), text("重试发送", msg_id=80))
    await channel.close()
    assert [m["text"]["content"] for m in wechat_api.sent] == ["收到：重试发送"]


async def test_a_long_reply_is_cut_and_the_rest_sent_by_api(client, dialogue, wechat_api) -> None:  # noqa: ANN001
    http, channel = await client()
    long_text = "\n".join(["这是一段很长的回答。" * 10] * 12)
    body = await reply_to(http, text(long_text, msg_id=81))
    await channel.close()
    sent = "\n".join(m["text"]["content"] for m in wechat_api.sent)
    assert len(body.encode()) <= 2000 and sent
    assert body + "\n" + sent == "收到：" + long_text


# -- message types ----------------------------------------------------------------------------


def push(msg_type: str, msg_id: int | None = 5, **fields: Any) -> str:
    if msg_id is not None:
        fields["MsgId"] = msg_id
    return push_xml(OPENID, "gh_local", msg_type, int(time.time()), **fields)


async def reply_to(http, body_xml: str) -> str:  # noqa: ANN001
    _, body = await post(http, simulator(http), body_xml)
    return body if body == "success" else parse_xml(body.encode())["Content"]


async def test_buttons_are_numbered_and_a_digit_sends_the_payload(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client()
    shown = await reply_to(http, text("按钮", msg_id=10))
    assert shown == "是否有人受伤？\n\n回复1：是\n回复2：否"
    await reply_to(http, text("２", msg_id=11))  # full-width digits count too
    assert dialogue.turns[-1] == (OPENID, '/inform{"answer": "no"}', True)
    await reply_to(http, text("7", msg_id=12))  # no such button: just text
    assert dialogue.turns[-1] == (OPENID, "7", False)


async def test_typed_text_is_never_an_intent_command(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client()
    await reply_to(http, text("/restart", msg_id=13))
    assert dialogue.turns[-1] == (OPENID, "restart", False)


async def test_location_becomes_an_inform_payload(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client()
    await reply_to(
        http, push("location", Location_X=31.2304, Location_Y=121.4737, Scale=15, Label="人民广场")
    )
    openid, message, is_payload = dialogue.turns[-1]
    assert is_payload and message.startswith("/inform")
    assert json.loads(message[len("/inform") :]) == {
        "lat": 31.2304,
        "lng": 121.4737,
        "label": "人民广场",
    }


async def test_image_is_fetched_and_kept(client, dialogue, wechat_api) -> None:  # noqa: ANN001
    http, _ = await client()
    assert await reply_to(http, push("image", PicUrl="http://x/p.jpg", MediaId="MEDIA1")) == (
        "照片已收到。"
    )
    assert dialogue.kept == [(OPENID, "image", len(LOCAL_JPEG), "image/jpeg")]
    assert wechat_api.token_fetches == 1


async def test_voice_recognition_is_text(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client()
    await reply_to(http, push("voice", MediaId="V1", Format="amr", Recognition="有人打架"))
    assert dialogue.turns[-1] == (OPENID, "有人打架", False)


@pytest.mark.parametrize(
    ("fields", "payload"),
    [
        ({"Event": "subscribe"}, "/greet"),
        ({"Event": "CLICK", "EventKey": "我要报警"}, "/report_incident"),
        ({"Event": "CLICK", "EventKey": "MY_INCIDENTS"}, "/my_incidents"),
        ({"Event": "CLICK", "EventKey": "个人信息"}, "/help"),
        ({"Event": "user_enter_tempsession", "SessionFrom": "x"}, "/greet"),
    ],
)
async def test_events(client, dialogue, fields, payload) -> None:  # noqa: ANN001
    http, _ = await client()
    await reply_to(http, push("event", msg_id=None, **fields))
    assert dialogue.turns[-1] == (OPENID, payload, True)


async def test_unsubscribe_and_unknown_types(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client()
    assert await reply_to(http, push("event", msg_id=None, Event="unsubscribe")) == "success"
    assert await reply_to(http, push("shortvideo", MediaId="M")) == UNSUPPORTED
    assert dialogue.turns == []


async def test_json_push_is_answered_success_and_sent_by_api(client, dialogue, wechat_api) -> None:  # noqa: ANN001
    http, channel = await client()
    ts, nonce = str(int(time.time())), "9"
    body = {
        "ToUserName": "gh_mini",
        "FromUserName": OPENID,
        "CreateTime": int(ts),
        "MsgType": "text",
        "Content": "小程序",
        "MsgId": 99,
    }
    response = await http.post(
        "/wechat",
        params={"timestamp": ts, "nonce": nonce, "signature": signature(TOKEN, ts, nonce)},
        json=body,
    )
    assert response.status == 200 and await response.text() == "success"
    assert dialogue.turns == [(OPENID, "小程序", False)]


async def test_starting_model_gets_a_polite_answer(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client()
    dialogue.starting = True
    assert "正在启动" in await reply_to(http, text("你好", msg_id=14))


# -- pure helpers -----------------------------------------------------------------------------


def test_render_and_split() -> None:
    text_out, payloads = render_text(
        [{"text": "a"}, {"buttons": [{"title": "t", "payload": "/p"}]}]
    )
    assert text_out == "a\n\n回复1：t" and payloads == ["/p"]
    pieces = split_for_wechat("很长" * 2000)
    assert all(len(p.encode()) <= 2000 for p in pieces) and "".join(pieces) == "很长" * 2000
    memory = ButtonMemory(capacity=1)
    memory.remember("a", ["/x"])
    memory.remember("b", ["/y"])
    assert memory.payload_for("a", "1") is None and memory.payload_for("b", " 1 ") == "/y"


# -- configuration and wiring -----------------------------------------------------------------


def test_config_from_env() -> None:
    from bot.channels.wechat.config import WeChatConfigError

    assert WeChatConfig.from_env({}) is None
    config = WeChatConfig.from_env({"WECHAT_TOKEN": "t", "WECHAT_TIMESTAMP_WINDOW_S": "0"})
    assert config is not None and config.timestamp_window_s == 0 and not config.can_send
    for bad in (
        {"WECHAT_ENCODING_AES_KEY": "short", "WECHAT_APP_ID": "wx1"},
        {"WECHAT_ENCODING_AES_KEY": AES_KEY},  # safe mode without the app id
        {"WECHAT_REPLY_BUDGET_S": "5"},
        {"WECHAT_TIMESTAMP_WINDOW_S": "-1"},
        {"WECHAT_API_BASE_URL": "local", "ALARMBOT_ENV": "prod"},
    ):
        with pytest.raises(WeChatConfigError):
            WeChatConfig.from_env({"WECHAT_TOKEN": "t", **bad})


async def test_create_app_routes_wechat_only_when_configured(aiohttp_client, tmp_path) -> None:  # noqa: ANN001
    from bot.app import create_app
    from tests.support import make_settings

    settings = make_settings(tmp_path, tmp_path / "no-models")
    plain = await aiohttp_client(create_app(replace(settings, wechat=None)))
    assert (await plain.get("/wechat")).status == 404

    local = WeChatConfig.from_env({"WECHAT_TOKEN": TOKEN, "WECHAT_API_BASE_URL": "local"})
    http = await aiohttp_client(create_app(replace(settings, wechat=local)))
    ts, nonce = str(int(time.time())), "1"
    query = {"timestamp": ts, "nonce": nonce, "signature": signature(TOKEN, ts, nonce)}
    response = await http.get("/wechat", params={**query, "echostr": "ok"})
    assert await response.text() == "ok"
    channel = http.app[WECHAT]
    assert channel.api is not None and channel.api.client.API_BASE_URL.startswith(
        "http://127.0.0.1:"
    )
    # No model here: a push is answered politely, never with an error.
    response = await http.post("/wechat", params=query, data=text("你好", msg_id=501).encode())
    assert "110" in parse_xml((await response.text()).encode())["Content"]
    response = await http.post("/wechat", params={**query, "signature": "0" * 40}, data=b"<xml/>")
    assert response.status == 403
    exported = await (await http.get("/metrics")).text()
    assert 'alarmbot_wechat_pushes_total{outcome="processed"} 1.0' in exported
    assert 'alarmbot_wechat_pushes_total{outcome="refused_403"} 1.0' in exported


# -- the simulator's own retries, and fuzzing behind a valid signature -------------------------


async def test_simulator_retries_are_processed_once(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client()
    dialogue.delay_s = 0.5
    sim = simulator(http, safe=True)
    sim.timeout_s = 0.2  # WeChat's 5 s, scaled down: the first copies time out, a retry answers
    async with aiohttp.ClientSession() as session:
        delivery = await sim.push(session, text("慢回复", msg_id=600))
    assert delivery.status == 200 and delivery.attempts > 1
    assert delivery.reply is not None and delivery.reply["Content"] == "收到：慢回复"
    assert len(dialogue.turns) == 1


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    encrypt=st.text(alphabet=st.characters(codec="ascii"), max_size=300),
    plaintext=st.one_of(
        st.text(max_size=200),
        st.text(max_size=100).map(lambda t: f"<xml><FromUserName>{t}</FromUserName></xml>"),
    ),
    use_plaintext=st.booleans(),
)
async def test_fuzzed_safe_mode_behind_a_valid_msg_signature_never_500(
    client, encrypt, plaintext, use_plaintext
) -> None:  # noqa: ANN001
    """What only WeChat (or someone with our token) could send: still never a 500."""
    http, _ = await client()
    ts, nonce = str(int(time.time())), "7"
    if use_plaintext:  # well encrypted, arbitrary content
        crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
        encrypt = parse_xml(crypto.encrypt_message(plaintext, nonce, ts).encode())["Encrypt"]
    if "]]>" in encrypt:
        return
    body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    query = {
        "timestamp": ts,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": signature(TOKEN, ts, nonce, encrypt.strip()),
    }
    response = await http.post("/wechat", params=query, data=body.encode())
    assert response.status in (200, 400, 403)


def test_last_turn_payloads_come_from_the_bot_messages_since_the_citizen_wrote() -> None:
    from rasa.shared.core.events import BotUttered, UserUttered

    from bot.channels.wechat.render import last_turn_payloads

    yes_no = [{"title": "是", "payload": "/yes"}, {"title": "否", "payload": "/no"}]
    events = [
        BotUttered("old", {"buttons": [{"title": "旧", "payload": "/old"}]}),
        UserUttered("你好"),
        BotUttered("第一条", {"buttons": yes_no}),
        BotUttered("第二条", {"buttons": [{"title": "取消", "payload": "/cancel"}]}),
    ]
    assert last_turn_payloads(events) == ["/yes", "/no", "/cancel"]
    assert last_turn_payloads(events[:2]) == []


async def test_a_digit_uses_the_stored_buttons_when_given(client, dialogue) -> None:  # noqa: ANN001
    http, channel = await client()
    asked: list[str] = []

    async def stored(openid: str) -> list[str]:
        asked.append(openid)
        return ["/from_another_worker"]

    channel._last_buttons = stored
    await reply_to(http, text("1", msg_id=700))
    assert asked == [OPENID] and dialogue.turns[-1] == (OPENID, "/from_another_worker", True)
    await reply_to(http, text("你好", msg_id=701))  # not a number: no lookup
    assert asked == [OPENID]


async def test_voice_without_recognition_is_kept_and_text_asked_for(  # noqa: ANN001
    client, dialogue, wechat_api
) -> None:
    wechat_api.media["VOICE1"] = (b"#!AMR\n" + b"\x00" * 32, "audio/amr")
    http, _ = await client()
    reply = await reply_to(http, push("voice", MediaId="VOICE1", Format="amr"))
    assert "文字" in reply and "110" in reply
    assert dialogue.kept == [(OPENID, "voice", 38, "audio/amr")] and dialogue.turns == []


async def test_an_event_retry_is_processed_once(client, dialogue) -> None:  # noqa: ANN001
    http, _ = await client()
    event = push("event", msg_id=None, Event="subscribe")  # no MsgId: sender + CreateTime
    await reply_to(http, event)
    await reply_to(http, event)
    assert dialogue.turns == [(OPENID, "/greet", True)]


async def test_json_push_in_safe_mode(client, dialogue, wechat_api) -> None:  # noqa: ANN001
    http, channel = await client()
    ts, nonce = str(int(time.time())), "11"
    plain = json.dumps(
        {
            "ToUserName": "gh_mini",
            "FromUserName": OPENID,
            "CreateTime": int(ts),
            "MsgType": "text",
            "Content": "小程序加密",
            "MsgId": 98,
        },
        ensure_ascii=False,
    )
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    encrypt = parse_xml(crypto.encrypt_message(plain, nonce, ts).encode())["Encrypt"]
    query = {
        "timestamp": ts,
        "nonce": nonce,
        "signature": signature(TOKEN, ts, nonce),
        "encrypt_type": "aes",
        "msg_signature": signature(TOKEN, ts, nonce, encrypt),
    }
    response = await http.post(
        "/wechat", params=query, json={"ToUserName": "gh_mini", "Encrypt": encrypt}
    )
    assert response.status == 200 and await response.text() == "success"
    await channel.close()
    assert dialogue.turns == [(OPENID, "小程序加密", False)]
    assert [m["text"]["content"] for m in wechat_api.sent] == ["收到：小程序加密"]
