"""WeChat shared state in the database: dedup keys with a TTL, and one token refresh for
two workers (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from bot.channels.wechat.client import DatabaseKeys, SharedTokenClient, WeChatApi
from bot.channels.wechat.config import WeChatConfig
from bot.channels.wechat.dedup import DatabaseDedup
from bot.channels.wechat.local import LocalWeChatApi
from store.db import Database
from store.wechat import KeyStore


async def test_dedup_first_sighting_only_until_the_ttl(db: Database) -> None:
    dedup = DatabaseDedup(KeyStore(db), ttl_s=600)
    assert await dedup.first("msg:1") is True
    assert await dedup.first("msg:1") is False
    assert await dedup.first("msg:2") is True
    await dedup.forget("msg:1")
    assert await dedup.first("msg:1") is True
    expired = DatabaseDedup(KeyStore(db), ttl_s=0)
    assert await expired.first("msg:3") is True
    assert await expired.first("msg:3") is True  # an expired key is taken over


async def test_concurrent_copies_are_processed_once(db: Database) -> None:
    dedups = [DatabaseDedup(KeyStore(db), ttl_s=600) for _ in range(2)]  # two workers
    results = await asyncio.gather(*(dedups[i % 2].first("msg:race") for i in range(8)))
    assert results.count(True) == 1


async def test_keystore_get_set_purge(db: Database) -> None:
    keys = KeyStore(db)
    await keys.set("a", "1", 60)
    await keys.set("a", "2", 60)
    assert await keys.get("a") == "2"
    await keys.set("old", "x", 0)
    assert await keys.get("old") is None
    assert await keys.purge() >= 1
    assert await keys.get("missing") is None


async def test_two_workers_refresh_the_token_once(db: Database) -> None:
    api = await LocalWeChatApi(token_delay_s=0.2).start()
    try:
        config = WeChatConfig(token="t", app_id="wxLOCAL", app_secret="s", api_base_url=api.url)
        loop = asyncio.get_running_loop()
        workers = [
            WeChatApi(SharedTokenClient(config, DatabaseKeys(KeyStore(db), loop, 30)))
            for _ in range(2)
        ]
        await asyncio.gather(*(w.send_text(f"oLOCAL{i}", "hi") for i, w in enumerate(workers)))
        assert api.token_fetches == 1
        assert len(api.sent) == 2
    finally:
        await api.stop()
