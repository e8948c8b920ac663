"""Endpoints other systems and the H5 page call outside the dialogue:

* `POST /api/callbacks/12345`: the 12345 work-order system's signed status callback
  (routing.handoff.callbacks has the format and the status mapping). Answers 200 applied /
  duplicate / noted, 401 unsigned, 403 bad or stale signature, 400 bad body, 404 unknown
  number, 503 when not configured or the database is down — never 500: their retry logic
  should see "try again" for our trouble and "stop" for theirs.
* `GET /api/updates?sender=…`: status messages waiting for an H5 citizen (each shown once);
  the mini-program sends its session token instead of `sender` (bot/miniprogram.py).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from aiohttp import web

from bot.miniprogram import CHANNEL as MINIPROGRAM_CHANNEL
from bot.miniprogram import signed_in
from routing.handoff.callbacks import (
    ACTOR,
    CallbackRejected,
    WorkOrderUpdate,
    outcome,
    parse,
    verify,
)
from routing.notify import CitizenNotifier, StoredNotifier, notify_quietly
from store.citizens import same_citizen_channels
from store.crypto import PiiCipher
from store.db import Database
from store.incidents import CIVIC, IncidentBook, IncidentClosed, IncidentNotFound
from store.notices import NoticeBoard

logger = logging.getLogger(__name__)

SENDER_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
_dumps = functools.partial(json.dumps, ensure_ascii=False)


class CallbackService:
    """What the endpoints need; built once the database is open."""

    def __init__(
        self,
        db: Database,
        cipher: PiiCipher,
        env: Mapping[str, str],
        *,
        notifier: CitizenNotifier | None = None,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        secret = env.get("WORKORDER_CALLBACK_SECRET", "")
        self.secret = secret.encode("utf-8") if secret else None
        self.book = IncidentBook(db, cipher)
        self.notices = NoticeBoard(db, cipher)
        self.notifier = notifier or StoredNotifier(self.notices)
        self.clock_s = clock_s


CALLBACKS = web.AppKey("callbacks", CallbackService)


def _answer(status: int, code: str, message: str = "") -> web.Response:
    body: dict[str, Any] = {"result" if status < 400 else "error": code}
    if message:
        body["message"] = message
    return web.json_response(body, status=status, dumps=_dumps)


async def workorder_callback(request: web.Request) -> web.Response:
    """POST /api/callbacks/12345 — see the module docstring."""
    service = request.app[CALLBACKS]
    if service.secret is None:
        return _answer(503, "not_configured", "WORKORDER_CALLBACK_SECRET is not set")
    body = await request.read()
    try:
        verify(service.secret, request.headers, body, service.clock_s())
        update = parse(body)
    except CallbackRejected as exc:
        logger.warning("12345 callback refused: %s (%s)", exc.code, exc.status)
        return _answer(exc.status, exc.code, str(exc))
    try:
        return await _apply(service, update)
    except Exception:  # the database, say: ask them to send it again
        logger.exception("12345 callback for %s could not be applied", update.number)
        return _answer(503, "retry_later")


async def _apply(service: CallbackService, update: WorkOrderUpdate) -> web.Response:
    record = await service.book.get(update.number)
    if record is None or record.route != CIVIC:
        return _answer(404, "unknown_number")
    timeline = await service.book.timeline(update.number)
    last = next((e.note for e in reversed(timeline) if e.actor == ACTOR and e.note), None)
    decided = outcome(update, record.status, last)
    if decided is None:
        return _answer(200, "duplicate")
    try:
        if decided.status is not None:
            await service.book.set_status(
                update.number, decided.status, actor=ACTOR, note=decided.note
            )
        else:
            await service.book.add_note(update.number, decided.note, actor=ACTOR)
    except IncidentClosed:  # closed between our read and the write: keep their word anyway
        await service.book.add_note(update.number, decided.note, actor=ACTOR)
        return _answer(200, "noted")
    except IncidentNotFound:
        return _answer(404, "unknown_number")
    if decided.citizen_text:
        await notify_quietly(
            service.notifier, record.channel, record.sender_id, decided.citizen_text
        )
    logger.info(
        "12345 callback applied to %s: %s -> %s",
        update.number,
        update.status,
        decided.status or "(note)",
    )
    return _answer(200, "applied" if decided.status is not None else "noted")


async def updates(request: web.Request) -> web.Response:
    """GET /api/updates?sender=… — the H5 page's poll for status messages; with the
    mini-program's `Authorization: Bearer <token>`, that citizen's (from both WeChat doors)."""
    board = request.app[CALLBACKS].notices
    openid = await signed_in(request)
    if openid is not None:
        notices = []
        for channel in same_citizen_channels(MINIPROGRAM_CHANNEL):
            notices += await board.take(channel, openid)
    else:
        sender = request.query.get("sender", "")
        if not SENDER_PATTERN.fullmatch(sender):
            return _answer(400, "invalid_sender", "sender 格式不正确。")
        notices = await board.take("web", sender)
    return web.json_response(
        {"messages": [{"text": n.text, "at": n.created_at.isoformat()} for n in notices]},
        dumps=_dumps,
        headers={"Cache-Control": "no-store"},
    )


def setup_callbacks(
    app: web.Application,
    database: Callable[[], tuple[Database, PiiCipher]],
    notifier: Callable[[], CitizenNotifier] | None = None,
) -> None:
    """Register the routes; `database()` gives the open database once start-up made it (so
    this must come after the cleanup context that opens it), `notifier()` how citizens are
    told (default: stored notices)."""

    async def service(app: web.Application) -> AsyncIterator[None]:
        db, cipher = database()
        app[CALLBACKS] = CallbackService(
            db, cipher, os.environ, notifier=notifier() if notifier is not None else None
        )
        yield

    app.cleanup_ctx.append(service)
    app.router.add_post("/api/callbacks/12345", workorder_callback)
    app.router.add_get("/api/updates", updates)
