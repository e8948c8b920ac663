"""Citizens as the dialogue sees them. Registration itself fills the sealed columns."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from store.db import Database
from store.models import Citizen

# One WeChat app, two doors: pushes to /wechat (the official account, or the mini-program's
# customer-service chat) and the mini-program's own pages (/api/* with a session token). Both
# know the citizen by the openid WeChat gives that app (WECHAT_APP_ID), so a registration made
# through either door is the same citizen's. Conversations and reports keep their channel.
SAME_CITIZEN_AS = {"miniprogram": "wechat"}

# Built once: greeting and every report ask it (SQLAlchemy skips rebuilding it each time).
_REGISTERED_ID = select(Citizen.id).where(
    Citizen.channel == bindparam("channel"),
    Citizen.sender_id == bindparam("sender"),
    Citizen.status == "registered",
)


def citizen_key(channel: str, sender_id: str) -> tuple[str, str]:
    """The (channel, sender id) a citizen's registration is kept under."""
    return SAME_CITIZEN_AS.get(channel, channel), sender_id


def same_citizen_channels(channel: str) -> tuple[str, ...]:
    """Every channel that knows a citizen by the same id as `channel` does (itself first)."""
    owner, _ = citizen_key(channel, "")
    others = [c for c, o in SAME_CITIZEN_AS.items() if o == owner and c != channel]
    return (channel, *others, *([owner] if owner != channel else []))


class CitizenDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def is_registered(self, channel: str, sender_id: str) -> bool:
        return await self.registered_id(channel, sender_id) is not None

    async def registered_id(self, channel: str, sender_id: str) -> int | None:
        """The citizen's id when registered (an incident links to it), else None."""
        channel, sender_id = citizen_key(channel, sender_id)
        names = {"channel": channel, "sender": sender_id}
        async with self._db.read_connection() as connection:
            return (await connection.execute(_REGISTERED_ID, names)).scalar_one_or_none()


def conversation_key(channel: str, sender_id: str) -> str:
    """The Rasa conversation id for a channel identity: channels never share a tracker."""
    return f"{channel}:{sender_id}"


def split_conversation_key(key: str) -> tuple[str, str]:
    channel, _, sender_id = key.partition(":")
    return (channel, sender_id) if sender_id else ("unknown", key)
