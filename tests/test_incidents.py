"""The incident store on SQLite and, when available, PostgreSQL (fixtures in conftest.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select

from store import migrate
from store.crypto import PiiCipher
from store.db import Database
from store.incidents import (
    ATTACHMENT_LIMITS,
    CANCELLED,
    CLOSED,
    DISPATCHED,
    DRAFT,
    IN_PROGRESS,
    RECEIVED,
    ROUTES,
    STATUS_LABELS,
    TRANSFERRED_12345,
    URGENCIES,
    AttachmentRejected,
    EmergencyRouteLocked,
    IncidentBook,
    IncidentClosed,
    IncidentNotFound,
    check_attachment,
)
from store.models import Attachment, Incident, IncidentEvent
from tests.fakes import fake_identity
from tests.support import START, Clock

CIPHER = PiiCipher(b"i" * 32)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def book(db: Database, clock: Clock) -> IncidentBook:
    return IncidentBook(db, CIPHER, now=clock)


async def report(book: IncidentBook, sender: str = "alice", channel: str = "web", **overrides):  # noqa: ANN201
    fields = {
        "route": "police",
        "category": "theft",
        "urgency": "normal",
        "call_110_now": False,
        "aggression": False,
        "emergency": False,
        "verified": True,
        "details": {"description": "电动车被偷了"},
        "missing": ["address", "time"],
        "completeness": 0.4,
    }
    fields.update(overrides)
    return await book.open_draft(channel, sender, **fields)


# --- numbers ---


async def test_numbers_are_the_shanghai_day_and_a_daily_sequence(
    book: IncidentBook, clock: Clock
) -> None:
    first = await report(book)
    second = await report(book, "bob")
    assert (first.number, second.number) == ("2026112300001", "2026112300002")

    clock.moment = datetime(2026, 11, 23, 15, 59, 59, tzinfo=timezone.utc)  # 23:59:59 there
    assert (await report(book)).number == "2026112300003"
    clock.advance(seconds=1)  # midnight in Shanghai, still the 23rd in UTC
    assert (await report(book)).number == "2026112400001"
    assert (await report(book)).number == "2026112400002"


async def test_concurrent_reports_get_unique_consecutive_numbers(book: IncidentBook) -> None:
    records = await asyncio.gather(*(report(book, f"sender-{i}") for i in range(20)))
    assert sorted(r.number for r in records) == [f"20261123{n:05d}" for n in range(1, 21)]
    for record in records:
        assert [e.kind for e in await book.timeline(record.number)] == ["created"]


async def test_a_failed_report_leaves_no_gap_in_the_numbers(book: IncidentBook) -> None:
    with pytest.raises(TypeError):  # not JSON: the whole transaction rolls back
        await report(book, details={"when": object()})
    assert (await report(book)).number == "2026112300001"


# --- creating, reading, sealing ---


async def test_a_draft_round_trips_with_its_details_opened(book: IncidentBook) -> None:
    details = {
        "description": "有人撬车",
        "location": {"lat": 31.2304, "lng": 121.4737, "label": "南京东路"},
        "injured": False,
    }
    created = await report(book, details=details, district="黄浦区", citizen_id=None)
    assert created.status == DRAFT and created.status_label == "填写中" and created.is_open
    assert created.submitted_at is None and created.created_at == START
    assert created.missing == ("address", "time")
    assert await book.get(created.number) == created
    assert await book.get("2026112399999") is None
    assert (await book.get(created.number)).details == details


async def test_details_and_notes_are_sealed_at_rest(db: Database, book: IncidentBook) -> None:
    person = fake_identity(seed=11)
    record = await report(
        book, details={"description": f"我叫{person.name}", "callback": person.phone}
    )
    await book.update(record.number, details={"suspects": f"身份证{person.id_number}"})
    await book.cancel(record.number, "web", "alice", f"{person.name}说搞错了")

    async with db.reader() as session:
        details = (await session.execute(select(Incident.details_sealed))).scalars().all()
        notes = (await session.execute(select(IncidentEvent.note_sealed))).scalars().all()
    blobs = [*details, *(n for n in notes if n is not None)]
    assert len(blobs) >= 3
    for secret in (person.name, person.phone, person.id_number):
        assert all(secret.encode() not in blob for blob in blobs), secret
    assert (await book.get(record.number)).details["callback"] == person.phone


async def test_sealed_details_are_bound_to_their_incident(db: Database, book: IncidentBook) -> None:
    """Copying one incident's ciphertext onto another is detected, not silently accepted."""
    from sqlalchemy import update

    from store.crypto import DecryptionError

    first, second = await report(book), await report(book, "bob")
    async with db.session() as session:
        sealed = (
            await session.execute(
                select(Incident.details_sealed).where(Incident.number == first.number)
            )
        ).scalar_one()
        await session.execute(
            update(Incident).where(Incident.number == second.number).values(details_sealed=sealed)
        )
    with pytest.raises(DecryptionError):
        await book.get(second.number)


