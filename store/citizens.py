"""Citizens as the dialogue sees them. Registration itself fills the sealed columns."""

from __future__ import annotations

from sqlalchemy import select

from store.db import Database
from store.models import Citizen


class CitizenDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def is_registered(self, channel: str, sender_id: str) -> bool:
        query = select(Citizen.status).where(
            Citizen.channel == channel, Citizen.sender_id == sender_id
        )
        async with self._db.reader() as session:
            status = (await session.execute(query)).scalar_one_or_none()
        return status == "registered"


def conversation_key(channel: str, sender_id: str) -> str:
    """The Rasa conversation id for a channel identity: channels never share a tracker."""
    return f"{channel}:{sender_id}"


def split_conversation_key(key: str) -> tuple[str, str]:
    channel, _, sender_id = key.partition(":")
    return (channel, sender_id) if sender_id else ("unknown", key)
