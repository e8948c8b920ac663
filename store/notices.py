"""Status messages waiting for a citizen: written when their case moves on (a 12345 callback,
a mediator assigned), shown by their channel the next time it asks (H5 poll, chat reply).

The text is sealed: it names their case and may say what is happening with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, update

from store import models
from store.crypto import PiiCipher
from store.db import Database
from store.models import as_utc, utcnow

MAX_NOTICE_CHARS = 500


@dataclass(frozen=True)
class Notice:
    id: int
    text: str
    created_at: datetime


def _context(channel: str, sender_id: str) -> str:
    return f"citizen_notices.text:{channel}:{sender_id}"


class NoticeBoard:
    """`post` a notice for one channel identity; `take` hands each one out once."""

    def __init__(
        self, db: Database, cipher: PiiCipher, now: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._clock = now

    async def post(self, channel: str, sender_id: str, text: str) -> int:
        text = text.strip()
        if not text:
            raise ValueError("empty notice")
        row = models.CitizenNotice(
            channel=channel,
            sender_id=sender_id,
            text_sealed=self._cipher.seal(text[:MAX_NOTICE_CHARS], _context(channel, sender_id)),
            created_at=self._clock().astimezone(timezone.utc),
        )
        async with self._db.session() as session:
            session.add(row)
            await session.flush()
            return row.id

    async def take(self, channel: str, sender_id: str, limit: int = 20) -> list[Notice]:
        """The notices not shown yet, oldest first, marked shown in the same transaction (a
        conditional update: two polls at once do not both get the same notice)."""
        table = models.CitizenNotice
        now = self._clock().astimezone(timezone.utc)
        taken: list[Notice] = []
        waiting = (
            select(table)
            .where(
                table.channel == channel,
                table.sender_id == sender_id,
                table.shown_at.is_(None),
            )
            .order_by(table.id)
            .limit(limit)
        )
        # Most polls find nothing: look first without taking SQLite's single write slot.
        async with self._db.reader() as session:
            if (await session.execute(waiting.with_only_columns(table.id))).first() is None:
                return taken
        async with self._db.session() as session:
            rows = (await session.execute(waiting)).scalars().all()
            for row in rows:
                won = await session.execute(
                    update(table)
                    .where(table.id == row.id, table.shown_at.is_(None))
                    .values(shown_at=now)
                    .execution_options(synchronize_session=False)
                )
                if won.rowcount == 1:
                    created = as_utc(row.created_at)
                    text = self._cipher.open(row.text_sealed, _context(channel, sender_id))
                    taken.append(Notice(row.id, text, created))
        return taken