async def test_emergency_path_goes_straight_to_the_queue(book: IncidentBook) -> None:
    record = await report(
        book, emergency=True, verified=False, urgency="immediate", status=RECEIVED
    )
    assert record.status == RECEIVED and record.submitted_at == START
    assert [r.number for r in await book.queue()] == [record.number]
    assert (await book.timeline(record.number))[0].status == RECEIVED


async def test_invalid_values_are_refused(book: IncidentBook) -> None:
    with pytest.raises(ValueError):
        await report(book, route="fire")
    with pytest.raises(ValueError):
        await report(book, urgency="asap")
    with pytest.raises(ValueError):
        await report(book, status=CLOSED)
    with pytest.raises(ValueError):
        await report(book, completeness=1.5)


# --- updating ---


async def test_update_merges_details_and_records_what_changed(
    book: IncidentBook, clock: Clock
) -> None:
    record = await report(book, details={"description": "车被偷", "address": "人民路1号"})
    clock.advance(minutes=1)
    updated = await book.update(
        record.number,
        details={"time": "昨晚十点", "address": None},
        missing=[],
        completeness=0.9,
        urgency="urgent",
    )
    assert updated.details == {"description": "车被偷", "time": "昨晚十点"}
    assert updated.missing == () and updated.completeness == 0.9
    assert updated.urgency == "urgent" and updated.updated_at == START + timedelta(minutes=1)
    note = (await book.timeline(record.number))[-1].note
    assert "details: address, time" in note and "urgency: normal → urgent" in note
    assert "人民路" not in note and "昨晚" not in note, "names what changed, not the values"

    again = await book.update(record.number, details={"time": "昨晚十点"}, completeness=0.9)
    assert again == updated
    assert len(await book.timeline(record.number)) == 2, "nothing changed, nothing written"


async def test_triage_may_reroute_but_an_emergency_stays_with_the_police(
    book: IncidentBook,
) -> None:
    ordinary = await report(book, category="noise")
    rerouted = await book.update(ordinary.number, route="12345", category="construction_noise")
    assert rerouted.route == "12345"
    assert (await book.update(ordinary.number, route="police")).route == "police"

    emergency = await report(book, emergency=True, status=RECEIVED, urgency="immediate")
    for route in ("12345", "mediation"):
        with pytest.raises(EmergencyRouteLocked):
            await book.update(emergency.number, route=route)
    with pytest.raises(ValueError):
        await book.update(emergency.number, emergency=False)
    assert (await book.get(emergency.number)).route == "police"

    escalated = await book.update(ordinary.number, emergency=True, urgency="immediate")
    assert escalated.emergency
    with pytest.raises(EmergencyRouteLocked):
        await book.update(ordinary.number, route="mediation")


async def test_unknown_or_finished_incidents_take_no_updates(book: IncidentBook) -> None:
    with pytest.raises(IncidentNotFound):
        await book.update("2026112399999", completeness=1.0)
    record = await report(book)
    await book.set_status(record.number, CLOSED, actor="call_taker:7")
    with pytest.raises(IncidentClosed):
        await book.update(record.number, completeness=1.0)
    with pytest.raises(IncidentClosed):
        await book.submit(record.number)


# --- status and timeline ---


async def test_submit_is_idempotent(book: IncidentBook, clock: Clock) -> None:
    record = await report(book)
    clock.advance(minutes=2)
    submitted = await book.submit(record.number)
    assert submitted.status == RECEIVED and submitted.status_label == "已受理"
    assert submitted.submitted_at == START + timedelta(minutes=2)
    clock.advance(minutes=2)
    assert await book.submit(record.number) == submitted
    assert [e.kind for e in await book.timeline(record.number)] == ["created", "submitted"]


