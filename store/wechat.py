"""WeChat state shared by every worker: keys with a time to live (push dedup, the access
token), each openid's customer-service window, and subscribe-message grants.

A database rather than process memory because WeChat's retry of a push may reach another
worker, because workers must not each refresh the access token (every refresh invalidates
the previous token after a grace period), and because the five messages WeChat allows per
citizen message are five for all workers together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from store.db import Database
from store.models import WeChatContact, WeChatKey, WeChatSubscription, as_utc, utcnow

PURGE_EVERY = 200  # new keys between purges of expired rows
SERVICE_WINDOW = timedelta(hours=48)  # customer-service messages after the citizen's last one
MESSAGES_PER_INBOUND = 5  # customer-service messages per citizen message


def _now() -> datetime:
    return datetime.now(timezone.utc)


def dialect_insert(db: Database):  # noqa: ANN202 - the dialect's insert construct
    """INSERT with ON CONFLICT (SQLite and PostgreSQL both have it)."""
    return postgresql_insert if db.engine.dialect.name == "postgresql" else sqlite_insert


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
        insert = dialect_insert(self._db)
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


class ContactWindows:
    """WeChat's customer-service rule per openid: messages may go for 48 hours after the
    citizen's last message, five per message. `reserve` takes one of the five atomically
    (one UPDATE), so two workers sending late replies and status updates never exceed it."""

    def __init__(
        self,
        db: Database,
        now: Callable[[], datetime] = utcnow,
        window: timedelta = SERVICE_WINDOW,
        per_inbound: int = MESSAGES_PER_INBOUND,
    ) -> None:
        self._db = db
        self._clock = now
        self.window = window
        self.per_inbound = per_inbound

    def _now(self) -> datetime:
        return self._clock().astimezone(timezone.utc)

    async def inbound(self, openid: str) -> None:
        """The citizen wrote (or clicked, or entered the chat): a new window and five more."""
        now = self._now()
        upsert = (
            dialect_insert(self._db)(WeChatContact)
            .values(openid=openid, last_inbound_at=now, sent_since_inbound=0)
            .on_conflict_do_update(
                index_elements=[WeChatContact.openid],
                set_={"last_inbound_at": now, "sent_since_inbound": 0},
            )
        )
        async with self._db.session() as session:
            await session.execute(upsert)

    async def reserve(self, openid: str) -> bool:
        """True if one customer-service message may go now (and count it)."""
        contact = WeChatContact
        take = (
            update(contact)
            .where(
                contact.openid == openid,
                contact.last_inbound_at > self._now() - self.window,
                contact.sent_since_inbound < self.per_inbound,
            )
            .values(sent_since_inbound=contact.sent_since_inbound + 1)
            .execution_options(synchronize_session=False)
        )
        async with self._db.session() as session:
            return (await session.execute(take)).rowcount == 1

    async def last_inbound(self, openid: str) -> datetime | None:
        query = select(WeChatContact.last_inbound_at).where(WeChatContact.openid == openid)
        async with self._db.reader() as session:
            return as_utc((await session.execute(query)).scalar_one_or_none())


class SubscriptionGrants:
    """Subscribe-message grants the mini-program reported; WeChat allows one message per
    grant, so `consume` deletes the one it uses (the oldest), and only one caller gets it."""

    def __init__(self, db: Database, now: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = now

    async def grant(self, openid: str, template_ids: Iterable[str]) -> int:
        """Record one grant per template id; returns how many."""
        now = self._clock().astimezone(timezone.utc)
        rows = [
            WeChatSubscription(openid=openid, template_id=template_id, granted_at=now)
            for template_id in template_ids
        ]
        async with self._db.session() as session:
            session.add_all(rows)
        return len(rows)

    async def available(self, openid: str, template_id: str) -> int:
        grant = WeChatSubscription
        query = select(func.count()).where(grant.openid == openid, grant.template_id == template_id)
        async with self._db.reader() as session:
            return (await session.execute(query)).scalar_one()

    async def consume(self, openid: str, template_id: str) -> bool:
        """Use one grant; False if there is none left."""
        grant = WeChatSubscription
        oldest = (
            select(grant.id)
            .where(grant.openid == openid, grant.template_id == template_id)
            .order_by(grant.id)
            .limit(3)
        )
        while True:
            async with self._db.session() as session:
                candidates = (await session.execute(oldest)).scalars().all()
                if not candidates:
                    return False
                for grant_id in candidates:  # another worker may take one first
                    taken = await session.execute(
                        delete(grant)
                        .where(grant.id == grant_id)
                        .execution_options(synchronize_session=False)
                    )
                    if taken.rowcount == 1:
                        return True
