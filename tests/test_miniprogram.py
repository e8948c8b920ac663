"""The mini-program back end over HTTP (the real app against the LOCAL fake WeChat API), on
SQLite and PostgreSQL: sign-in with wx.login's code, session tokens, 我的报警, subscribe
grants, and the openid linked to a registration made through /wechat."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp import FormData
from sqlalchemy import select

from bot.app import RUNTIME, create_app
from bot.channels.wechat.local import LOCAL_JPEG, LocalWeChatApi
from bot.miniprogram import MINIPROGRAM
from store.crypto import PiiCipher
from store.db import Database
from store.incidents import IncidentBook
from store.miniprogram import MiniProgramSessions, token_hash
from store.models import MiniProgramSession, MiniProgramUser
from store.notices import NoticeBoard
from store.registrations import Identity, RegistrationStore
from store.wechat import SubscriptionGrants
from tests.fakes import fake_identity
from tests.support import Clock, make_settings

CIPHER = PiiCipher(b"m" * 32)


@pytest.fixture
async def wechat_api():
    api = await LocalWeChatApi().start()
    yield api
    await api.stop()


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path, database_url: str, wechat_api: LocalWeChatApi):  # noqa: ANN001, ANN201
    """The app with /wechat configured against the LOCAL fake API (no model: /api/chat says
    it is starting, which is enough to see the token checked first)."""
    settings = make_settings(
        tmp_path,
        tmp_path / "no-models",
        database_url=database_url,
        env={
            "WECHAT_APP_SECRET": "local-secret",
            "WECHAT_API_BASE_URL": wechat_api.url,
            "WECHAT_SUBSCRIBE_TEMPLATE_ID": "TMPL-progress",
        },
    )
    return await aiohttp_client(create_app(settings))


async def sign_in(client, wechat_api: LocalWeChatApi, openid: str) -> str:  # noqa: ANN001
    code = f"code{openid[-12:]}"
    wechat_api.login_codes[code] = openid
    response = await client.post("/api/mp/login", json={"code": code})
    assert response.status == 200, await response.text()
    return (await response.json())["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_issues_a_token_and_keeps_the_session_key_sealed(client, wechat_api) -> None:  # noqa: ANN001
    wechat_api.login_codes["code-alice-0001"] = "oLOCALalice"
    response = await client.post("/api/mp/login", json={"code": "code-alice-0001"})
    assert response.status == 200
    body = await response.json()
    assert set(body) == {"token", "expires_at", "registered"}
    assert body["registered"] is False
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=6) < expires - datetime.now(timezone.utc) <= timedelta(days=7)

    db = client.app[RUNTIME].db
    async with db.reader() as session:
        user = (await session.execute(select(MiniProgramUser))).scalar_one()
        stored = (await session.execute(select(MiniProgramSession))).scalar_one()
    assert user.openid == "oLOCALalice"
    assert stored.token_hash == token_hash(body["token"]) and body["token"] not in str(
        stored.token_hash
    )
    # The session key is sealed: opened only through the store, never in the answer.
    key = await client.app[MINIPROGRAM].sessions.session_key("oLOCALalice")
    assert key and key.encode() not in user.session_key_sealed and key not in str(body)


async def test_a_bad_or_used_code_is_401_with_a_clear_message(client, wechat_api) -> None:  # noqa: ANN001
    response = await client.post("/api/mp/login", json={"code": "never-issued"})
    assert response.status == 401
    body = await response.json()
    assert body["error"] == "invalid_code" and "重新进入小程序" in body["message"]

    await sign_in(client, wechat_api, "oLOCALbob")
    wechat_api.login_codes.clear()  # the code was used: WeChat answers 40029 again
    again = await client.post("/api/mp/login", json={"code": "codeoLOCALbob"})
    assert again.status == 401

    for bad in ({"code": ""}, {"code": "has space"}, {"code": 5}, {}):
        response = await client.post("/api/mp/login", json=bad)
        assert response.status == 400 and (await response.json())["error"] == "invalid_code"


async def test_wechat_down_is_503_not_a_token(client, wechat_api) -> None:  # noqa: ANN001
    wechat_api.login_codes["code-carol"] = "oLOCALcarol"
    wechat_api.fail_next = 10  # every retry gets HTTP 503
    response = await client.post("/api/mp/login", json={"code": "code-carol"})
    assert response.status == 503
    assert (await response.json())["error"] == "wechat_unavailable"


async def test_bad_and_expired_tokens_are_401_and_no_header_is_the_h5_page(
    client, wechat_api
) -> None:  # noqa: ANN001
    token = await sign_in(client, wechat_api, "oLOCALdave")
    for header in ("Bearer nonsense", "Basic abc", "Bearer ", f"Token {token}"):
        for method, path in (
            ("GET", "/api/mp/incidents"),
            ("GET", "/api/updates"),
            ("POST", "/api/chat"),
            ("POST", "/api/upload"),
        ):
            response = await client.request(
                method, path, headers={"Authorization": header}, json={"text": "你好"}
            )
            assert response.status == 401, (header, path)
            body = await response.json()
            assert body["error"] == "invalid_token" and "重新打开小程序" in body["message"]

    # Expired: the same token a week and a bit later.
    later = MiniProgramSessions(
        client.app[RUNTIME].db,
        client.app[RUNTIME].cipher,
        now=lambda: datetime.now(timezone.utc) + timedelta(days=7, seconds=1),
    )
    assert await client.app[MINIPROGRAM].sessions.openid_for(token) == "oLOCALdave"
    assert await later.openid_for(token) is None
    client.app[MINIPROGRAM].sessions = later
    response = await client.get("/api/mp/incidents", headers=bearer(token))
    assert response.status == 401

    # No header at all: /api/updates and /api/chat behave as for the H5 page.
    assert (await client.get("/api/updates", params={"sender": "h5-user"})).status == 200
    assert (await client.get("/api/updates")).status == 400
    assert (await client.get("/api/mp/incidents")).status == 401
    response = await client.post("/api/chat", json={"sender": "h5-user", "text": "你好"})
    assert response.status == 503  # no model in this test: the H5 path, not a token error


async def test_a_valid_token_speaks_for_the_openid_not_the_body_sender(client, wechat_api) -> None:  # noqa: ANN001
    token = await sign_in(client, wechat_api, "oLOCALerin")
    # No model here: 503 'starting' means the token passed and the body's sender (invalid
    # for the H5 page) was not looked at.
    response = await client.post(
        "/api/chat", headers=bearer(token), json={"sender": "not a valid sender", "text": "你好"}
    )
    assert response.status == 503
    form = FormData()
    form.add_field("file", LOCAL_JPEG, filename="p.jpg", content_type="image/jpeg")
    response = await client.post("/api/upload", headers=bearer(token), data=form)
    assert response.status == 503


async def test_signing_out_ends_only_that_token(client, wechat_api) -> None:  # noqa: ANN001
    phone = await sign_in(client, wechat_api, "oLOCALfay01")
    tablet = await sign_in(client, wechat_api, "oLOCALfay01")
    response = await client.post("/api/mp/logout", headers=bearer(phone))
    assert response.status == 200 and (await response.json()) == {"signed_out": True}
    gone = await client.get("/api/mp/incidents", headers=bearer(phone))
    assert gone.status == 401 and (await gone.json())["error"] == "invalid_token"
    assert (await client.get("/api/mp/incidents", headers=bearer(tablet))).status == 200
    assert (await client.post("/api/mp/logout")).status == 401


async def test_my_incidents_are_only_my_own(client, wechat_api) -> None:  # noqa: ANN001
    runtime = client.app[RUNTIME]
    book = IncidentBook(runtime.db, runtime.cipher)
    mine = await report(book, "miniprogram", "oLOCALfrank")
    by_chat = await report(book, "wechat", "oLOCALfrank")  # the same openid on /wechat
    theirs = await report(book, "miniprogram", "oLOCALgrace")
    frank = await sign_in(client, wechat_api, "oLOCALfrank")
    grace = await sign_in(client, wechat_api, "oLOCALgrace")

    response = await client.get("/api/mp/incidents", headers=bearer(frank))
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    incidents = (await response.json())["incidents"]
    assert {i["number"] for i in incidents} == {mine, by_chat}
    first = incidents[0]
    assert set(first) >= {"number", "status", "route", "category", "created_at", "timeline"}
    assert first["status_label"] and first["category_label"] and first["open"] is True
    assert [e["label"] for e in first["timeline"]][0]
    assert all("note" not in e for e in first["timeline"])

    response = await client.get("/api/mp/incidents", headers=bearer(grace))
    assert [i["number"] for i in (await response.json())["incidents"]] == [theirs]


async def report(book: IncidentBook, channel: str, sender: str) -> str:
    record = await book.open_draft(
        channel,
        sender,
        route="police",
        category="theft",
        urgency="normal",
        call_110_now=False,
        aggression=False,
        emergency=False,
        verified=False,
        details={"answers": {}},
        missing=[],
        completeness=0.5,
    )
    await book.submit(record.number)
    return record.number


async def test_an_openid_registered_through_wechat_is_registered_here(client, wechat_api) -> None:  # noqa: ANN001
    runtime = client.app[RUNTIME]
    registrations = RegistrationStore(runtime.db, runtime.cipher)
    person = fake_identity(7)
    await registrations.register(
        "wechat",
        "oLOCALhenry",
        Identity(
            name=person.name, id_kind="resident_id", id_number=person.id_number, phone=person.phone
        ),
    )
    wechat_api.login_codes["code-henry"] = "oLOCALhenry"
    response = await client.post("/api/mp/login", json={"code": "code-henry"})
    assert (await response.json())["registered"] is True
    identity = await registrations.identity("miniprogram", "oLOCALhenry")
    assert identity is not None and identity.phone == person.phone
    # Another openid is not.
    assert await registrations.identity("miniprogram", "oLOCALother") is None


async def test_updates_with_a_token_are_that_citizens_from_both_doors(client, wechat_api) -> None:  # noqa: ANN001
    runtime = client.app[RUNTIME]
    board = NoticeBoard(runtime.db, runtime.cipher)
    await board.post("miniprogram", "oLOCALivy", "您的报警已受理。")
    await board.post("wechat", "oLOCALivy", "民警已出发。")
    await board.post("miniprogram", "oLOCALjack", "别人的消息")
    token = await sign_in(client, wechat_api, "oLOCALivy")
    response = await client.get("/api/updates", headers=bearer(token))
    assert [m["text"] for m in (await response.json())["messages"]] == [
        "您的报警已受理。",
        "民警已出发。",
    ]
    again = await client.get("/api/updates", headers=bearer(token))
    assert (await again.json())["messages"] == []


async def test_subscription_grants_are_recorded_only_when_accepted(client, wechat_api) -> None:  # noqa: ANN001
    token = await sign_in(client, wechat_api, "oLOCALkate")
    grants: SubscriptionGrants = client.app[MINIPROGRAM].grants
    response = await client.post(
        "/api/mp/subscriptions",
        headers=bearer(token),
        json={"template_ids": ["TMPL-progress"], "accepted": True},
    )
    assert response.status == 200 and (await response.json()) == {"granted": 1}
    response = await client.post(
        "/api/mp/subscriptions",
        headers=bearer(token),
        json={"template_ids": ["TMPL-progress"], "accepted": False},
    )
    assert (await response.json()) == {"granted": 0}
    assert await grants.available("oLOCALkate", "TMPL-progress") == 1
    for bad in (
        {"template_ids": [], "accepted": True},
        {"template_ids": ["a", "b", "c", "d"], "accepted": True},
        {"template_ids": ["bad id"], "accepted": True},
        {"template_ids": ["TMPL-progress"], "accepted": "yes"},
    ):
        response = await client.post("/api/mp/subscriptions", headers=bearer(token), json=bad)
        assert response.status == 400
    response = await client.post(
        "/api/mp/subscriptions", json={"template_ids": ["TMPL-progress"], "accepted": True}
    )
    assert response.status == 401


async def test_sessions_store_sign_in_again_and_expiry(db: Database) -> None:
    clock = Clock()
    sessions = MiniProgramSessions(db, CIPHER, now=clock)
    first = await sessions.sign_in("oLOCALlee", "key-1")
    second = await sessions.sign_in("oLOCALlee", "key-2")
    assert first.token != second.token
    assert await sessions.openid_for(first.token) == "oLOCALlee"
    assert await sessions.session_key("oLOCALlee") == "key-2"
    clock.advance(days=7, seconds=-1)
    assert await sessions.openid_for(second.token) == "oLOCALlee"
    clock.advance(seconds=1)
    assert await sessions.openid_for(second.token) is None
    assert await sessions.openid_for("") is None and await sessions.openid_for("x" * 500) is None
    third = await sessions.sign_in("oLOCALlee", "key-3")  # expired tokens are dropped
    async with db.reader() as session:
        hashes = (await session.execute(select(MiniProgramSession.token_hash))).scalars().all()
    assert hashes == [token_hash(third.token)]
