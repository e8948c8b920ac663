"""End to end over HTTP against a running server with the real trained model."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest

from store.citizens import conversation_key


async def post_chat(url: str, body, *, raw: bool = False) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        kwargs = {"data": body} if raw else {"json": body}
        async with http.post(f"{url}/api/chat", **kwargs) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()


def texts(reply: dict) -> str:
    return "\n".join(m.get("text", "") for m in reply["messages"])


async def test_greeting_in_chinese_with_quick_replies(live_server_url: str) -> None:
    status, reply = await post_chat(live_server_url, {"sender": "e2e-greet", "text": "你好"})
    assert status == 200
    assert "110" in texts(reply)
    assert re.search(r"[\u4e00-\u9fff]", texts(reply))
    buttons = [b for m in reply["messages"] for b in m.get("buttons", [])]
    assert {"title": "我要报警", "payload": "/report_incident"} in buttons
    assert set(reply["messages"][0]) <= {"text", "buttons", "image", "custom", "attachment"}


async def test_payload_runs_the_intent(live_server_url: str) -> None:
    status, reply = await post_chat(live_server_url, {"sender": "e2e-pay", "payload": "/help"})
    assert status == 200
    assert "110" in texts(reply) and "一步步问清" in texts(reply)


async def test_response_json_keeps_chinese_readable(live_server_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        body = {"sender": "e2e-raw", "text": "你好"}
        async with http.post(f"{live_server_url}/api/chat", json=body) as response:
            raw = await response.text()
    assert "\\u" not in raw and "您好" in raw


async def test_greeting_knows_a_registered_citizen(live_server) -> None:  # noqa: ANN001
    from sqlalchemy import insert

    from store.models import Citizen

    async def register() -> None:
        from bot.app import RUNTIME

        async with live_server.app[RUNTIME].db.session() as session:
            await session.execute(
                insert(Citizen).values(channel="web", sender_id="e2e-known", status="registered")
            )

    live_server.call(register())
    _, known = await post_chat(live_server.url, {"sender": "e2e-known", "text": "你好"})
    _, stranger = await post_chat(live_server.url, {"sender": "e2e-stranger", "text": "你好"})
    assert "实名登记" not in texts(known)
    assert "实名登记" in texts(stranger)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("this is not json", 400, "invalid_json"),
        ("[1, 2, 3]", 400, "invalid_json"),
        ('{"sender": "gbk", "text": "你好"}'.encode("gbk"), 400, "invalid_json"),
        (json.dumps({"text": "你好"}), 400, "invalid_sender"),
        (json.dumps({"sender": "", "text": "你好"}), 400, "invalid_sender"),
        (json.dumps({"sender": "a b<script>", "text": "你好"}), 400, "invalid_sender"),
        (json.dumps({"sender": 42, "text": "你好"}), 400, "invalid_sender"),
        (json.dumps({"sender": "x" * 129, "text": "你好"}), 400, "invalid_sender"),
        (json.dumps({"sender": "bad-1"}), 400, "missing_text"),
        (json.dumps({"sender": "bad-2", "text": 123}), 400, "invalid_text"),
        (json.dumps({"sender": "bad-3", "text": ["你好"]}), 400, "invalid_text"),
        (json.dumps({"sender": "bad-4", "text": "报" * 10_000}), 413, "text_too_long"),
        (json.dumps({"sender": "bad-5", "payload": "/no_such_intent"}), 400, "invalid_payload"),
        (json.dumps({"sender": "bad-6", "payload": "help"}), 400, "invalid_payload"),
        (json.dumps({"sender": "bad-7", "payload": 7}), 400, "invalid_payload"),
    ],
)
async def test_bad_bodies_get_a_clear_json_error(
    live_server_url: str, body: str | bytes, status: int, code: str
) -> None:
    got_status, reply = await post_chat(live_server_url, body, raw=True)
    assert (got_status, reply["error"]) == (status, code)
    assert re.search(r"[\u4e00-\u9fff]", reply["message"]), "the message is for a citizen"


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "/", "\x00"])
async def test_empty_text_gets_a_polite_prompt(live_server_url: str, text: str) -> None:
    status, reply = await post_chat(live_server_url, {"sender": "e2e-empty", "text": text})
    assert status == 200
    assert "请用文字告诉我" in texts(reply)


@pytest.mark.parametrize(
    "text",
    ["😭😭😭", "？？？！！！", "hello 我需要 help", "救命啊" * 600, "/restart", "你好\n\n请问"],
)
async def test_odd_but_valid_text_is_answered(live_server_url: str, text: str) -> None:
    status, reply = await post_chat(live_server_url, {"sender": "e2e-odd", "text": text})
    assert status == 200
    assert reply["messages"] and all(m.get("text") for m in reply["messages"])


async def test_oversized_request_body_is_refused_cleanly(live_server_url: str) -> None:
    body = json.dumps({"sender": "big", "text": "x" * 400_000})
    status, reply = await post_chat(live_server_url, body, raw=True)
    assert status == 413
    assert reply["error"]


async def test_unknown_api_route_answers_json(live_server_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{live_server_url}/api/nope") as response:
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"


async def test_concurrent_senders_do_not_see_each_others_replies(live_server) -> None:  # noqa: ANN001
    """Half the senders ask for help, half say goodbye, all at once."""
    asks = {f"conc-{i}": ("/help" if i % 2 else "/goodbye") for i in range(24)}

    async def one(http: aiohttp.ClientSession, sender: str, payload: str) -> tuple[str, str]:
        async with http.post(
            f"{live_server.url}/api/chat", json={"sender": sender, "payload": payload}
        ) as response:
            assert response.status == 200
            return sender, texts(await response.json())

    async with aiohttp.ClientSession() as http:
        results = await asyncio.gather(*(one(http, s, p) for s, p in asks.items()))
    for sender, text in results:
        if asks[sender] == "/help":
            assert "一步步问清" in text, sender
        else:
            assert "注意安全" in text and "一步步问清" not in text, sender

    from bot.app import RUNTIME

    runtime = live_server.app[RUNTIME]
    tracker = live_server.call(
        runtime.dialogue.agent.tracker_store.retrieve(conversation_key("web", "conc-3"))
    )
    user_texts = [e.text for e in tracker.events if e.type_name == "user"]
    assert user_texts == ["/help"]


async def test_transcript_records_both_sides(live_server) -> None:  # noqa: ANN001
    from bot.app import RUNTIME
    from store.conversations import ConversationLog

    await post_chat(live_server.url, {"sender": "e2e-log", "text": "你好"})
    await post_chat(live_server.url, {"sender": "e2e-log", "payload": "/help"})
    runtime = live_server.app[RUNTIME]
    log = ConversationLog(runtime.db, runtime.cipher)
    transcript = live_server.call(log.transcript("web", "e2e-log"))
    directions = [m.direction for m in transcript]
    assert directions == ["in", "out", "in", "out"]
    assert transcript[0].content == {"text": "你好"} and transcript[0].intent == "greet"
    assert transcript[2].content == {"payload": "/help"} and transcript[2].intent == "help"
    assert "110" in transcript[3].content["text"]


async def test_healthz_and_metrics(live_server_url: str) -> None:
    await post_chat(live_server_url, {"sender": "e2e-metrics", "text": "你好"})
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{live_server_url}/healthz") as response:
            assert response.status == 200
            health = await response.json()
        async with http.get(f"{live_server_url}/metrics") as response:
            assert response.status == 200
            metrics = await response.text()
    assert health["status"] == "ok" and health["db"] == "ok"
    assert health["model"].startswith("alarmbot-")
    assert 'alarmbot_messages_total{channel="web"}' in metrics
    assert "alarmbot_http_request_duration_seconds_bucket" in metrics
    assert 'alarmbot_http_requests_total{method="POST",route="/api/chat",status="200"}' in metrics
    assert "alarmbot_ready 1.0" in metrics
    assert 'alarmbot_mediation_cases{state="exhausted"}' in metrics  # a person must act


async def test_page_is_served_without_external_assets(live_server_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{live_server_url}/") as response:
        assert response.status == 200
        html = await response.text()
        csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert 'lang="zh-CN"' in html
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
