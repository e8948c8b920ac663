"""The transactional outbox in the store, on SQLite and, when available, PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from store import outbox as outbox_store
from store.crypto import PiiCipher
from store.db import Database
from store.incidents import (
    CANCELLED,
    DRAFT,
    RECEIVED,
    TRANSFERRED_12345,
    IncidentBook,
    record_from_snapshot,
)
from store.models import Incident, IncidentEvent, OutboxAttempt, OutboxMessage
from store.outbox import (
    CAD110,
    DEAD,
    MEDIATION,
    PENDING,
    SENDING,
    SENT,
    WORKORDER_12345,
    Attempt,
    Outbox,
)
from tests.fakes import fake_identity
from tests.support import START, Clock

CIPHER = PiiCipher(b"o" * 32)


@pytest.fixture
def book(db: Database, clock: Clock) -> IncidentBook:
    return IncidentBook(db, CIPHER, now=clock)


@pytest.fixture
def box(db: Database, clock: Clock) -> Outbox:
    return Outbox(db, CIPHER, now=clock)


async def report(book: IncidentBook, sender: str = "alice", **overrides: Any):  # noqa: ANN201
    fields: dict[str, Any] = {
        "route": "police",
        "category": "theft",
        "urgency": "normal",
        "call_110_now": False,
        "aggression": False,
        "emergency": False,
        "verified": True,
        "details": {"answers": {"description": {"answer": "given", "text": "电动车被偷了"}}},
        "missing": ["time"],
        "completeness": 0.6,
    }
    fields.update(overrides)
    return await book.open_draft("web", sender, **fields)


async def rows(db: Database) -> list[OutboxMessage]:
    async with db.reader() as session:
        return list(
            (await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars()
        )


async def count(db: Database, table: type) -> int:
    async with db.reader() as session:
        return (await session.execute(select(func.count()).select_from(table))).scalar_one()


# --- enqueue in the incident's transaction ---


async def test_a_draft_queues_nothing_and_submitting_queues_one_create(
    db: Database, book: IncidentBook, box: Outbox
) -> None:
    draft = await report(book)
    assert await rows(db) == []
    await book.submit(draft.number)
    await book.submit(draft.number)  # again: nothing more
    [row] = await rows(db)
    assert (row.target, row.kind, row.status, row.attempts) == (CAD110, "create", PENDING, 0)
    assert row.idempotency_key == f"{draft.number}:cad110:create:1"
    [item] = await box.list()
    assert item.incident_number == draft.number and item.payload is None


async def test_the_emergency_path_queues_the_create_at_once(
    db: Database, book: IncidentBook
) -> None:
    record = await report(book, status=RECEIVED, emergency=True, call_110_now=True)
    [row] = await rows(db)
    assert (row.incident_id, row.target, row.kind) == (record.id, CAD110, "create")


@pytest.mark.parametrize(
    ("route", "category", "target"),
    [("police", "theft", CAD110), ("12345", "property", WORKORDER_12345)]
    + [("mediation", "neighbor", MEDIATION)],
)
async def test_each_route_goes_to_its_system(
    db: Database, book: IncidentBook, route: str, category: str, target: str
) -> None:
    draft = await report(book, route=route, category=category)
    await book.submit(draft.number)
    assert [(r.target, r.kind) for r in await rows(db)] == [(target, "create")]


async def test_the_payload_is_sealed_and_bound_to_its_row(
    db: Database, book: IncidentBook, box: Outbox
) -> None:
    person = fake_identity(seed=3)
    details = {"answers": {"description": {"answer": "given", "text": f"{person.name}被打了"}}}
    record = await report(book, details=details, status=RECEIVED)
    [row] = await rows(db)
    assert person.name.encode() not in row.payload_sealed
    assert "电动车".encode() not in row.payload_sealed
    [claimed] = await box.claim_due("w1")
    assert record_from_snapshot(claimed.payload["incident"]) == record
    with pytest.raises(Exception, match="cannot open"):  # sealed for its own key only
        outbox_store.open_payload(CIPHER, "2026112300009:cad110:create:1", row.payload_sealed)


async def test_a_failing_outbox_insert_leaves_no_incident(db: Database, book: IncidentBook) -> None:
    first = await report(book, status=RECEIVED)
    # Take the key the next report would get, so its outbox insert fails.
    async with db.session() as session:
        session.add(
            OutboxMessage(
                incident_id=first.id,
                target=CAD110,
                idempotency_key="2026112300002:cad110:create:1",
                kind="create",
                payload_sealed=b"x",
                next_attempt_at=START,
            )
        )
    with pytest.raises(IntegrityError):
        await report(book, "bob", status=RECEIVED)
    async with db.reader() as session:
        numbers = (await session.execute(select(Incident.number))).scalars().all()
    assert numbers == [first.number]
    assert await count(db, OutboxMessage) == 2
    assert await count(db, IncidentEvent) == 1  # only the first report's "created"


async def test_a_failing_incident_write_after_the_outbox_insert_leaves_neither(
    db: Database, book: IncidentBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = await report(book)
    seen_in_transaction: list[int] = []
    original_hand_off = IncidentBook._hand_off

    async def hand_off_then_fail(self, session, row, kind, now, target):  # noqa: ANN001, ANN202
        await original_hand_off(self, session, row, kind, now, target)
        found = await session.execute(select(func.count()).select_from(OutboxMessage))
        seen_in_transaction.append(found.scalar_one())
        raise RuntimeError("the timeline insert failed")

    monkeypatch.setattr(IncidentBook, "_hand_off", hand_off_then_fail)
    with pytest.raises(RuntimeError):
        await book.submit(draft.number)
    with pytest.raises(RuntimeError):
        await report(book, "bob", status=RECEIVED)
    assert seen_in_transaction == [1, 1]  # the row was written, then rolled back with the rest
    assert await count(db, OutboxMessage) == 0
    assert (await book.get(draft.number)).status == DRAFT
    assert await count(db, Incident) == 1


async def test_cancelling_a_handed_off_report_queues_a_cancel(
    db: Database, book: IncidentBook
) -> None:
    draft = await report(book)
    await book.cancel(draft.number, "web", "alice", "搞错了")
    assert await rows(db) == []  # never handed off: nobody to tell

    sent = await report(book, status=RECEIVED)
    cancelled = await book.cancel(sent.number, "web", "alice", "已经找到了")
    assert cancelled.status == CANCELLED
    found = [(r.target, r.kind, r.idempotency_key) for r in await rows(db)]
    assert found == [
        (CAD110, "create", f"{sent.number}:cad110:create:1"),
        (CAD110, "cancel", f"{sent.number}:cad110:cancel:1"),
    ]
    assert "已经找到了".encode() not in b"".join(r.payload_sealed for r in await rows(db))


async def test_updates_after_the_handoff_are_queued_and_merged_while_untried(
    db: Database, book: IncidentBook, box: Outbox
) -> None:
    record = await report(book, status=RECEIVED, emergency=True, call_110_now=True)
    await book.update(record.number, details={"location": {"answer": "given", "text": "人民广场"}})
    await book.update(record.number, urgency="immediate")
    kinds = [(r.kind, r.idempotency_key) for r in await rows(db)]
    assert kinds == [("create", f"{record.number}:cad110:create:1")] + [
        ("update", f"{record.number}:cad110:update:1")
    ]
    claimed = await box.claim_due("w1", limit=5)
    assert [c.kind for c in claimed] == ["create"]  # the update waits for the create
    latest = claimed[0].payload["incident"]
    assert latest["urgency"] == "normal"

    await box.mark_sent(claimed[0].id)
    [update] = await box.claim_due("w1", limit=5)
    snapshot = record_from_snapshot(update.payload["incident"])
    assert snapshot.urgency == "immediate" and "location" in snapshot.details
    await book.update(record.number, district="黄浦区")  # the tried update stays as it was
    assert [r.idempotency_key for r in await rows(db)][-1] == f"{record.number}:cad110:update:2"


async def test_a_reroute_cancels_at_the_old_system_and_creates_at_the_new(
    db: Database, book: IncidentBook
) -> None:
    record = await report(book, route="12345", category="property")
    await book.submit(record.number)
    await book.update(record.number, route="police", category="threat", aggression=True)
    found = [(r.target, r.kind) for r in await rows(db)]
    assert found == [(WORKORDER_12345, "create"), (WORKORDER_12345, "cancel"), (CAD110, "create")]


# --- claiming ---


async def test_a_claim_leases_rows_and_counts_the_attempt(
    db: Database, book: IncidentBook, box: Outbox, clock: Clock
) -> None:
    records = [await report(book, f"s{i}", status=RECEIVED) for i in range(3)]
    first = await box.claim_due("worker-a", limit=2, lease_s=30)
    assert [c.incident_number for c in first] == [r.number for r in records[:2]]
    assert all(c.status == SENDING and c.attempts == 1 for c in first)
    assert all(c.claimed_by.startswith("worker-a#") for c in first)
    assert first[0].claimed_until == START + timedelta(seconds=30)
    second = await box.claim_due("worker-b", limit=5, lease_s=30)
    assert [c.incident_number for c in second] == [records[2].number]
    assert await box.claim_due("worker-b", limit=5) == []

    clock.advance(seconds=31)  # worker-a died: its lease ran out
    again = await box.claim_due("worker-b", limit=5, lease_s=30)
    assert sorted(c.id for c in again) == sorted(c.id for c in first + second)
    assert all(c.attempts == 2 for c in again)
    assert await box.claim_due("worker-c", targets=[WORKORDER_12345]) == []


async def test_not_yet_due_rows_wait(book: IncidentBook, box: Outbox, clock: Clock) -> None:
    await report(book, status=RECEIVED)
    [item] = await box.claim_due("w")
    assert await box.schedule_retry(item, START + timedelta(seconds=8), "HTTP 500")
    assert await box.claim_due("w") == []
    clock.advance(seconds=8)
    [again] = await box.claim_due("w")
    assert again.id == item.id and again.attempts == 2 and again.last_error == "HTTP 500"


async def test_a_stale_claim_cannot_settle_the_row(
    db: Database, book: IncidentBook, box: Outbox, clock: Clock
) -> None:
    await report(book, status=RECEIVED)
    [stale] = await box.claim_due("a", lease_s=10)
    clock.advance(seconds=11)
    [fresh] = await box.claim_due("b", lease_s=10)
    attempt = Attempt(at=clock(), ok=False, error="timed out", worker="a")
    assert not await box.mark_dead(stale, "late failure", attempt)
    assert not await box.schedule_retry(stale, clock(), "late failure")
    assert (await box.get(fresh.id)).status == SENDING
    assert [a.worker for a in await box.attempts(fresh.id)] == ["a"]  # the attempt is kept
    assert await box.mark_sent(fresh.id, external_ref="CAD-1")
    assert not await box.mark_sent(fresh.id, external_ref="CAD-2")  # the first one counts
    assert (await box.get(fresh.id)).external_ref == "CAD-1"


async def test_dead_rows_come_back_on_retry(
    db: Database, book: IncidentBook, box: Outbox, clock: Clock
) -> None:
    await report(book, status=RECEIVED)
    [item] = await box.claim_due("w")
    assert await box.mark_dead(item, "HTTP 400 from receiver")
    assert await box.counts() == {PENDING: 0, SENDING: 0, SENT: 0, DEAD: 1}
    [dead] = await box.list(status=DEAD)
    assert dead.last_error == "HTTP 400 from receiver"
    assert await box.claim_due("w") == []
    assert not await box.retry(item.id + 100)
    clock.advance(hours=1)
    assert await box.retry(item.id)
    assert not await box.retry(item.id)  # only a dead row
    [again] = await box.claim_due("w")
    assert again.attempts == 1 and again.last_error == "HTTP 400 from receiver"


async def test_a_dead_create_holds_back_the_cancel_behind_it(
    book: IncidentBook, box: Outbox
) -> None:
    record = await report(book, status=RECEIVED)
    [create] = await box.claim_due("w")
    await box.mark_dead(create, "HTTP 422")
    await book.cancel(record.number, "web", "alice", "")
    assert await box.claim_due("w") == []  # a cancel before its create would confuse the CAD
    await box.retry(create.id)
    assert [c.kind for c in await box.claim_due("w", limit=5)] == ["create"]


async def test_delivery_moves_the_incident_in_the_same_transaction(
    db: Database, book: IncidentBook, box: Outbox, clock: Clock
) -> None:
    draft = await report(book, route="12345", category="property")
    await book.submit(draft.number)
    [item] = await box.claim_due("w")
    attempt = Attempt(at=clock(), ok=True, duration_ms=12, status_code=201, worker="w")
    delivered = await book.handoff_delivered(
        item.id, external_ref="WO-7", status=TRANSFERRED_12345, note="已转12345", attempt=attempt
    )
    assert delivered
    assert (await book.get(draft.number)).status == TRANSFERRED_12345
    assert not await book.handoff_delivered(item.id, status=TRANSFERRED_12345, note="again")
    kinds = [(e.kind, e.status, e.note) for e in await book.timeline(draft.number)]
    assert kinds[-1] == ("status", TRANSFERRED_12345, "已转12345")
    assert len(kinds) == 3
    sent = await box.get(item.id)
    assert (sent.status, sent.external_ref, sent.sent_at) == (SENT, "WO-7", START)
    assert await count(db, OutboxAttempt) == 1


async def test_delivery_of_a_report_moved_on_since_only_adds_a_note(
    book: IncidentBook, box: Outbox
) -> None:
    record = await report(book, route="12345", category="property", status=RECEIVED)
    await book.cancel(record.number, "web", "alice", "")
    [create] = await box.claim_due("w", limit=5)
    await book.handoff_delivered(create.id, status=TRANSFERRED_12345, note="已转12345")
    assert (await book.get(record.number)).status == CANCELLED
    assert [e.kind for e in await book.timeline(record.number)][-1] == "note"


# --- concurrency ---


async def test_two_workers_on_two_engines_never_claim_the_same_row(
    database_url: str, book: IncidentBook, clock: Clock
) -> None:
    for i in range(40):
        await report(book, f"s{i}", status=RECEIVED)
    first, second = Database(database_url), Database(database_url)
    try:
        boxes = [Outbox(first, CIPHER, now=clock), Outbox(second, CIPHER, now=clock)]

        async def drain(box: Outbox, worker: str) -> list[int]:
            taken: list[int] = []
            while batch := await box.claim_due(worker, limit=3):
                taken += [item.id for item in batch]
                await asyncio.sleep(0)
            return taken

        results = await asyncio.gather(
            *(drain(boxes[i % 2], f"w{i}") for i in range(6))  # 3 workers per engine
        )
    finally:
        await first.dispose()
        await second.dispose()
    claims = Counter(item_id for taken in results for item_id in taken)
    assert len(claims) == 40 and set(claims.values()) == {1}


def test_migration_0003_goes_down_to_0002_and_up_again(database_url: str) -> None:
    from sqlalchemy import inspect

    from store import migrate

    def tables() -> set[str]:
        async def read() -> set[str]:
            database = Database(database_url)
            try:
                async with database.engine.connect() as conn:
                    return await conn.run_sync(lambda s: set(inspect(s).get_table_names()))
            finally:
                await database.dispose()

        return asyncio.run(read())

    assert {"outbox", "outbox_attempts"} <= tables()
    migrate.downgrade(database_url, "0002_incidents")
    assert not {"outbox", "outbox_attempts"} & tables() and "incidents" in tables()
    migrate.upgrade(database_url)
    assert {"outbox", "outbox_attempts"} <= tables()
