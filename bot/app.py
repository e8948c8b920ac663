"""The aiohttp application: API, H5 chat page, health and metrics around one Rasa agent."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rasa.utils.endpoints import EndpointConfig

from actions.registry import build_executor
from actions.services import ActionServices
from bot.api_errors import CALL_110, ApiError, json_object, json_response
from bot.callbacks import setup_callbacks
from bot.channels import wechat
from bot.dialogue import Dialogue, InProcessActions, load_agent
from bot.mediator_portal import setup_portal
from bot.miniprogram import CHANNEL as MINIPROGRAM_CHANNEL
from bot.miniprogram import setup_miniprogram, signed_in
from bot.model import find_model
from bot.observability import Metrics, request_id_var
from bot.settings import Settings
from bot.tracker_store import SealedSQLTrackerStore
from bot.uploads import Destination, UploadRefused, confirmation, destination, read_upload, refused
from nlu.text import normalise
from routing.handoff.contacts import AuditedPhones, registered_contact
from routing.handoff.wiring import Handoff, running_handoff
from routing.notify import ChannelNotifier, StoredNotifier
from store.conversations import ConversationLog
from store.crypto import PiiCipher
from store.db import Database
from store.incidents import (
    AttachmentRejected,
    IncidentBook,
    IncidentClosed,
    IncidentNotFound,
    check_attachment,
)
from store.migrate import applied_revision, head_revision
from store.notices import NoticeBoard
from store.outbox import Attempt, OutboxItem
from store.registrations import RegistrationStore

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "web" / "static"
SENDER_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
PAYLOAD_PATTERN = re.compile(r"^/(?P<intent>[A-Za-z_][A-Za-z0-9_]{0,63})(\{.*\})?$", re.DOTALL)
MAX_PAYLOAD_CHARS = 1000


@dataclass
class Runtime:
    """What start-up builds; `dialogue` is None until the model has loaded."""

    db: Database
    cipher: PiiCipher
    dialogue: Dialogue | None = None
    services: ActionServices | None = None  # the in-process actions' (closed at shutdown)
    load_error: str | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
RUNTIME = web.AppKey("runtime", Runtime)
HANDOFF = web.AppKey("handoff", Handoff)
NOTIFIER = web.AppKey("notifier", ChannelNotifier)


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_context(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Request id, one access-log line, metrics, and JSON instead of HTML errors on /api."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = (
        incoming if re.fullmatch(r"[A-Za-z0-9-]{8,64}", incoming) else uuid.uuid4().hex[:16]
    )
    token = request_id_var.set(request_id)
    metrics = request.app[METRICS]
    started = time.perf_counter()
    status = 500
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if request.path.startswith("/api/") and exc.content_type != "application/json":
                code = exc.reason.lower().replace(" ", "_")
                raise ApiError(exc.status, code, "请求有误。" + CALL_110) from exc
            raise
        except Exception:
            logger.exception("unhandled error on %s %s", request.method, request.path)
            metrics.errors.labels("unhandled").inc()
            response = json_response(
                {"error": "internal", "message": "系统繁忙，请稍后再试。" + CALL_110}, status=500
            )
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = request_id
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_label(request)
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(route).observe(elapsed)
        logger.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            status,
            elapsed * 1000,
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
        request_id_var.reset(token)


def _ready_dialogue(request: web.Request) -> Dialogue:
    runtime = request.app[RUNTIME]
    if runtime.dialogue is None:
        raise ApiError(503, "starting", "服务正在启动，请稍候再试。" + CALL_110)
    return runtime.dialogue


def _citizen(openid: str | None, sender: object) -> tuple[str, str]:
    """(channel, sender): the mini-program's signed-in openid, or the H5 page's own id."""
    if openid is not None:
        return MINIPROGRAM_CHANNEL, openid
    return "web", _checked_sender(sender)


def _checked_sender(sender: object) -> str:
    """The page's own id for the citizen: it keys the dialogue, the transcript and uploads."""
    if not isinstance(sender, str) or not SENDER_PATTERN.fullmatch(sender):
        raise ApiError(
            400, "invalid_sender", "sender 必须是1-128位字母、数字或 _ . : @ - 组成的字符串。"
        )
    return sender


