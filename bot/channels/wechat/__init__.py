"""The WeChat channel (official account and mini-program push): see handler.py.

`install` adds /wechat to the app; bot/app.py calls it only when WECHAT_TOKEN is set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from bot.channels.wechat.client import build_api
from bot.channels.wechat.config import WeChatConfig
from bot.channels.wechat.dedup import DatabaseDedup, Dedup, RedisDedup
from bot.channels.wechat.handler import (
    WECHAT,
    DialogueStarting,
    KeepMedia,
    Respond,
    WeChatChannel,
    add_routes,
)
from store.db import Database
from store.wechat import KeyStore

__all__ = ["WECHAT", "DialogueStarting", "WeChatChannel", "WeChatConfig", "install"]


def install(
    app: web.Application,
    config: WeChatConfig,
    *,
    database: Callable[[], Database],
    respond: Respond,
    keep_media: KeepMedia,
) -> None:
    """Route /wechat and build the channel at start-up (after the database exists)."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        keys = KeyStore(database())
        dedup: Dedup = (
            RedisDedup(config.redis_url, config.dedup_ttl_s)
            if config.redis_url
            else DatabaseDedup(keys, config.dedup_ttl_s)
        )
        channel = WeChatChannel(
            config,
            respond=respond,
            keep_media=keep_media,
            dedup=dedup,
            api=build_api(config, keys),
        )
        app[WECHAT] = channel
        yield
        await channel.close()

    app.cleanup_ctx.append(lifecycle)
    add_routes(app)
