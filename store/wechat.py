"""Keys with a time to live, shared by every worker: WeChat push dedup and the access token.

A database table rather than process memory because WeChat's retry of a push may reach
another worker, and because workers must not each refresh the access token (every refresh
invalidates the previous token after a grace period).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from store.db import Database
from store.models import WeChatKey, as_utc

PURGE_EVERY = 200  # new keys between purges of expired rows


def _now() -> datetime:
    return datetime.now(timezone.utc)


class KeyStore:
    """`add` is the atomic "first one wins" the dedup and the refresh lease rely on."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._added = 0

    async def add(self, key: str, ttl_s: float, value: str | None = None) -> bool:
        """Store `key` unless a live copy exists; True if this call stored it."""
        now = _now()
        expires = now + timedelta(seconds=ttl_s)
        self._added += 1
        insert = self._insert(self._db.engine.dialect.name)
        fresh = (
            insert(WeChatKey)
            .values(key=key, value=value, expires_at=expires)
            .on_conflict_do_nothing(index_elements=[WeChatKey.key])
        )
        async with self._db.session() as session:
            # One statement in the usual case (a new key); an expired copy is taken over.
            if not (await session.execute(fresh)).rowcount:
                taken = await session.execute(
                    update(WeChatKey)
                    .where(WeChatKey.key == key, WeChatKey.expires_at <= now)
                    .values(value=value, expires_at=expires)
                )
                if not taken.rowcount:
                    return False
        if self._added % PURGE_EVERY == 0:
            await self.purge()
        return True

    @staticmethod
    def _insert(dialect: str):  # noqa: ANN205 - a dialect's insert construct
        return postgresql_insert if dialect == "postgresql" else sqlite_insert

    async def get(self, key: str) -> str | None:
        query = select(WeChatKey.value, WeChatKey.expires_at).where(WeChatKey.key == key)
        async with self._db.reader() as session:
            row = (await session.execute(query)).first()
        if row is None or as_utc(row.expires_at) <= _now():
            return None
        return row.value

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        """Store or replace `key`."""
        expires = _now() + timedelta(seconds=ttl_s)
        change = (
            update(WeChatKey).where(WeChatKey.key == key).values(value=value, expires_at=expires)
        )
        try:
            async with self._db.session() as session:
                if not (await session.execute(change)).rowcount:
                    session.add(WeChatKey(key=key, value=value, expires_at=expires))
        except IntegrityError:  # another worker inserted it meanwhile: last writer wins
            async with self._db.session() as session:
                await session.execute(change)

    async def delete(self, key: str) -> None:
        async with self._db.session() as session:
            await session.execute(delete(WeChatKey).where(WeChatKey.key == key))

    async def purge(self) -> int:
        """Drop expired keys; returns how many."""
        async with self._db.session() as session:
            result = await session.execute(delete(WeChatKey).where(WeChatKey.expires_at <= _now()))
        return result.rowcount or 0
