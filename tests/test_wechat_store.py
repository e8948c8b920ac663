"""WeChat shared state in the database: dedup keys with a TTL, and one token refresh for
two workers (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time

import pytest

from bot.channels.wechat.client import DatabaseKeys, RedisKeys, SharedTokenClient, WeChatApi
from bot.channels.wechat.config import WeChatConfig
from bot.channels.wechat.dedup import DatabaseDedup, RedisDedup
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
    engines = [Database(db.url) for _ in range(2)]  # each worker its own connections
    try:
        config = WeChatConfig(token="t", app_id="wxLOCAL", app_secret="s", api_base_url=api.url)
        loop = asyncio.get_running_loop()
        workers = [
            WeChatApi(SharedTokenClient(config, DatabaseKeys(KeyStore(e), loop, 30)))
            for e in engines
        ]
        await asyncio.gather(*(w.send_text(f"oLOCAL{i}", "hi") for i, w in enumerate(workers)))
        assert api.token_fetches == 1
        assert len(api.sent) == 2
    finally:
        await api.stop()
        for engine in engines:
            await engine.dispose()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A throwaway redis-server on a loopback port (skipped where Redis is not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


async def test_redis_dedup(redis_url: str) -> None:
    dedup = RedisDedup(redis_url, ttl_s=60, prefix=f"t:{time.time_ns()}:")
    results = await asyncio.gather(*(dedup.first("msg:1") for _ in range(5)))
    assert results.count(True) == 1
    await dedup.forget("msg:1")
    assert await dedup.first("msg:1") is True
    await dedup.close()


async def test_two_workers_refresh_the_token_once_on_redis(redis_url: str) -> None:
    api = await LocalWeChatApi(token_delay_s=0.2).start()
    try:
        config = WeChatConfig(
            token="t", app_id=f"wx{time.time_ns()}", app_secret="s", api_base_url=api.url
        )
        workers = [WeChatApi(SharedTokenClient(config, RedisKeys(redis_url))) for _ in range(2)]
        await asyncio.gather(*(w.send_text(f"oLOCAL{i}", "hi") for i, w in enumerate(workers)))
        assert api.token_fetches == 1 and len(api.sent) == 2
    finally:
        await api.stop()


async def test_the_app_dedups_on_redis_when_configured(aiohttp_client, tmp_path, redis_url) -> None:  # noqa: ANN001
    from dataclasses import replace

    from bot.app import create_app
    from bot.channels.wechat.local import push_xml
    from bot.channels.wechat.protocol import signature
    from tests.support import make_settings

    config = WeChatConfig.from_env({"WECHAT_TOKEN": "t", "REDIS_URL": redis_url})
    settings = make_settings(tmp_path, tmp_path / "no-models")
    http = await aiohttp_client(create_app(replace(settings, wechat=config)))
    ts = str(int(time.time()))
    query = {"timestamp": ts, "nonce": "1", "signature": signature("t", ts, "1")}
    msg_id = time.time_ns()
    body = push_xml("oLOCALredis", "gh", "text", int(ts), Content="你好", MsgId=msg_id)
    for _ in range(2):
        response = await http.post("/wechat", params=query, data=body.encode())
        assert response.status == 200
    exported = await (await http.get("/metrics")).text()
    assert 'alarmbot_wechat_pushes_total{outcome="processed"} 1.0' in exported
    import redis

    assert redis.Redis.from_url(redis_url).exists(f"alarmbot:wechat:dedup:msg:{msg_id}")
