"""The transcript: every message in and out, sealed, per channel identity."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.crypto import PiiCipher
from store.db import Database
from store.models import Conversation, Message, utcnow

_CONTEXT = "messages.content"

# Built once (SQLAlchemy skips rebuilding them and their cache keys): every message runs them.
_CONVERSATION_ID = select(Conversation.id).where(
    Conversation.channel == bindparam("channel"), Conversation.sender_id == bindparam("sender")
)
_INSERT_MESSAGES = insert(Message)
_TOUCH_CONVERSATION = (
    update(Conversation)
    .where(Conversation.id == bindparam("conversation"))
    .values(
        last_message_at=bindparam("now"),
        message_count=Conversation.message_count + bindparam("added"),
    )
)


@dataclass(frozen=True)
class LoggedMessage:
    direction: str
    content: dict[str, Any]
    intent: str | None
    created_at: datetime


class ConversationLog:
    """Appends messages; one conversation row per (channel, sender)."""

    CACHE_SIZE = 10_000

    def __init__(self, db: Database, cipher: PiiCipher) -> None:
        self._db = db
        self._cipher = cipher
        # (channel, sender) -> conversation id, saving a query per message. Only ids read
        # back from the database are cached, never one inserted in a still-open transaction.
        self._ids: OrderedDict[tuple[str, str], int] = OrderedDict()

    def forget(self, channel: str, sender_id: str) -> None:
        """Call when a conversation row is deleted (e.g. erasure on request)."""
        self._ids.pop((channel, sender_id), None)

    async def _conversation_id(
        self, connection: AsyncConnection, channel: str, sender_id: str
    ) -> int:
        key = (channel, sender_id)
        if key in self._ids:
            self._ids.move_to_end(key)
            return self._ids[key]
        names = {"channel": channel, "sender": sender_id}
        found = (await connection.execute(_CONVERSATION_ID, names)).scalar_one_or_none()
        if found is not None:
            self._ids[key] = found
            if len(self._ids) > self.CACHE_SIZE:
                self._ids.popitem(last=False)
            return found
        try:
            async with connection.begin_nested():
                created = await connection.execute(
                    insert(Conversation).values(channel=channel, sender_id=sender_id)
                )
            return int(created.inserted_primary_key[0])
        except IntegrityError:  # created concurrently by another worker
            return (await connection.execute(_CONVERSATION_ID, names)).scalar_one()

    async def append(
        self,
        channel: str,
        sender_id: str,
        turns: list[tuple[str, dict[str, Any], str | None]],
        request_id: str | None = None,
    ) -> None:
        """Record (direction, content, intent) turns in a transaction of their own."""
        if turns:
            async with self._db.connection() as connection:
                await self.stage(connection, channel, sender_id, turns, request_id)

    async def stage(
        self,
        connection: AsyncConnection,
        channel: str,
        sender_id: str,
        turns: list[tuple[str, dict[str, Any], str | None]],
        request_id: str | None = None,
    ) -> None:
        """Add turns to the caller's transaction, e.g. beside the dialogue state they come from."""
        if not turns:
            return
        now = utcnow()
        conversation_id = await self._conversation_id(connection, channel, sender_id)
        rows = [
            {
                "conversation_id": conversation_id,
                "direction": direction,
                "channel": channel,
                "sender_id": sender_id,
                "content_sealed": self._cipher.seal(
                    json.dumps(content, ensure_ascii=False), _CONTEXT
                ),
                "intent": intent,
                "request_id": request_id,
                "created_at": now,
            }
            for direction, content, intent in turns
        ]
        await connection.execute(_INSERT_MESSAGES, rows)
        await connection.execute(
            _TOUCH_CONVERSATION, {"conversation": conversation_id, "now": now, "added": len(rows)}
        )

    async def transcript(self, channel: str, sender_id: str) -> list[LoggedMessage]:
        query = (
            select(Message)
            .join(Conversation, Message.conversation_id == Conversation.id)
            .where(Conversation.channel == channel, Conversation.sender_id == sender_id)
            .order_by(Message.id)
        )
        async with self._db.reader() as session:
            rows = (await session.execute(query)).scalars().all()
        return [
            LoggedMessage(
                direction=row.direction,
                content=json.loads(self._cipher.open(row.content_sealed, _CONTEXT)),
                intent=row.intent,
                created_at=row.created_at,
            )
            for row in rows
        ]
