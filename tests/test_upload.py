"""Photo, voice and video uploads end to end: POST /api/upload against a running server with
the real model, next to a report made through /api/chat."""

from __future__ import annotations

import asyncio
import json
import re
import struct
import uuid
import zlib

import aiohttp
import pytest

from bot.app import RUNTIME
from store.conversations import ConversationLog
from store.incidents import ATTACHMENT_LIMITS, IncidentBook
from tests.test_incident_flow import Citizen, incidents_of

CHINESE = re.compile(r"[\u4e00-\u9fff]")
THEFT = "我的电动车在楼下被人偷了"
ADDRESS = "黄浦区福州路185号"


def png(seed: int = 0) -> bytes:
    """A real 1×1 PNG; `seed` picks its colour, so different seeds give different files."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1×1, 8-bit RGB
    pixel = zlib.compress(bytes([0, seed % 256, 80, 160]))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixel) + chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    """The start (SOI + JFIF APP0) and end markers of a JPEG around some filler."""
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return (
        b"\xff\xd8\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0 + b"\x00" * 64 + b"\xff\xd9"
    )


async def upload(
    url: str,
    sender: str | None,
    data: bytes,
    mime: str = "image/png",
    *,
    filename: str = "张三的照片.png",
    sender_last: bool = False,
) -> tuple[int, dict]:
    form = aiohttp.FormData()
    if sender is not None and not sender_last:
        form.add_field("sender", sender)
    form.add_field("file", data, content_type=mime, filename=filename)
    if sender is not None and sender_last:
        form.add_field("sender", sender)
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/upload", data=form) as resp:
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()


def book(server) -> IncidentBook:  # noqa: ANN001
    runtime = server.app[RUNTIME]
    return IncidentBook(runtime.db, runtime.cipher)


def attachments(server, number: str) -> list:  # noqa: ANN001
    return server.call(book(server).attachment_meta(number))


def transcript(server, sender: str) -> list:  # noqa: ANN001
    runtime = server.app[RUNTIME]
    return server.call(ConversationLog(runtime.db, runtime.cipher).transcript("web", sender))


@pytest.fixture
def citizen(live_server_url: str) -> Citizen:
    return Citizen(live_server_url)


async def test_photos_are_attached_to_the_open_report(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    await citizen.say(THEFT)
    assert "什么时候" in await citizen.say(ADDRESS)
    [incident] = incidents_of(live_server, citizen.sender)
    assert incident.status == "draft"

    status, reply = await upload(live_server.url, citizen.sender, png())
    assert status == 200, reply
    assert reply["messages"] == [{"text": f"照片已收到，已附在报警{incident.number}中。"}]
    assert reply["attachment"]["kind"] == "image"
    assert reply["attachment"]["size"] == len(png())

    status, second = await upload(live_server.url, citizen.sender, jpeg(), "image/jpeg")
    assert status == 200 and incident.number in second["messages"][0]["text"]
    kept = attachments(live_server, incident.number)
    assert [(a.id, a.mime, a.size) for a in kept] == [
        (reply["attachment"]["id"], "image/png", len(png())),
        (second["attachment"]["id"], "image/jpeg", len(jpeg())),
    ]
    stored = live_server.call(book(live_server).read_attachment(kept[0].id))
    assert stored[1] == png(), "the bytes come back as they were sent"

    # The call-taker's transcript says a photo came (no bytes, no file name) and the answer.
    log = transcript(live_server, citizen.sender)
    inbound = [m.content["attachment"] for m in log if "attachment" in m.content]
    assert inbound[0] == {
        "kind": "image",
        "mime": "image/png",
        "size": len(png()),
        "id": reply["attachment"]["id"],
    }
    assert "张三" not in str([m.content for m in log])
    assert log[-1].direction == "out" and incident.number in log[-1].content["text"]

    # The report carries on where it was: "when" was pending, the answer takes it further.
    reply_text = await citizen.say("就在刚才")
    assert "对方" in reply_text or "几个人" in reply_text or "回电" in reply_text


async def test_a_photo_sent_first_is_attached_when_the_report_is_made(
    live_server, citizen: Citizen
) -> None:  # noqa: ANN001
    status, reply = await upload(live_server.url, citizen.sender, jpeg(), "image/jpg")
    assert status == 200, reply
    assert "已收到" in reply["messages"][0]["text"] and "发生了什么" in reply["messages"][0]["text"]
    assert incidents_of(live_server, citizen.sender) == []

    assert "地点" in await citizen.say(THEFT)
    status, reply = await upload(live_server.url, citizen.sender, png(1), sender_last=True)
    assert status == 200
    assert reply["messages"][0]["text"] == "照片已收到，提交报警时会一并附上。"
    assert "什么时候" in await citizen.say(ADDRESS)
    [incident] = incidents_of(live_server, citizen.sender)
    kept = attachments(live_server, incident.number)
    assert [a.mime for a in kept] == ["image/jpeg", "image/png"]
    events = live_server.call(book(live_server).timeline(incident.number))
    assert [e.kind for e in events] == ["created", "attachment"]


async def test_a_new_report_takes_the_photo_not_an_older_open_one(
    live_server, citizen: Citizen
) -> None:  # noqa: ANN001
    await citizen.say("物业乱收停车费")
    await citizen.say("普陀区真北路100号")
    await citizen.answer("no")
    assert "编号" in await citizen.answer("submit")
    [older] = incidents_of(live_server, citizen.sender)
    assert older.status == "received"

    await citizen.say(THEFT)  # a second report: no incident until its place is known
    status, reply = await upload(live_server.url, citizen.sender, png(2))
    assert status == 200 and older.number not in reply["messages"][0]["text"]
    await citizen.say(ADDRESS)
    newer = next(i for i in incidents_of(live_server, citizen.sender) if i.number != older.number)
    assert len(attachments(live_server, newer.number)) == 1
    assert attachments(live_server, older.number) == []

    # Once that report is finished, a photo goes to the newest open report.
    status, reply = await upload(live_server.url, citizen.sender, png(3))
    assert f"报警{newer.number}" in reply["messages"][0]["text"]


async def test_the_same_photo_twice_is_kept_once(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    await citizen.say(THEFT)
    await citizen.say(ADDRESS)
    _, first = await upload(live_server.url, citizen.sender, png(4))
    _, again = await upload(live_server.url, citizen.sender, png(4))
    assert first["attachment"]["id"] == again["attachment"]["id"]
    [incident] = incidents_of(live_server, citizen.sender)
    assert len(attachments(live_server, incident.number)) == 1


IMAGE_LIMIT = ATTACHMENT_LIMITS["image"]


@pytest.mark.parametrize(
    ("data", "mime", "status", "code", "says"),
    [
        (b"just some text", "text/plain", 415, "bad_type", "JPG"),
        (b"%PDF-1.4", "application/pdf", 415, "bad_type", "照片"),
        (png(), "image/tiff", 415, "bad_type", "PNG"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * IMAGE_LIMIT, "image/png", 413, "too_large", "10MB"),
        (b"", "image/png", 400, "empty", "空"),
        (png(), "image/jpeg", 400, "bad_content", "照片"),
        (b"<svg onload=alert(1)>", "image/gif", 400, "bad_content", "照片"),
    ],
    ids=["text", "pdf", "tiff", "too-large", "empty", "png-as-jpeg", "svg-as-gif"],
)
async def test_a_refused_file_gets_a_clear_answer_and_loses_nothing(
    live_server,  # noqa: ANN001
    citizen: Citizen,
    data: bytes,
    mime: str,
    status: int,
    code: str,
    says: str,
) -> None:
    assert "地点" in await citizen.say(THEFT)
    got_status, reply = await upload(live_server.url, citizen.sender, data, mime)
    assert (got_status, reply["error"]) == (status, code)
    assert CHINESE.search(reply["message"]) and says in reply["message"], reply["message"]

    # Nothing kept, nothing forgotten: the pending question (where) is answered normally.
    assert "什么时候" in await citizen.say(ADDRESS)
    [incident] = incidents_of(live_server, citizen.sender)
    assert attachments(live_server, incident.number) == []
    assert incident.details["answers"]["description"]


@pytest.mark.parametrize(
    ("sender", "code"),
    [(None, "invalid_sender"), ("", "invalid_sender"), ("a b<script>", "invalid_sender")],
)
async def test_a_bad_sender_is_refused_like_on_chat(
    live_server_url: str, sender: str | None, code: str
) -> None:
    status, reply = await upload(live_server_url, sender, png())
    assert (status, reply["error"]) == (400, code)
    assert CHINESE.search(reply["message"])


async def test_requests_that_are_not_an_upload(live_server_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{live_server_url}/api/upload"
        async with http.post(url, json={"sender": "u-json", "file": "x"}) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "not_multipart"
        broken = {"Content-Type": "multipart/form-data; boundary=abc"}
        async with http.post(url, data=b"no boundary in here", headers=broken) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "not_multipart"
        form = aiohttp.FormData()
        form.add_field("sender", "u-nofile")
        form.add_field("note", "no file here")
        form.add_field("file2", b"x", content_type="image/png", filename="a.png")
        async with http.post(url, data=form) as response:
            reply = await response.json()
            assert (response.status, reply["error"]) == (400, "missing_file")
            assert CHINESE.search(reply["message"])
        async with http.get(url) as response:
            assert response.status == 405


async def test_a_request_bigger_than_any_file_is_refused_before_it_is_read(
    live_server_url: str,
) -> None:
    """Only the headers are sent: the answer comes without waiting for 25 MB to arrive."""
    host, port = live_server_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            (
                "POST /api/upload HTTP/1.1\r\n"
                f"Host: {host}\r\n"
                "Content-Type: multipart/form-data; boundary=xyz\r\n"
                f"Content-Length: {ATTACHMENT_LIMITS['video'] + 128 * 1024}\r\n"
                "\r\n"
            ).encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 413 ")
        length = int(re.search(rb"Content-Length: (\d+)", head)[1])
        reply = json.loads(await reader.readexactly(length))
    finally:
        writer.close()
        await writer.wait_closed()
    assert reply["error"] == "too_large" and "25MB" in reply["message"]


async def test_uploads_and_refusals_are_counted(live_server_url: str) -> None:
    sender = f"u-{uuid.uuid4().hex[:8]}"
    assert (await upload(live_server_url, sender, png(5)))[0] == 200
    assert (await upload(live_server_url, sender, b"x", "text/plain"))[0] == 415
    async with aiohttp.ClientSession() as http, http.get(f"{live_server_url}/metrics") as response:
        metrics = await response.text()
    assert 'alarmbot_uploads_total{kind="image"}' in metrics
    assert 'alarmbot_upload_rejections_total{reason="bad_type"}' in metrics
    assert 'route="/api/upload",status="415"' in metrics
