"""Rasa tracker store on our own async database, with every event sealed.

Rasa's stock `SQLTrackerStore` uses a synchronous engine (blocking the event loop on every
message) and keeps slots and user texts in clear; this one shares the application's
async engine and seals each event with the PII cipher. The transcript call-takers read is
written from the same new events in the same transaction, so the two never disagree.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rasa.core.tracker_store import SerializedTrackerAsText, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, Event, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.citizens import split_conversation_key
from store.conversations import ConversationLog
from store.crypto import PiiCipher
from store.db import Database
from store.models import TrackerEvent

_CONTEXT = "tracker_events.data"

# The statements of every message, built once: SQLAlchemy then skips building them and
# computing their cache keys again (~0.15 ms of CPU each). `:sender_id` is the parameter.
_SENDER = bindparam("sender_id")
_SESSION_START_SEQ = (
    select(func.max(TrackerEvent.seq))
    .where(TrackerEvent.sender_id == _SENDER, TrackerEvent.type_name == SessionStarted.type_name)
    .scalar_subquery()
)
_IN_LATEST_SESSION = _SESSION_START_SEQ.is_(None) | (TrackerEvent.seq >= _SESSION_START_SEQ)
_ALL_EVENTS = (
    select(TrackerEvent.seq, TrackerEvent.data_sealed)
    .where(TrackerEvent.sender_id == _SENDER)
    .order_by(TrackerEvent.seq)
)
_LATEST_SESSION_EVENTS = _ALL_EVENTS.where(_IN_LATEST_SESSION)
_LAST_SEQ = select(func.max(TrackerEvent.seq)).where(TrackerEvent.sender_id == _SENDER)
_STORED_NOW = select(
    select(func.count())
    .select_from(TrackerEvent)
    .where(TrackerEvent.sender_id == _SENDER, _IN_LATEST_SESSION)
    .scalar_subquery(),
    select(func.coalesce(func.max(TrackerEvent.seq), 0))
    .where(TrackerEvent.sender_id == _SENDER)
    .scalar_subquery(),
)
_INSERT_EVENTS = insert(TrackerEvent)
REPLY_FIELDS = ("text", "buttons", "image", "custom", "attachment")


def reply_content(message: dict[str, Any]) -> dict[str, Any]:
    """The part of a bot message a channel shows: what /api/chat returns and the transcript keeps."""
    return {key: value for key, value in message.items() if key in REPLY_FIELDS and value}


def transcript_turns(events: Sequence[Event]) -> list[tuple[str, dict[str, Any], str | None]]:
    """(direction, content, intent) for the user and bot messages among `events`.

    A user text starting with "/" is a button payload: typed text never does (see bot.app).
    """
    turns: list[tuple[str, dict[str, Any], str | None]] = []
    for event in events:
        if isinstance(event, UserUttered) and event.text is not None:
            key = "payload" if event.text.startswith("/") else "text"
            turns.append(("in", {key: event.text}, event.intent_name))
        elif isinstance(event, BotUttered):
            turns.append(("out", reply_content({"text": event.text, **event.data}), None))
    return turns


@dataclass(frozen=True)
class _Stored:
    """How many events of the latest session are stored, and the last sequence number."""

    in_session: int
    last_seq: int


@dataclass(frozen=True)
class _Warm:
    """A tracker this worker saved and nobody holds, valid while `last_seq` is the newest."""

    last_seq: int
    tracker: DialogueStateTracker


class SealedSQLTrackerStore(TrackerStore, SerializedTrackerAsText):
    CACHE_SIZE = 10_000
    # Trackers kept after their turn, so the citizen's next message skips decrypting and
    # replaying the session (~1.5 ms of CPU); a few hundred active conversations, ~50 KB each.
    WARM_SIZE = 512

    def __init__(
        self,
        db: Database,
        cipher: PiiCipher,
        domain: Domain | None = None,
        transcript: ConversationLog | None = None,
    ) -> None:
        super().__init__(domain)
        self._db = db
        self._cipher = cipher
        self._transcript = transcript
        self._stored: OrderedDict[str, _Stored] = OrderedDict()
        self._warm: OrderedDict[str, _Warm] = OrderedDict()

    async def _retrieve(self, sender_id: str, all_sessions: bool) -> DialogueStateTracker | None:
        async with self._db.read_connection() as connection:
            query = _ALL_EVENTS if all_sessions else _LATEST_SESSION_EVENTS
            rows = (await connection.execute(query, {"sender_id": sender_id})).all()
        if not rows:
            return None
        if not all_sessions:
            self._remember(sender_id, _Stored(in_session=len(rows), last_seq=rows[-1][0]))
        events = [json.loads(self._cipher.open(row[1], _CONTEXT)) for row in rows]
        return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)

    def _remember(self, sender_id: str, stored: _Stored) -> None:
        self._stored[sender_id] = stored
        self._stored.move_to_end(sender_id)
        if len(self._stored) > self.CACHE_SIZE:
            self._stored.popitem(last=False)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The latest session; the tracker saved at the end of this worker's last turn for
        this sender when nothing was stored since (another worker, an erasure).

        A kept tracker is handed out once and comes back only with a successful save, so
        a turn that fails half-way never leaves its unsaved events behind for the next.
        """
        warm = self._warm.pop(sender_id, None)
        if warm is not None and warm.last_seq == await self._last_seq(sender_id):
            self._remember(sender_id, _Stored(len(warm.tracker.events), warm.last_seq))
            return warm.tracker
        return await self._retrieve(sender_id, all_sessions=False)

    async def _last_seq(self, sender_id: str) -> int | None:
        async with self._db.read_connection() as connection:
            return (
                await connection.execute(_LAST_SEQ, {"sender_id": sender_id})
            ).scalar_one_or_none()

    def _keep_warm(self, tracker: DialogueStateTracker, last_seq: int) -> None:
        """Keep a copy of what a retrieve from the database would give: the events from the
        latest SessionStarted on (replaying events is cheap, decoding them is not)."""
        events = list(tracker.events)
        starts = [i for i, event in enumerate(events) if isinstance(event, SessionStarted)]
        kept = tracker.init_copy()
        for event in events[starts[-1] if starts else 0 :]:
            kept.update(event)
        self._warm[tracker.sender_id] = _Warm(last_seq, kept)
        self._warm.move_to_end(tracker.sender_id)
        if len(self._warm) > self.WARM_SIZE:
            self._warm.popitem(last=False)

    async def retrieve_full_tracker(self, conversation_id: str) -> DialogueStateTracker | None:
        return await self._retrieve(conversation_id, all_sessions=True)

    async def _stored_now(self, connection: AsyncConnection, sender_id: str) -> _Stored:
        in_session, last_seq = (
            await connection.execute(_STORED_NOW, {"sender_id": sender_id})
        ).one()
        return _Stored(in_session=in_session, last_seq=last_seq)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Append the events not stored yet (the tracker holds the latest session only).

        What is stored is known from the `retrieve` of this same turn (the lock store lets
        one worker at a time handle a conversation); if another writer got in between
        anyway, the unique (sender_id, seq) key refuses the insert and we count again.
        """
        await self.stream_events(tracker)
        self._warm.pop(tracker.sender_id, None)
        known = self._stored.pop(tracker.sender_id, None)
        try:
            last_seq = await self._append(tracker, known)
        except IntegrityError:
            if known is None:
                raise
            last_seq = await self._append(tracker, None)
        if last_seq is not None:
            self._keep_warm(tracker, last_seq)

    async def _append(self, tracker: DialogueStateTracker, known: _Stored | None) -> int | None:
        """Store the new events; the last stored sequence number when the tracker is now
        exactly what is stored (None if that is not known)."""
        sender_id = tracker.sender_id
        async with self._db.connection() as connection:
            stored = known or await self._stored_now(connection, sender_id)
            new_events = list(tracker.events)[stored.in_session :]
            if stored.in_session > len(tracker.events):
                return None  # the tracker is shorter than what is stored: keep nothing warm
            if not new_events:
                return stored.last_seq
            rows = []
            for seq, event in enumerate(new_events, start=stored.last_seq + 1):
                data = event.as_dict()
                rows.append(
                    {
                        "sender_id": sender_id,
                        "seq": seq,
                        "type_name": event.type_name,
                        "timestamp": data.get("timestamp"),
                        "data_sealed": self._cipher.seal(json.dumps(data), _CONTEXT),
                    }
                )
            await connection.execute(_INSERT_EVENTS, rows)
            if self._transcript is not None:
                channel, channel_sender = split_conversation_key(sender_id)
                message_id = tracker.latest_message.message_id if tracker.latest_message else None
                await self._transcript.stage(
                    connection, channel, channel_sender, transcript_turns(new_events), message_id
                )
            return rows[-1]["seq"]

    async def keys(self) -> Iterable[str]:
        async with self._db.reader() as session:
            rows = await session.execute(select(TrackerEvent.sender_id).distinct())
        return [row[0] for row in rows]
