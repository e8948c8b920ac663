"""Rasa tracker store on our own async database, with every event sealed.

Rasa's stock `SQLTrackerStore` uses a synchronous engine (blocking the event loop on every
message) and keeps slots and user texts in clear; this one shares the application's
async engine and seals each event with the PII cipher.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextvars import ContextVar

from rasa.core.tracker_store import SerializedTrackerAsText, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import func, select

from store.crypto import PiiCipher
from store.db import Database
from store.models import TrackerEvent

_CONTEXT = "tracker_events.data"

# The tracker this task saved last: lets the caller of `agent.handle_message` read the turn's
# intent without loading and decrypting the tracker a second time.
last_saved_tracker: ContextVar[DialogueStateTracker | None] = ContextVar(
    "last_saved_tracker", default=None
)


class SealedSQLTrackerStore(TrackerStore, SerializedTrackerAsText):
    def __init__(self, db: Database, cipher: PiiCipher, domain: Domain | None = None) -> None:
        super().__init__(domain)
        self._db = db
        self._cipher = cipher

    @staticmethod
    def _session_start_seq(sender_id: str):  # noqa: ANN205 - SQL expression
        return (
            select(func.max(TrackerEvent.seq))
            .where(
                TrackerEvent.sender_id == sender_id,
                TrackerEvent.type_name == SessionStarted.type_name,
            )
            .scalar_subquery()
        )

    def _event_query(self, sender_id: str, all_sessions: bool):  # noqa: ANN202
        query = select(TrackerEvent.data_sealed).where(TrackerEvent.sender_id == sender_id)
        if not all_sessions:
            start = self._session_start_seq(sender_id)
            query = query.where((start.is_(None)) | (TrackerEvent.seq >= start))
        return query.order_by(TrackerEvent.seq)

    async def _retrieve(self, sender_id: str, all_sessions: bool) -> DialogueStateTracker | None:
        async with self._db.session() as session:
            rows = (await session.execute(self._event_query(sender_id, all_sessions))).all()
        if not rows:
            return None
        events = [json.loads(self._cipher.open(row[0], _CONTEXT)) for row in rows]
        return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        return await self._retrieve(sender_id, all_sessions=False)

    async def retrieve_full_tracker(self, conversation_id: str) -> DialogueStateTracker | None:
        return await self._retrieve(conversation_id, all_sessions=True)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Append the events not stored yet (the tracker holds the latest session only)."""
        await self.stream_events(tracker)
        last_saved_tracker.set(tracker)
        sender_id = tracker.sender_id
        async with self._db.session() as session:
            start = self._session_start_seq(sender_id)
            stored_in_session, last_seq = (
                await session.execute(
                    select(
                        select(func.count())
                        .select_from(TrackerEvent)
                        .where(
                            TrackerEvent.sender_id == sender_id,
                            start.is_(None) | (TrackerEvent.seq >= start),
                        )
                        .scalar_subquery(),
                        select(func.coalesce(func.max(TrackerEvent.seq), 0))
                        .where(TrackerEvent.sender_id == sender_id)
                        .scalar_subquery(),
                    )
                )
            ).one()
            new_events = list(tracker.events)[stored_in_session:]
            for offset, event in enumerate(new_events, start=1):
                data = event.as_dict()
                session.add(
                    TrackerEvent(
                        sender_id=sender_id,
                        seq=last_seq + offset,
                        type_name=event.type_name,
                        timestamp=data.get("timestamp"),
                        data_sealed=self._cipher.seal(json.dumps(data), _CONTEXT),
                    )
                )

    async def keys(self) -> Iterable[str]:
        async with self._db.session() as session:
            rows = await session.execute(select(TrackerEvent.sender_id).distinct())
        return [row[0] for row in rows]
