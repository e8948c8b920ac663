"""Citizens as the dialogue sees them. Registration itself fills the sealed columns."""

from __future__ import annotations

from sqlalchemy import select

from store.db import Database
from store.models import Citizen


class CitizenDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def is_registered(self, channel: str, sender_id: str) -> bool:
        return await self.registered_id(channel, sender_id) is not None

    async def registered_id(self, channel: str, sender_id: str) -> int | None:
        """The citizen's id when registered (an incident links to it), else None."""
        query = select(Citizen.id).where(
            Citizen.channel == channel,
            Citizen.sender_id == sender_id,
            Citizen.status == "registered",
        )
        async with self._db.reader() as session:
            return (await session.execute(query)).scalar_one_or_none()


def conversation_key(channel: str, sender_id: str) -> str:
    """The Rasa conversation id for a channel identity: channels never share a tracker."""
    return f"{channel}:{sender_id}"


def split_conversation_key(key: str) -> tuple[str, str]:
    channel, _, sender_id = key.partition(":")
    return (channel, sender_id) if sender_id else ("unknown", key)
