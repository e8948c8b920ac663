"""The store on SQLite and, when available, PostgreSQL: migrations, transcript, tracker."""

from __future__ import annotations

import uuid

from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import inspect, select

from bot.tracker_store import SealedSQLTrackerStore
from store import migrate
from store.conversations import ConversationLog
from store.crypto import PiiCipher
from store.db import Database, normalise_url
from store.models import Message, TrackerEvent

CIPHER = PiiCipher(b"s" * 32)
DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [greet]
slots:
  note:
    type: text
    mappings: [{type: custom}]
"""
)


def test_url_normalisation() -> None:
    assert normalise_url("sqlite:///var/x.db") == "sqlite+aiosqlite:///var/x.db"
    assert normalise_url("postgres://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert normalise_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"


def test_migrations_go_down_and_up_again(database_url: str) -> None:
    assert migrate.current(database_url).startswith(migrate.head_revision())
    migrate.downgrade(database_url, "base")
    assert "none" in migrate.current(database_url)
    migrate.upgrade(database_url)
    assert migrate.head_revision() in migrate.current(database_url)


async def test_schema_matches_the_models(db: Database) -> None:
    from store.models import Base

    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert await migrate.applied_revision(db) == migrate.head_revision()


async def test_transcript_is_sealed_at_rest(db: Database) -> None:
    log = ConversationLog(db, CIPHER)
    sender = uuid.uuid4().hex
    await log.append("web", sender, [("in", {"text": "我叫张三"}, "greet")], request_id="r1")
    await log.append("web", sender, [("out", {"text": "您好"}, None)])
    transcript = await log.transcript("web", sender)
    assert [(m.direction, m.content["text"]) for m in transcript] == [
        ("in", "我叫张三"),
        ("out", "您好"),
    ]
    async with db.session() as session:
        raw = (await session.execute(select(Message.content_sealed))).scalars().all()
    assert raw and all("张三".encode() not in blob for blob in raw)


async def test_tracker_round_trip_across_sessions(db: Database) -> None:
    store = SealedSQLTrackerStore(db, CIPHER, DOMAIN)
    sender = f"web:{uuid.uuid4().hex}"
    tracker = DialogueStateTracker.from_events(
        sender,
        [ActionExecuted("action_listen"), UserUttered("我的身份证号是110101199003074514")],
        DOMAIN.slots,
    )
    tracker.update(SlotSet("note", "住在南京西路"))
    await store.save(tracker)

    loaded = await store.retrieve(sender)
    assert loaded is not None
    assert loaded.get_slot("note") == "住在南京西路"
    assert loaded.latest_message.text.startswith("我的身份证号")

    loaded.update(SessionStarted())
    loaded.update(ActionExecuted("action_listen"))
    await store.save(loaded)
    again = await store.retrieve(sender)
    assert [e.type_name for e in again.events][:1] == ["session_started"]
    full = await store.retrieve_full_tracker(sender)
    assert len(full.events) == len(loaded.events)
    assert sender in await store.keys()

    async with db.session() as session:
        blobs = (await session.execute(select(TrackerEvent.data_sealed))).scalars().all()
    assert all(b"110101199003074514" not in b and "南京西路".encode() not in b for b in blobs)


async def test_saving_twice_stores_nothing_twice(db: Database) -> None:
    store = SealedSQLTrackerStore(db, CIPHER, DOMAIN)
    sender = f"web:{uuid.uuid4().hex}"
    tracker = DialogueStateTracker.from_events(sender, [ActionExecuted("action_listen")])
    await store.save(tracker)
    await store.save(tracker)
    assert len((await store.retrieve(sender)).events) == 1


async def test_unknown_sender_has_no_tracker(db: Database) -> None:
    assert await SealedSQLTrackerStore(db, CIPHER, DOMAIN).retrieve("web:nobody") is None


async def test_tracker_save_writes_the_transcript_in_the_same_transaction(db: Database) -> None:
    from rasa.shared.core.events import BotUttered

    log = ConversationLog(db, CIPHER)
    store = SealedSQLTrackerStore(db, CIPHER, DOMAIN, transcript=log)
    channel_sender = uuid.uuid4().hex
    tracker = DialogueStateTracker.from_events(
        f"web:{channel_sender}",
        [
            ActionExecuted("action_listen"),
            UserUttered("/greet", intent={"name": "greet", "confidence": 1.0}, message_id="rq1"),
            BotUttered("您好", {"buttons": [{"title": "报警", "payload": "/report_incident"}]}),
            ActionExecuted("action_listen"),
            UserUttered("有人在吵架", intent={"name": "report_incident", "confidence": 0.9}),
        ],
    )
    await store.save(tracker)
    await store.save(tracker)  # nothing new: nothing written twice
    transcript = await log.transcript("web", channel_sender)
    assert [(m.direction, m.content, m.intent) for m in transcript] == [
        ("in", {"payload": "/greet"}, "greet"),
        (
            "out",
            {"text": "您好", "buttons": [{"title": "报警", "payload": "/report_incident"}]},
            None,
        ),
        ("in", {"text": "有人在吵架"}, "report_incident"),
    ]


async def test_save_recounts_when_another_writer_got_in_between(db: Database) -> None:
    """Two stores (two workers) on one conversation: the unique key forces a recount."""
    first = SealedSQLTrackerStore(db, CIPHER, DOMAIN)
    second = SealedSQLTrackerStore(db, CIPHER, DOMAIN)
    sender = f"web:{uuid.uuid4().hex}"
    await first.save(DialogueStateTracker.from_events(sender, [ActionExecuted("action_listen")]))

    mine = await first.retrieve(sender)  # remembers: 1 event stored
    theirs = await second.retrieve(sender)
    theirs.update(UserUttered("他们先写"))
    await second.save(theirs)
    mine.update(UserUttered("我后写"))
    await first.save(mine)  # cached count is stale: insert refused, recounted, no crash

    async with db.session() as session:
        seqs = (
            (
                await session.execute(
                    select(TrackerEvent.seq).where(TrackerEvent.sender_id == sender)
                )
            )
            .scalars()
            .all()
        )
    assert sorted(seqs) == list(range(1, len(seqs) + 1)), "no gaps, no duplicates"


async def test_migrations_and_models_agree(db: Database) -> None:
    """What `alembic revision --autogenerate` would write next: nothing, or a migration is due."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from store.models import Base

    def differences(sync) -> list:  # noqa: ANN001 - a sync Connection
        context = MigrationContext.configure(sync, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with db.engine.connect() as conn:
        assert await conn.run_sync(differences) == []


async def test_kept_tracker_is_the_stored_one_and_never_stale(db: Database) -> None:
    """The tracker kept after a save is what a database retrieve gives; a turn that fails
    before saving, or a save by another worker, sends the next retrieve to the database."""
    store = SealedSQLTrackerStore(db, CIPHER, DOMAIN)
    other_worker = SealedSQLTrackerStore(db, CIPHER, DOMAIN)
    sender = f"web:{uuid.uuid4().hex}"
    tracker = DialogueStateTracker.from_events(
        sender,
        [
            ActionExecuted("action_session_start"),
            SessionStarted(),
            ActionExecuted("action_listen"),
            UserUttered("你好"),
        ],
        DOMAIN.slots,
    )
    tracker.update(SlotSet("note", "一"))
    await store.save(tracker)
    tracker.update(SlotSet("note", "saved nowhere"))  # the caller's object is its own

    def state(t: DialogueStateTracker) -> tuple:
        return ([e.as_dict() for e in t.events], t.get_slot("note"))

    kept = await store.retrieve(sender)
    assert state(kept) == state(await other_worker.retrieve(sender))
    assert kept.get_slot("note") == "一"

    kept.update(SlotSet("note", "a turn that failed before saving"))
    after_failure = await store.retrieve(sender)
    assert after_failure is not kept and after_failure.get_slot("note") == "一"

    after_failure.update(SlotSet("note", "二"))
    await store.save(after_failure)
    elsewhere = await other_worker.retrieve(sender)
    elsewhere.update(SlotSet("note", "三"))
    await other_worker.save(elsewhere)
    assert (await store.retrieve(sender)).get_slot("note") == "三"