async def test_the_timeline_is_appended_in_order(book: IncidentBook, clock: Clock) -> None:
    record = await report(book)
    steps = [
        lambda: book.update(record.number, completeness=0.8),
        lambda: book.submit(record.number),
        lambda: book.set_status(record.number, DISPATCHED, actor="call_taker:7", note="派车"),
        lambda: book.add_note(record.number, "已联系报警人", actor="call_taker:7"),
        lambda: book.set_status(record.number, IN_PROGRESS, actor="system"),
        lambda: book.set_status(record.number, CLOSED, actor="call_taker:7", note="已处理"),
        lambda: book.add_note(record.number, "回访满意", actor="call_taker:8"),
    ]
    for step in steps:
        clock.advance(seconds=30)
        await step()
    timeline = await book.timeline(record.number)
    assert [(e.kind, e.status, e.actor) for e in timeline] == [
        ("created", DRAFT, "citizen"),
        ("updated", DRAFT, "citizen"),
        ("submitted", RECEIVED, "citizen"),
        ("status", DISPATCHED, "call_taker:7"),
        ("note", DISPATCHED, "call_taker:7"),
        ("status", IN_PROGRESS, "system"),
        ("status", CLOSED, "call_taker:7"),
        ("note", CLOSED, "call_taker:8"),
    ]
    assert [e.note for e in timeline][3:5] == ["派车", "已联系报警人"]
    assert [e.at for e in timeline] == sorted(e.at for e in timeline)
    closed = await book.get(record.number)
    assert closed.closed_at == START + timedelta(seconds=180) and not closed.is_open
    assert await book.timeline("2026112399999") == []


async def test_status_rules(book: IncidentBook) -> None:
    record = await report(book, status=RECEIVED)
    with pytest.raises(ValueError):
        await book.set_status(record.number, "lost", actor="system")
    with pytest.raises(ValueError):
        await book.set_status(record.number, DRAFT, actor="system")
    same = await book.set_status(record.number, RECEIVED, actor="system")
    assert same.status == RECEIVED and len(await book.timeline(record.number)) == 1
    await book.set_status(record.number, TRANSFERRED_12345, actor="system")
    await book.set_status(record.number, CANCELLED, actor="call_taker:7", note="重复报警")
    for status in (RECEIVED, CLOSED):
        with pytest.raises(IncidentClosed):
            await book.set_status(record.number, status, actor="call_taker:7")


async def test_draft_moved_on_by_a_call_taker_counts_as_submitted(book: IncidentBook) -> None:
    record = await report(book)
    moved = await book.set_status(record.number, DISPATCHED, actor="call_taker:7")
    assert moved.submitted_at is not None


async def test_only_the_reporter_cancels_and_only_while_open(book: IncidentBook) -> None:
    record = await report(book, status=RECEIVED)
    with pytest.raises(IncidentNotFound):
        await book.cancel(record.number, "web", "mallory", "不想报了")
    with pytest.raises(IncidentNotFound):
        await book.cancel(record.number, "wechat", "alice", "不想报了")
    with pytest.raises(IncidentNotFound):
        await book.cancel("2026112399999", "web", "alice", "不想报了")

    cancelled = await book.cancel(record.number, "web", "alice", " 已经找到了 ")
    assert cancelled.status == CANCELLED and cancelled.status_label == "已撤销"
    assert cancelled.closed_at == START
    last = (await book.timeline(record.number))[-1]
    assert (last.kind, last.status, last.actor, last.note) == (
        "cancelled",
        CANCELLED,
        "citizen",
        "已经找到了",
    )
    with pytest.raises(IncidentClosed):
        await book.cancel(record.number, "web", "alice", "再撤一次")

    closed = await report(book, status=RECEIVED)
    await book.set_status(closed.number, CLOSED, actor="call_taker:7")
    with pytest.raises(IncidentClosed):
        await book.cancel(closed.number, "web", "alice", "晚了")


async def test_the_two_doors_of_one_wechat_app_are_one_reporter(book: IncidentBook) -> None:
    """Reported in the /wechat chat, withdrawn in the mini-program: the same openid."""
    record = await report(book, "o-openid-1", channel="wechat", status=RECEIVED)
    with pytest.raises(IncidentNotFound):
        await book.cancel(record.number, "web", "o-openid-1", "H5 is another person's id space")
    cancelled = await book.cancel(record.number, "miniprogram", "o-openid-1", "找到了")
    assert cancelled.status == CANCELLED


# --- lists ---