async def chat(request: web.Request) -> web.Response:
    """POST /api/chat — the JSON contract of the H5 page and the mini-program."""
    body = await json_object(request)
    channel, sender = _citizen(await signed_in(request), body.get("sender"))
    text, payload = body.get("text"), body.get("payload")
    if payload is not None:
        if not isinstance(payload, str) or len(payload) > MAX_PAYLOAD_CHARS:
            raise ApiError(400, "invalid_payload", "按钮数据格式不正确。")
        match = PAYLOAD_PATTERN.fullmatch(payload.strip())
        dialogue = _ready_dialogue(request)
        if match is None or match["intent"] not in dialogue.agent.domain.intents:
            raise ApiError(400, "invalid_payload", "按钮数据格式不正确。")
        message, is_payload = payload.strip(), True
    elif isinstance(text, str):
        max_chars = request.app[SETTINGS].max_text_chars
        # Simplified script, half-width digits, no control characters: what the model and the
        # triage rules were built for. A leading "/" would be read by Rasa as an intent
        # command: typed text is only ever text.
        message, is_payload = normalise(text).lstrip("/").strip(), False
        if len(text.strip()) > max_chars:
            raise ApiError(413, "text_too_long", f"消息太长（最多{max_chars}字），请分几条发送。")
        if not message:
            return json_response(
                {"messages": [{"text": "请用文字告诉我您遇到的情况。" + CALL_110}]}
            )
        dialogue = _ready_dialogue(request)
    elif text is None:
        raise ApiError(400, "missing_text", "请求缺少 text 或 payload。")
    else:
        raise ApiError(400, "invalid_text", "text 必须是字符串。")

    messages = await converse(request.app, dialogue, channel, sender, message, is_payload)
    return json_response({"messages": messages})


async def converse(
    app: web.Application,
    dialogue: Dialogue,
    channel: str,
    sender: str,
    message: str,
    is_payload: bool,
) -> list[dict[str, Any]]:
    """One dialogue turn, counted and timed per channel: every channel's messages go here."""
    metrics = app[METRICS]
    metrics.messages.labels(channel).inc()
    with metrics.dialogue_latency.labels(channel).time():
        messages = await dialogue.respond(
            channel, sender, message, is_payload=is_payload, request_id=request_id_var.get()
        )
    return messages or [{"text": "消息已收到。" + CALL_110}]


async def upload(request: web.Request) -> web.Response:
    """POST /api/upload (multipart: sender, file) — a photo, voice note or video for the report.

    Answers like /api/chat, plus what was kept: {"messages": [...], "attachment": {...}}.
    """
    metrics = request.app[METRICS]
    try:
        reply = await _keep_upload(request)
    except ApiError as exc:
        metrics.upload_rejections.labels(exc.code).inc()
        raise
    metrics.uploads.labels(reply["attachment"]["kind"]).inc()
    return json_response(reply)


async def _keep_upload(request: web.Request) -> dict[str, Any]:
    openid = await signed_in(request)  # a bad token is 401 before anything else
    dialogue = _ready_dialogue(request)  # before reading up to 25 MB for nothing
    try:
        received = await read_upload(request)
        channel, sender = _citizen(openid, received.sender)
        try:
            mime = check_attachment(received.kind, received.mime, received.data)
        except AttachmentRejected as exc:
            raise refused(exc.reason, received.kind) from exc
    except UploadRefused as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    text, attachment_id = await keep_attachment(
        request.app, dialogue, channel, sender, received.kind, mime, received.data
    )
    return {
        "messages": [{"text": text}],
        "attachment": {"id": attachment_id, "kind": received.kind, "size": len(received.data)},
    }


async def keep_attachment(
    app: web.Application,
    dialogue: Dialogue,
    channel: str,
    sender: str,
    kind: str,
    mime: str,
    data: bytes,
) -> tuple[str, int]:
    """Keep a checked file with the sender's report; (what the citizen reads, attachment id)."""
    runtime = app[RUNTIME]
    book = IncidentBook(runtime.db, runtime.cipher)
    where = await destination(dialogue.agent.tracker_store, book, channel, sender)
    kept = functools.partial(book.add_attachment, channel, sender, kind=kind, mime=mime, data=data)
    try:
        attachment_id = await kept(incident_number=where.number)
    except (IncidentNotFound, IncidentClosed):
        # Closed or withdrawn meanwhile: keep the file for the citizen's next report.
        where = Destination(None, where.reporting)
        attachment_id = await kept(incident_number=None)
    size = len(data)
    text = confirmation(kind, where)
    # The call-taker's transcript shows that a file came and what became of it; never its
    # bytes, nor its name (a file name can carry a person's name).
    meta = {"kind": kind, "mime": mime, "size": size, "id": attachment_id}
    await dialogue.transcript.append(
        channel,
        sender,
        [("in", {"attachment": meta}, None), ("out", {"text": text}, None)],
        request_id_var.get(),
    )
    logger.info(
        "kept %s attachment %d (%d bytes, %s)",
        kind,
        attachment_id,
        size,
        "linked" if where.number else "loose",
    )
    return text, attachment_id


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    db_state = "error"
    if await runtime.db.ping():
        try:
            db_state = (
                "ok" if await applied_revision(runtime.db) == head_revision() else "not_migrated"
            )
        except Exception:  # migration table unreadable
            db_state = "not_migrated"
    dialogue = runtime.dialogue
    if runtime.load_error:
        status = "error"
    elif dialogue is None:
        status = "starting"
    else:
        status = "ok" if db_state == "ok" else "degraded"
    body: dict[str, Any] = {
        "status": status,
        "model": dialogue.model_id if dialogue else None,
        "db": db_state,
    }
    if runtime.load_error:
        body["error"] = runtime.load_error
    return json_response(body, status=200 if status == "ok" else 503)


