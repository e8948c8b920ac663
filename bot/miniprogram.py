"""The mini-program's back end: sign-in with wx.login's code, "我的报警", subscribe grants.

* `POST /api/mp/login` {"code"}: WeChat's `jscode2session` says whose code it is; we keep
  the openid (and the session_key, sealed) and answer our own session token (7 days).
* With `Authorization: Bearer <token>`, /api/chat, /api/upload and /api/updates speak for
  that openid on channel "miniprogram" (any `sender` in the body is ignored); a token that
  is unknown or expired is 401. Without the header they work as for the H5 page.
* `GET /api/mp/incidents`: the citizen's reports with their timelines, from both WeChat
  doors (the mini-program's pages and /wechat), as the dialogue's 我的报警 shows them.
* `POST /api/mp/logout` with the token: that token stops working at once.
* `POST /api/mp/subscriptions` {"template_ids": [...], "accepted": bool}: what the citizen
  answered to wx.requestSubscribeMessage; each acceptance allows one status message.

The openid is the citizen: a registration made in the mini-program's customer-service chat
(/wechat, same app) counts here too (store.citizens.citizen_key).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.api_errors import CALL_110, ApiError, json_object, json_response
from bot.channels.wechat.client import WeChatApi, WeChatApiError
from routing.triage import default_policy
from store.citizens import CitizenDirectory, same_citizen_channels
from store.crypto import PiiCipher
from store.db import Database
from store.incidents import IncidentBook, IncidentEvent, IncidentRecord
from store.miniprogram import MiniProgramSessions
from store.wechat import SubscriptionGrants

logger = logging.getLogger(__name__)

CHANNEL = "miniprogram"
CODE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # wx.login codes are 32 such characters
TEMPLATE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MAX_TEMPLATES = 3  # wx.requestSubscribeMessage asks for at most three at once
# WeChat's answers to a code that is not (or no longer) good: invalid, used, risky user.
REFUSED_CODES = {40029, 40163, 40226}
SIGN_IN_AGAIN = "登录已失效，请重新打开小程序。"


@dataclass
class MiniProgram:
    """What the endpoints need; `api()` is the WeChat API (None when not configured)."""

    sessions: MiniProgramSessions
    grants: SubscriptionGrants
    citizens: CitizenDirectory
    incidents: IncidentBook
    api: Callable[[], WeChatApi | None]


MINIPROGRAM = web.AppKey("miniprogram", MiniProgram)


async def signed_in(request: web.Request) -> str | None:
    """The openid behind `Authorization: Bearer <token>`; None without the header (the H5
    page); 401 for anything else."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "invalid_token", SIGN_IN_AGAIN)
    openid = await request.app[MINIPROGRAM].sessions.openid_for(token.strip())
    if openid is None:
        raise ApiError(401, "invalid_token", SIGN_IN_AGAIN)
    return openid


async def _required(request: web.Request) -> str:
    openid = await signed_in(request)
    if openid is None:
        raise ApiError(401, "missing_token", "请先登录小程序。")
    return openid


async def logout(request: web.Request) -> web.Response:
    """POST /api/mp/logout (with the token) → {"signed_out": true}: this token stops working."""
    await _required(request)
    token = request.headers["Authorization"].strip().partition(" ")[2].strip()
    await request.app[MINIPROGRAM].sessions.sign_out(token)
    return json_response({"signed_out": True})


async def login(request: web.Request) -> web.Response:
    """POST /api/mp/login {"code": "<wx.login code>"} → {"token", "expires_at", "registered"}."""
    service = request.app[MINIPROGRAM]
    code = (await json_object(request)).get("code")
    if not isinstance(code, str) or not CODE.fullmatch(code):
        raise ApiError(400, "invalid_code", "登录凭证格式不正确，请重新进入小程序。")
    api = service.api()
    if api is None:
        raise ApiError(503, "not_configured", "小程序登录暂不可用。" + CALL_110)
    try:
        signed = await api.code_to_session(code)
    except WeChatApiError as exc:
        if exc.errcode in REFUSED_CODES:
            raise ApiError(401, "invalid_code", "登录凭证无效或已过期，请重新进入小程序。") from exc
        logger.error("mini-program sign-in failed: %s", exc)  # errcode only, never the code
        raise ApiError(503, "wechat_unavailable", "微信登录暂时不可用，请稍后再试。") from exc
    issued = await service.sessions.sign_in(signed.openid, signed.session_key)
    registered = await service.citizens.is_registered(CHANNEL, signed.openid)
    return json_response(
        {
            "token": issued.token,
            "expires_at": issued.expires_at.isoformat(),
            "registered": registered,
        }
    )


def incident_view(record: IncidentRecord, timeline: list[IncidentEvent]) -> dict[str, Any]:
    """One report as the mini-program lists it: no free-text notes (they may name people)."""
    return {
        "number": record.number,
        "status": record.status,
        "status_label": record.status_label,
        "open": record.is_open,
        "route": record.route,
        "category": record.category,
        "category_label": default_policy().label(record.route, record.category),
        "created_at": record.created_at.isoformat(),
        "timeline": [
            {"at": e.at.isoformat(), "kind": e.kind, "status": e.status, "label": e.label}
            for e in timeline
        ],
    }


async def my_incidents(request: web.Request) -> web.Response:
    """GET /api/mp/incidents → {"incidents": [...]}, open ones first, newest first."""
    openid = await _required(request)
    book = request.app[MINIPROGRAM].incidents
    records = await book.for_reporter(same_citizen_channels(CHANNEL), openid)
    views = [incident_view(r, await book.timeline(r.number)) for r in records]
    return json_response({"incidents": views}, headers={"Cache-Control": "no-store"})


async def subscriptions(request: web.Request) -> web.Response:
    """POST /api/mp/subscriptions {"template_ids": [...], "accepted": true} → {"granted": n}."""
    openid = await _required(request)
    body = await json_object(request)
    ids, accepted = body.get("template_ids"), body.get("accepted")
    if (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= MAX_TEMPLATES
        or not all(isinstance(i, str) and TEMPLATE_ID.fullmatch(i) for i in ids)
        or not isinstance(accepted, bool)
    ):
        raise ApiError(
            400, "invalid_subscription", "订阅数据格式不正确（template_ids 和 accepted）。"
        )
    granted = await request.app[MINIPROGRAM].grants.grant(openid, ids) if accepted else 0
    return json_response({"granted": granted})


def setup_miniprogram(
    app: web.Application,
    storage: Callable[[], tuple[Database, PiiCipher]],
    api: Callable[[], WeChatApi | None],
) -> None:
    """Register the routes; the service is built once start-up opened the database (so this
    must come after the cleanup context that opens it)."""

    async def service(app: web.Application) -> AsyncIterator[None]:
        db, cipher = storage()
        app[MINIPROGRAM] = MiniProgram(
            sessions=MiniProgramSessions(db, cipher),
            grants=SubscriptionGrants(db),
            citizens=CitizenDirectory(db),
            incidents=IncidentBook(db, cipher),
            api=api,
        )
        yield

    app.cleanup_ctx.append(service)
    app.router.add_post("/api/mp/login", login)
    app.router.add_post("/api/mp/logout", logout)
    app.router.add_get("/api/mp/incidents", my_incidents)
    app.router.add_post("/api/mp/subscriptions", subscriptions)
