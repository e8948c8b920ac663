"""The 12345 status callback (signed, idempotent, never 500) and the H5 updates poll, over
HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from bot.callbacks import CALLBACKS, CallbackService, setup_callbacks
from routing.handoff.callbacks import (
    CallbackRejected,
    WorkOrderUpdate,
    outcome,
    parse,
    sign,
    verify,
)
from store.crypto import PiiCipher
from store.db import Database
from store.incidents import (
    CLOSED,
    IN_PROGRESS,
    RECEIVED,
    TRANSFERRED_12345,
    IncidentBook,
)
from store.outbox import Outbox

CIPHER = PiiCipher(b"c" * 32)
SECRET = "s3cret-for-tests"
NOW = 1_790_000_000.0


async def civic_incident(db: Database, route: str = "12345") -> str:
    book = IncidentBook(db, CIPHER)
    record = await book.open_draft(
        "web",
        "alice",
        route=route,
        category="courier" if route == "12345" else "theft",
        urgency="low",
        call_110_now=False,
        aggression=False,
        emergency=False,
        verified=True,
        details={"answers": {}},
        missing=[],
        completeness=0.5,
    )
    await book.submit(record.number)
    if route == "12345":  # as the relay does on delivery
        (item,) = await Outbox(db, CIPHER).list()
        await book.handoff_delivered(item.id, status=TRANSFERRED_12345, note="已转12345市民热线")
    return record.number


@pytest.fixture
async def client(db: Database, aiohttp_client, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN201
    monkeypatch.setenv("WORKORDER_CALLBACK_SECRET", SECRET)
    app = web.Application()
    setup_callbacks(app, lambda: (db, CIPHER))
    test_client = await aiohttp_client(app)
    app[CALLBACKS].clock_s = lambda: NOW
    return test_client


def signed(body: Any, *, secret: str = SECRET, at: float = NOW) -> dict[str, Any]:  # noqa: ANN401
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    stamp = str(int(at))
    headers = {
        "X-Timestamp": stamp,
        "X-Signature": sign(secret.encode(), stamp, raw),
        "Content-Type": "application/json",
    }
    return {"data": raw, "headers": headers}


async def post(client, body: Any, **kwargs: Any):  # noqa: ANN001, ANN201, ANN401
    response = await client.post("/api/callbacks/12345", **signed(body, **kwargs))
    return response.status, await response.json()


async def test_callbacks_move_the_incident_note_the_timeline_and_tell_the_citizen(
    client,  # noqa: ANN001
    db: Database,
) -> None:
    number = await civic_incident(db)
    book = IncidentBook(db, CIPHER)

    assert await post(client, {"工单编号": number, "status": "已受理"}) == (
        200,
        {"result": "noted"},
    )
    assert (await book.get(number)).status == TRANSFERRED_12345
    assert await post(client, {"工单编号": number, "status": "已受理"}) == (
        200,
        {"result": "duplicate"},
    )
    assert (await post(client, {"number": number, "status": "办理中"}))[0] == 200
    assert (await book.get(number)).status == IN_PROGRESS
    # A late 已受理 does not move it back.
    await post(client, {"工单编号": number, "status": "已受理", "说明": "补发"})
    assert (await book.get(number)).status == IN_PROGRESS
    assert await post(client, {"工单编号": number, "status": "已办结"}) == (
        200,
        {"result": "applied"},
    )
    assert (await book.get(number)).status == CLOSED
    assert (await post(client, {"工单编号": number, "status": "已办结"}))[1] == {
        "result": "duplicate"
    }

    notes = [e.note for e in await book.timeline(number) if e.actor == "12345"]
    assert notes == [
        "12345回复：已受理",
        "12345回复：办理中",
        "12345回复：已受理。说明：补发",
        "12345回复：已办结",
    ]
    response = await client.get("/api/updates", params={"sender": "alice"})
    texts = [m["text"] for m in (await response.json())["messages"]]
    assert len(texts) == 3 and all(number in t for t in texts)
    assert "已办结" in texts[-1]
    again = await client.get("/api/updates", params={"sender": "alice"})
    assert (await again.json())["messages"] == []


async def test_a_returned_work_order_goes_back_to_the_call_takers(
    client,  # noqa: ANN001
    db: Database,
) -> None:
    number = await civic_incident(db)
    body = {"工单编号": number, "status": "退回", "退回原因": "属地不符"}
    assert await post(client, body) == (200, {"result": "applied"})
    record = await IncidentBook(db, CIPHER).get(number)
    assert record.status == RECEIVED
    queue = await IncidentBook(db, CIPHER).queue()
    assert number in [r.number for r in queue]
    assert await post(client, body) == (200, {"result": "duplicate"})


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"secret": "wrong"}, 403, "bad_signature"),
        ({"at": NOW - 301}, 403, "stale"),
        ({"at": NOW + 301}, 403, "stale"),
    ],
)
async def test_bad_signatures_are_refused_and_change_nothing(
    client,  # noqa: ANN001
    db: Database,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    number = await civic_incident(db)
    answer = await post(client, {"工单编号": number, "status": "已办结"}, **kwargs)
    assert answer[0] == status and answer[1]["error"] == code
    assert (await IncidentBook(db, CIPHER).get(number)).status == TRANSFERRED_12345


async def test_unsigned_bodies_and_tampering_are_refused(client) -> None:  # noqa: ANN001
    response = await client.post("/api/callbacks/12345", data=b"{}")
    assert response.status == 401
    request = signed({"工单编号": "2026112300001", "status": "已受理"})
    request["data"] = request["data"].replace("已受理".encode(), "已办结".encode())
    response = await client.post("/api/callbacks/12345", **request)
    assert response.status == 403


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        [1, 2],
        {"status": "已受理"},
        {"工单编号": "abc", "status": "已受理"},
        {"工单编号": "2026112300001", "status": "完成"},
        {"工单编号": "2026112300001", "status": "退回"},
        {"工单编号": "2026112300001", "status": "退回", "reason": "不想办"},
        {"工单编号": "2026112300001", "status": "已受理", "comment": 5},
    ],
)
async def test_bad_bodies_answer_400(client, body: Any) -> None:  # noqa: ANN001, ANN401
    status, answer = await post(client, body)
    assert status == 400 and answer["error"]


async def test_unknown_numbers_and_other_routes_answer_404(
    client,  # noqa: ANN001
    db: Database,
) -> None:
    assert (await post(client, {"工单编号": "2026010100001", "status": "已受理"}))[0] == 404
    police = await civic_incident(db, route="police")
    assert (await post(client, {"工单编号": police, "status": "已办结"}))[0] == 404


async def test_a_database_failure_answers_503_not_500(client, db: Database) -> None:  # noqa: ANN001
    number = await civic_incident(db)

    async def broken(*_: Any) -> None:  # noqa: ANN401
        raise ConnectionError("database down")

    client.app[CALLBACKS].book.get = broken
    assert await post(client, {"工单编号": number, "status": "已受理"}) == (
        503,
        {"error": "retry_later"},
    )


async def test_without_a_secret_the_endpoint_is_closed(db: Database, aiohttp_client) -> None:  # noqa: ANN001
    app = web.Application()
    setup_callbacks(app, lambda: (db, CIPHER))
    client = await aiohttp_client(app)
    app[CALLBACKS] = CallbackService(db, CIPHER, {})
    status = (await client.post("/api/callbacks/12345", **signed({}))).status
    assert status == 503


async def test_updates_need_a_valid_sender(client) -> None:  # noqa: ANN001
    assert (await client.get("/api/updates", params={"sender": "a b"})).status == 400
    assert (await client.get("/api/updates")).status == 400


def test_verify_and_outcome_are_pure() -> None:
    body = b'{"x":1}'
    headers = {"X-Timestamp": "100", "X-Signature": "sha256=" + sign(b"k", "100", body)}
    verify(b"k", headers, body, 100.0)
    with pytest.raises(CallbackRejected):
        verify(b"k", {**headers, "X-Timestamp": "1e3"}, body, 100.0)
    update = parse('{"工单编号": "2026112300001", "status": "办理中"}'.encode())
    assert update == WorkOrderUpdate("2026112300001", "办理中")
    assert outcome(update, TRANSFERRED_12345, None).status == IN_PROGRESS
    assert outcome(update, TRANSFERRED_12345, "12345回复：办理中") is None
    closed = outcome(update, "cancelled", None)
    assert closed.status is None and closed.citizen_text is None