async def metrics_view(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    if HANDOFF in request.app:
        try:
            counts = await request.app[HANDOFF].outbox.counts()
        except Exception:  # database down or not migrated: /healthz says so; still export
            metrics.errors.labels("outbox_count").inc()
        else:
            for status, count in counts.items():
                metrics.outbox.labels(status).set(count)
        mediation = request.app[HANDOFF].mediation
        if mediation is not None:
            try:
                states = await mediation.dispatcher.desk.counts()
            except Exception:  # as above
                metrics.errors.labels("mediation_count").inc()
            else:
                for state, count in states.items():
                    metrics.mediation_cases.labels(state).set(count)
    payload = generate_latest(metrics.registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/static/"):
        # Unversioned asset URLs: phones must revalidate to get a deploy's new JS and CSS.
        response.headers.setdefault("Cache-Control", "no-cache")
    if request.path == "/" or request.path.startswith("/static/"):
        # Everything the page needs is served from here: no CDN, no inline code.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'",
        )
    return response


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[RUNTIME] = Runtime(db=Database(settings.database_url), cipher=PiiCipher(settings.pii_key))
    yield
    await app[RUNTIME].db.dispose()


async def _notifier(app: web.Application) -> AsyncIterator[None]:
    """How a citizen hears that their case moved on: WeChat's own messages for both WeChat
    doors when the channel is configured, else stored notices their page fetches."""
    runtime = app[RUNTIME]
    wechat_notifier = app.get(wechat.WECHAT_NOTIFIER)
    app[NOTIFIER] = ChannelNotifier(
        StoredNotifier(NoticeBoard(runtime.db, runtime.cipher)),
        {"wechat": wechat_notifier, MINIPROGRAM_CHANNEL: wechat_notifier}
        if wechat_notifier is not None
        else {},
    )
    yield


async def _handoff(app: web.Application) -> AsyncIterator[None]:
    """The outbox relay in every worker: hands incidents to 110 / 12345 (local stand-ins in
    development) with retries; see routing/handoff/wiring.py for its environment."""
    settings, runtime, metrics = app[SETTINGS], app[RUNTIME], app[METRICS]
    env = {**os.environ, "ALARMBOT_ENV": settings.env}

    def attempted(item: OutboxItem, attempt: Attempt) -> None:
        metrics.handoff_attempts.labels(item.target, str(bool(attempt.ok)).lower()).inc()

    def dead(item: OutboxItem, error: str) -> None:
        metrics.handoff_dead.labels(item.target).inc()
        logger.error("handoff to %s gave up after retries: %s", item.target, error)

    def escalated(reason: str) -> None:
        metrics.mediation_escalations.labels(reason).inc()

    def missing_year(year: int) -> None:
        metrics.calendar_missing_year.labels(str(year)).inc()

    async with running_handoff(
        runtime.db,
        runtime.cipher,
        env,
        settings.var_dir,
        on_attempt=attempted,
        on_dead=dead,
        on_escalation=escalated,
        on_missing_year=missing_year,
        contacts=registered_contact(RegistrationStore(runtime.db, runtime.cipher)),
        notifier=app[NOTIFIER],
    ) as handoff:
        app[HANDOFF] = handoff
        yield


async def _halt_background(app: web.Application) -> None:
    """On shutdown (SIGTERM) the relay and mediation loops stop at once: aiohttp waits for
    running tasks before cleanup, and theirs would keep it waiting its full minute."""
    if HANDOFF in app:
        app[HANDOFF].halt()


def _services_env(app: web.Application) -> dict[str, str]:
    """The environment the actions' services read, with the LOCAL SMS stand-in's URL in
    development so registration codes take the production HTTP adapter too."""
    env = {**os.environ, "ALARMBOT_ENV": app[SETTINGS].env}
    handoff = app.get(HANDOFF)
    if handoff is not None and handoff.local_sms_url and not env.get("SMS_URL"):
        env["SMS_URL"] = handoff.local_sms_url
    return env


async def _load_dialogue(app: web.Application) -> None:
    settings, runtime = app[SETTINGS], app[RUNTIME]
    try:
        model = find_model(settings.project_dir, settings.models_dir, settings.model_path)
        if settings.action_endpoint_url:
            endpoint = EndpointConfig(url=settings.action_endpoint_url)
        else:
            runtime.services = ActionServices.from_database(
                runtime.db,
                runtime.cipher,
                _services_env(app),
                settings.var_dir,
                # A queued handoff goes out at once, not at the relay's next poll.
                handoff_queued=app[HANDOFF].relay.wake if HANDOFF in app else None,
            )
            endpoint = InProcessActions(build_executor(runtime.services))
        transcript = ConversationLog(runtime.db, runtime.cipher)
        tracker_store = SealedSQLTrackerStore(runtime.db, runtime.cipher, transcript=transcript)
        logger.info("loading model %s", model.name)
        started = time.perf_counter()
        agent = await asyncio.get_running_loop().run_in_executor(
            None, load_agent, model, tracker_store, endpoint, settings.tf_threads
        )
        runtime.dialogue = Dialogue(agent, transcript)
        app[METRICS].ready.set(1)
        logger.info("model loaded in %.1f s; ready", time.perf_counter() - started)
    except Exception as exc:
        runtime.load_error = f"{type(exc).__name__}: {exc}"
        app[METRICS].errors.labels("model_load").inc()
        logger.exception("could not load the dialogue model")
    finally:
        runtime.ready.set()


async def _dialogue(app: web.Application) -> AsyncIterator[None]:
    """Load the model in the background: /healthz answers 503 'starting' meanwhile."""
    task = asyncio.create_task(_load_dialogue(app))
    yield
    if not task.done():
        task.cancel()
        # The loading thread itself cannot be interrupted; let it finish in the background.
    services = app[RUNTIME].services
    if services is not None:
        await services.close()


def _install_wechat(app: web.Application, config: wechat.WeChatConfig) -> None:
    """/wechat: WeChat pushes take the same dialogue path as /api/chat."""

    def ready() -> Dialogue:
        dialogue = app[RUNTIME].dialogue
        if dialogue is None:
            raise wechat.DialogueStarting
        return dialogue

    async def respond(openid: str, message: str, is_payload: bool) -> list[dict[str, Any]]:
        return await converse(app, ready(), "wechat", openid, message, is_payload)

    async def keep_media(openid: str, kind: str, data: bytes, mime: str) -> str:
        try:
            checked = check_attachment(kind, mime, data)
        except AttachmentRejected:
            return "这个文件无法保存，请重发照片或用文字描述。" + CALL_110
        text, _ = await keep_attachment(app, ready(), "wechat", openid, kind, checked, data)
        return text

    wechat.install(
        app,
        config,
        storage=lambda: (app[RUNTIME].db, app[RUNTIME].cipher),
        respond=respond,
        keep_media=keep_media,
        registry=app[METRICS].registry,
        last_buttons=lambda openid: wechat.tracker_payloads(
            ready().agent.tracker_store, "wechat", openid
        ),
    )


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[request_context, security_headers], client_max_size=256 * 1024
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_database)
    if settings.wechat is not None:  # before the handoff: its notifier tells WeChat citizens
        _install_wechat(app, settings.wechat)
    app.cleanup_ctx.append(_notifier)
    app.cleanup_ctx.append(_handoff)
    app.on_shutdown.append(_halt_background)
    setup_callbacks(
        app, lambda: (app[RUNTIME].db, app[RUNTIME].cipher), notifier=lambda: app[NOTIFIER]
    )
    setup_miniprogram(
        app,
        lambda: (app[RUNTIME].db, app[RUNTIME].cipher),
        api=lambda: app[wechat.WECHAT].api if wechat.WECHAT in app else None,
    )
    setup_portal(
        app,
        lambda: app[HANDOFF].mediation if HANDOFF in app else None,
        phones=lambda: AuditedPhones.from_database(app[RUNTIME].db, app[RUNTIME].cipher),
    )
    app.cleanup_ctx.append(_dialogue)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/upload", upload)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    return app