async def test_reporter_sees_open_reports_first_newest_first(
    book: IncidentBook, clock: Clock
) -> None:
    numbers = []
    for _ in range(4):
        clock.advance(minutes=1)
        numbers.append((await report(book, status=RECEIVED)).number)
    old_open, closed, cancelled, new_open = numbers
    await book.set_status(closed, CLOSED, actor="call_taker:7")
    await book.cancel(cancelled, "web", "alice", "")
    clock.advance(minutes=1)
    draft = (await report(book)).number
    await report(book, "bob", status=RECEIVED)

    mine = await book.for_reporter("web", "alice")
    assert [r.number for r in mine] == [new_open, old_open, cancelled, closed]
    with_drafts = await book.for_reporter("web", "alice", include_drafts=True)
    assert [r.number for r in with_drafts][:3] == [draft, new_open, old_open]
    assert await book.for_reporter("wechat", "alice") == []


async def test_the_newest_draft_is_found_to_resume(book: IncidentBook, clock: Clock) -> None:
    assert await book.open_draft_for("web", "alice") is None
    await report(book)
    clock.advance(minutes=1)
    newest = await report(book, details={"description": "第二次"})
    await report(book, status=RECEIVED)
    await report(book, "bob")
    resumed = await book.open_draft_for("web", "alice")
    assert resumed.number == newest.number and resumed.details == {"description": "第二次"}
    await book.submit(newest.number)
    assert (await book.open_draft_for("web", "alice")).number != newest.number


async def test_queue_is_most_urgent_first_then_oldest(book: IncidentBook, clock: Clock) -> None:
    made = {}
    for name, urgency in [
        ("low", "low"),
        ("normal_old", "normal"),
        ("immediate", "immediate"),
        ("normal_new", "normal"),
        ("urgent", "urgent"),
    ]:
        clock.advance(minutes=1)
        made[name] = (await report(book, urgency=urgency, status=RECEIVED)).number
    made["dispatched"] = (await report(book, urgency="urgent", status=RECEIVED)).number
    await book.set_status(made["dispatched"], DISPATCHED, actor="call_taker:7")
    await report(book, urgency="immediate")  # a draft: not yet for the police
    finished = (await report(book, urgency="immediate", status=RECEIVED)).number
    await book.set_status(finished, CLOSED, actor="call_taker:7")
    gone = (await report(book, urgency="immediate", status=RECEIVED)).number
    await book.cancel(gone, "web", "alice", "")

    queue = await book.queue()
    assert [r.number for r in queue] == [
        made["immediate"],
        made["urgent"],
        made["dispatched"],
        made["normal_old"],
        made["normal_new"],
        made["low"],
    ]
    assert len(await book.queue(limit=2)) == 2


# --- attachments ---


async def test_attachments_are_checked_sealed_linked_and_listed(
    db: Database, book: IncidentBook, clock: Clock
) -> None:
    early = await book.add_attachment("web", "alice", kind="image", mime="image/jpg", data=JPEG)
    record = await report(book)
    clock.advance(minutes=1)
    voice = b"#!AMR\n" + b"\x01" * 100
    linked = await book.add_attachment(
        "web", "alice", kind="voice", mime="audio/AMR", data=voice, incident_number=record.number
    )
    retried = await book.add_attachment(
        "web", "alice", kind="voice", mime="audio/amr", data=voice, incident_number=record.number
    )
    assert retried == linked, "a channel retry is stored once"
    await book.add_attachment("web", "bob", kind="image", mime="image/png", data=PNG)

    assert [m.id for m in await book.attachment_meta(record.number)] == [linked]
    assert await book.link_attachments("web", "alice", record.number) == 1
    assert await book.link_attachments("web", "alice", record.number) == 0
    meta = await book.attachment_meta(record.number)
    assert [(m.id, m.kind, m.mime, m.size) for m in meta] == [  # in upload order
        (early, "image", "image/jpeg", len(JPEG)),
        (linked, "voice", "audio/amr", len(voice)),
    ]
    opened_meta, data = await book.read_attachment(early)
    assert data == JPEG and opened_meta == meta[0]
    assert await book.read_attachment(10_000) is None
    assert [e.kind for e in await book.timeline(record.number)].count("attachment") == 2

    async with db.reader() as session:
        blobs = (await session.execute(select(Attachment.content_sealed))).scalars().all()
    assert all(JPEG not in blob and voice not in blob and PNG not in blob for blob in blobs)


