"""The WeChat channel (official account and mini-program push): see handler.py.

`install` adds /wechat to the app; bot/app.py calls it only when WECHAT_TOKEN is set.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from bot.channels.wechat.client import build_api
from bot.channels.wechat.config import LOCAL_API, WeChatConfig
from bot.channels.wechat.dedup import DatabaseDedup, Dedup, RedisDedup
from bot.channels.wechat.handler import (
    WECHAT,
    DialogueStarting,
    KeepMedia,
    LastButtons,
    Respond,
    WeChatChannel,
    add_routes,
)
from bot.channels.wechat.local import LocalWeChatApi
from bot.channels.wechat.notify import WeChatNotifier
from bot.channels.wechat.render import tracker_payloads
from routing.notify import StoredNotifier
from store.crypto import PiiCipher
from store.db import Database
from store.notices import NoticeBoard
from store.wechat import ContactWindows, KeyStore, SubscriptionGrants

logger = logging.getLogger(__name__)

WECHAT_NOTIFIER = web.AppKey("wechat_notifier", WeChatNotifier)

__all__ = [
    "WECHAT",
    "WECHAT_NOTIFIER",
    "DialogueStarting",
    "WeChatChannel",
    "WeChatConfig",
    "install",
    "tracker_payloads",
]


def install(
    app: web.Application,
    config: WeChatConfig,
    *,
    storage: Callable[[], tuple[Database, PiiCipher]],
    respond: Respond,
    keep_media: KeepMedia,
    registry: CollectorRegistry | None = None,
    last_buttons: LastButtons | None = None,
) -> None:
    """Route /wechat and build the channel at start-up (after the database exists), with
    its notifier for status updates (`app[WECHAT_NOTIFIER]`, for both WeChat doors)."""
    pushes = Counter(
        "alarmbot_wechat_pushes",
        "WeChat pushes by outcome: processed, retry, duplicate, deferred (reply by API), "
        "delivered/undelivered/queued (API reply; queued: beyond WeChat's limits, kept as a "
        "notice), refused_400/403/413, error",
        ["outcome"],
        registry=registry if registry is not None else CollectorRegistry(),
    )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        local_api = None
        settings = config
        if config.api_base_url == LOCAL_API:
            local_api = await LocalWeChatApi().start()
            settings = replace(config, api_base_url=local_api.url)
            logger.warning("WeChat API: LOCAL stand-in at %s (development only)", local_api.url)
        db, cipher = storage()
        keys = KeyStore(db)
        notices = NoticeBoard(db, cipher)
        dedup: Dedup = (
            RedisDedup(config.redis_url, config.dedup_ttl_s)
            if config.redis_url
            else DatabaseDedup(keys, config.dedup_ttl_s)
        )
        channel = WeChatChannel(
            settings,
            respond=respond,
            keep_media=keep_media,
            dedup=dedup,
            api=build_api(settings, keys),
            count=lambda outcome: pushes.labels(outcome).inc(),
            last_buttons=last_buttons,
            contacts=ContactWindows(db),
            notices=notices,
        )
        app[WECHAT] = channel
        app[WECHAT_NOTIFIER] = WeChatNotifier(
            settings, channel.customer_service, SubscriptionGrants(db), StoredNotifier(notices)
        )
        yield
        await channel.close()
        if isinstance(dedup, RedisDedup):
            await dedup.close()
        if local_api is not None:
            await local_api.stop()

    app.cleanup_ctx.append(lifecycle)
    add_routes(app)
