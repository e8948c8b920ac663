"""WeChat retries a push it got no answer to within 5 s (three times): process it once.

Keys live in shared storage with a TTL, since the retry may reach another worker. A retry
that reaches the worker still handling the first copy shares its answer (see handler).
"""

from __future__ import annotations

from typing import Protocol

from store.wechat import KeyStore


class Dedup(Protocol):
    async def first(self, key: str) -> bool:
        """True for the first sighting of `key` within the TTL."""
        ...

    async def forget(self, key: str) -> None:
        """Let a push whose handling failed be processed when WeChat retries it."""
        ...


class DatabaseDedup:
    def __init__(self, keys: KeyStore, ttl_s: float, prefix: str = "dedup:") -> None:
        self._keys = keys
        self._ttl = ttl_s
        self._prefix = prefix

    async def first(self, key: str) -> bool:
        return await self._keys.add(self._prefix + key, self._ttl)

    async def forget(self, key: str) -> None:
        await self._keys.delete(self._prefix + key)


class RedisDedup:
    """SET NX EX on Redis (REDIS_URL)."""

    def __init__(self, url: str, ttl_s: float, prefix: str = "alarmbot:wechat:dedup:") -> None:
        from redis import asyncio as aioredis  # only when configured

        self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._ttl = max(1, int(ttl_s))
        self._prefix = prefix

    async def first(self, key: str) -> bool:
        return bool(await self._redis.set(self._prefix + key, "1", ex=self._ttl, nx=True))

    async def forget(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def close(self) -> None:
        await self._redis.close()