async def test_old_loose_uploads_are_not_linked(book: IncidentBook, clock: Clock) -> None:
    await book.add_attachment("web", "alice", kind="image", mime="image/png", data=PNG)
    clock.advance(days=2)
    record = await report(book)
    assert await book.link_attachments("web", "alice", record.number) == 0
    assert await book.link_attachments("web", "alice", record.number, max_age=None) == 1


async def test_attachments_only_for_the_reporters_open_incident(book: IncidentBook) -> None:
    record = await report(book)
    with pytest.raises(IncidentNotFound):
        await book.add_attachment(
            "web", "bob", kind="image", mime="image/png", data=PNG, incident_number=record.number
        )
    with pytest.raises(IncidentNotFound):
        await book.link_attachments("web", "bob", record.number)
    await book.cancel(record.number, "web", "alice", "")
    with pytest.raises(IncidentClosed):
        await book.add_attachment(
            "web", "alice", kind="image", mime="image/png", data=PNG, incident_number=record.number
        )


@pytest.mark.parametrize(
    ("kind", "mime", "data", "reason"),
    [
        ("image", "image/png", b"", "empty"),
        ("image", "image/svg+xml", b"<svg/>", "bad_type"),
        ("document", "application/pdf", b"%PDF-1.7", "bad_type"),
        ("voice", "image/png", PNG, "bad_type"),
        ("image", "image/png", JPEG, "bad_content"),
        ("image", "image/jpeg", b"<html><script>alert(1)</script>", "bad_content"),
        ("image", "image/webp", b"RIFF\x00\x00\x00\x00WAVEfmt ", "bad_content"),
        ("image", "image/jpeg", JPEG + b"\x00" * ATTACHMENT_LIMITS["image"], "too_large"),
        ("voice", "audio/mpeg", b"ID3" + b"\x00" * ATTACHMENT_LIMITS["voice"], "too_large"),
        ("video", "video/mp4", b"\x00" * (ATTACHMENT_LIMITS["video"] + 1), "too_large"),
    ],
)
def test_unacceptable_uploads_are_rejected_with_a_reason(
    kind: str, mime: str, data: bytes, reason: str
) -> None:
    with pytest.raises(AttachmentRejected) as rejected:
        check_attachment(kind, mime, data)
    assert rejected.value.reason == reason


def test_acceptable_uploads_get_their_canonical_type() -> None:
    gif = b"GIF89a" + b"\x00" * 10
    webp = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 10
    assert check_attachment("image", "image/gif", gif) == "image/gif"
    assert check_attachment("image", "image/webp", webp) == "image/webp"
    assert check_attachment("image", "image/jpeg; charset=binary", JPEG) == "image/jpeg"
    assert check_attachment("voice", "audio/x-m4a", b"\x00\x00\x00\x20ftypM4A ") == "audio/mp4"
    assert check_attachment("voice", "audio/mp3", b"ID3\x04") == "audio/mpeg"
    assert check_attachment("video", "video/quicktime", b"\x00" * 8) == "video/quicktime"
    limit = ATTACHMENT_LIMITS["image"]
    assert check_attachment("image", "image/png", PNG + b"\x00" * (limit - len(PNG)))


async def test_rejected_uploads_store_nothing(db: Database, book: IncidentBook) -> None:
    with pytest.raises(AttachmentRejected):
        await book.add_attachment("web", "alice", kind="image", mime="image/png", data=JPEG)
    async with db.reader() as session:
        assert (await session.execute(select(Attachment.id))).first() is None


# --- schema ---


def test_constants_agree_with_triage_and_labels_are_chinese() -> None:
    from routing import triage

    assert ROUTES == triage.ROUTES and URGENCIES == triage.URGENCIES
    assert all("\u4e00" <= label[0] <= "\u9fff" for label in STATUS_LABELS.values())


def test_migration_0002_goes_down_to_0001_and_up_again(database_url: str) -> None:
    new_tables = {"incidents", "incident_events", "incident_counters", "attachments"}

    def tables() -> set[str]:
        async def read() -> set[str]:
            database = Database(database_url)
            try:
                async with database.engine.connect() as conn:
                    return await conn.run_sync(lambda s: set(inspect(s).get_table_names()))
            finally:
                await database.dispose()

        return asyncio.run(read())

    assert new_tables <= tables()
    migrate.downgrade(database_url, "0001_initial")
    assert migrate.current(database_url).startswith("0001_initial")
    left = tables()
    assert not new_tables & left and {"citizens", "messages"} <= left
    migrate.upgrade(database_url)
    assert new_tables <= tables()
